-- The read model's shape (version 1), created in a new generation's schema
-- (the search path names it). Changing it means raising
-- `generation::SHAPE_VERSION` and shipping it with `gateway rebuild`. A
-- row may exist before the event that fully describes it (a post can
-- arrive before its author's registration): such a user row has no
-- username yet and stays invisible until UserRegistered is applied.
create table read_user (
    id uuid primary key,
    username text unique,
    display_name text,
    created_at timestamptz,
    -- Versions of the last applied event of each aggregate the row reflects.
    profile_version bigint not null default 0,
    points integer not null default 0,
    points_version bigint not null default 0,
    post_count integer not null default 0
);

create index read_user_leaderboard on read_user (points desc, created_at, id) where username is not null;

create table read_post (
    id uuid primary key,
    author_id uuid not null,
    title text not null,
    body text not null,
    created_at timestamptz not null,
    version bigint not null
);

create index read_post_newest on read_post (created_at desc, id desc);
create index read_post_by_author_newest on read_post (author_id, created_at desc, id desc);
