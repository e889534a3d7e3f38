create table post (
    id uuid primary key,
    author_id uuid not null,
    title text not null,
    body text not null,
    -- The aggregate version of the last event about this post.
    version bigint not null,
    created_at timestamptz not null
);

-- Newest first, overall and per author (keyset pagination on both).
create index post_newest on post (created_at desc, id desc);
create index post_by_author_newest on post (author_id, created_at desc, id desc);
