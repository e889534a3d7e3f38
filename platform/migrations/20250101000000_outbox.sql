-- The transactional outbox: a state change and its event commit together;
-- the relay publishes rows in id order and marks them once Kafka acknowledged.
create table outbox (
    id bigserial primary key,
    event_id uuid not null unique,
    topic text not null,
    event_type text not null,
    aggregate_id uuid not null,
    aggregate_version bigint not null,
    payload jsonb not null,
    traceparent text,
    created_at timestamptz not null default now(),
    published_at timestamptz
);

create index outbox_unpublished on outbox (id) where published_at is null;

-- Wakes the relay as soon as a transaction that wrote events commits.
create function outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('agora_outbox', '');
    return null;
end;
$$;

create trigger outbox_notify after insert on outbox
    for each statement execute function outbox_notify();
