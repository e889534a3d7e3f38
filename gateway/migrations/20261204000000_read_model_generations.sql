-- The read model moves into a schema of its own per generation: read_g1,
-- read_g2, ... One generation serves at a time; a rebuild builds the next
-- one beside it (with the shape in src/projector/shape.sql) while the
-- serving one answers, then switches every replica over in one
-- transaction. Everything that reads the read model reads the views
-- `read_user` and `read_post` here, which the switch points at the new
-- generation; the projector writes to the serving generation's tables.
create schema read_g1;
alter table read_user set schema read_g1;
alter table read_post set schema read_g1;

-- The generation that serves. Each projector batch holds a SHARE lock on
-- this table while it writes; a switch takes it EXCLUSIVE.
create table read_model_serving (
    singleton boolean primary key default true check (singleton),
    generation bigint not null,
    switched_at timestamptz not null default now()
);

-- Every generation there is or was, for operators and the rebuild.
create table read_model_generation (
    generation bigint primary key,
    shape_version integer not null,
    state text not null check (state in ('building', 'serving', 'retired', 'dropped', 'abandoned')),
    created_at timestamptz not null default now(),
    serving_since timestamptz,
    retired_at timestamptz
);
create unique index read_model_generation_one_serving on read_model_generation ((true)) where state = 'serving';

insert into read_model_generation (generation, shape_version, state, serving_since) values (1, 1, 'serving', now());
insert into read_model_serving (generation) values (1);

create view read_user as select * from read_g1.read_user;
create view read_post as select * from read_g1.read_post;
