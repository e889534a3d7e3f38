-- Events a consumer could not decode or apply, written in the transaction
-- that moved its position past them, so an operator can list them and,
-- once the cause is fixed, replay or skip them. No unique index on the
-- position: offsets are reused after a log reset.
create table consumer_dead_letter (
    id bigserial primary key,
    consumer text not null,
    topic text not null,
    partition integer not null,
    "offset" bigint not null,
    message_key bytea,
    payload bytea,
    traceparent text,
    event_id uuid,
    event_type text,
    -- `undecodable` (not an event) or `rejected` (its apply failed for good).
    kind text not null check (kind in ('undecodable', 'rejected')),
    reason text not null,
    status text not null default 'pending' check (status in ('pending', 'replayed', 'skipped')),
    -- What the last action on it was, by whom, and why.
    note text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index consumer_dead_letter_by_consumer on consumer_dead_letter (consumer, status, id);
