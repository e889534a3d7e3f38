-- Where each consumer stands in each partition, written in the same
-- transaction as the state its events produced, and with the id of the last
-- event read there, so that a position is only ever used with the log it
-- came from.
create table consumer_position (
    consumer text not null,
    topic text not null,
    partition integer not null,
    next_offset bigint not null,
    last_event_id uuid,
    updated_at timestamptz not null default now(),
    primary key (consumer, topic, partition)
);

-- Grows whenever a consumer's state is reset (its positions came from
-- another log): every replica of the consumer then repositions itself.
create table consumer_generation (
    consumer text primary key,
    generation bigint not null default 0
);
