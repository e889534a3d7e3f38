-- The projector's positions moved to the platform consumer's
-- `consumer_position` (which records the event read last, so that a
-- position is only used with its own log). The old positions cannot be
-- checked against the log: the projector replays from the beginning once,
-- which every idempotent apply makes harmless.
drop table projector_offset;
