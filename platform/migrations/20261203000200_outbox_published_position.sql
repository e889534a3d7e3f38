-- Where the relay's last acknowledged event of each partition landed, with
-- its id: when a relay becomes the leader it checks that the topics still
-- hold those events there. A log that does not (a recreated topic, a new
-- cluster, the embedded broker of a new local run) gets the whole outbox
-- published again, so the topics always hold every event the service
-- committed.
create table outbox_published_position (
    topic text not null,
    partition integer not null,
    last_offset bigint not null,
    last_event_id uuid not null,
    updated_at timestamptz not null default now(),
    primary key (topic, partition)
);
