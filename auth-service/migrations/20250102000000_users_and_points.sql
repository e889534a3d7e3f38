create table app_user (
    id uuid primary key,
    username text not null unique,
    display_name text not null,
    password_hash text not null,
    -- The aggregate version of the last event about this user.
    version bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

-- A user's points; an aggregate of its own (versions count its awards).
create table points_account (
    user_id uuid primary key,
    total integer not null,
    version bigint not null,
    updated_at timestamptz not null
);

create index points_account_leaderboard on points_account (total desc);

create table points_entry (
    id bigserial primary key,
    user_id uuid not null,
    delta integer not null,
    reason text not null,
    cause_event_id uuid not null,
    created_at timestamptz not null default now()
);

-- Events a consumer has applied: written in the same transaction as the
-- effect, so a redelivered event is recognised and applied once.
create table processed_event (
    consumer text not null,
    event_id uuid not null,
    processed_at timestamptz not null default now(),
    primary key (consumer, event_id)
);
