-- Idempotency keys: the first answer to a keyed command, written in the
-- command's own transaction, so a retry with the same key by the same caller
-- gets that answer back and has no second effect. Kept 24 hours.
create table idempotency_key (
    -- Who sent the key: 'user:<token subject>' or 'anonymous'.
    scope text not null,
    -- The client's key and the mutation field's response path.
    key text not null,
    command text not null,
    -- SHA-256 of the command's input: the same key with another input is a CONFLICT.
    fingerprint bytea not null,
    answer jsonb not null,
    -- The write receipts of the first answer (`extensions.writes`).
    writes jsonb not null,
    created_at timestamptz not null default now(),
    primary key (scope, key)
);

create index idempotency_key_created_at on idempotency_key (created_at);
