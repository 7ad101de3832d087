-- Owners and row-level security, as Supabase does it: a task belongs to the `auth.uid()` of whoever inserted it; an
-- `authenticated` user inserts and reads only their own tasks and what hangs off them; `anon` reads nothing unless
-- the operator opts in (MORGUS_PUBLIC_READ, kept in `morgus_config`); Morgus's own role owns the tables, so RLS does
-- not apply to it (Supabase's `service_role` has BYPASSRLS). Replaces 001's `using (true)` read policies.
--
-- Supabase's roles (`anon`, `authenticated`, `service_role`) and `auth.uid()` are used as they are where they exist
-- (a Supabase project; the embedded Postgres creates them as the superuser, morgus/db/embedded.py). Elsewhere this
-- migration creates them if its role may, else stops with a sentence.

do $$
declare
    r text;
    may_create_roles boolean := (select rolcreaterole or rolsuper from pg_roles where rolname = current_user);
begin
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            if not may_create_roles then
                raise exception 'Morgus needs the role % (a Supabase project has it); create it once as a superuser: create role % nologin noinherit', r, r;
            end if;
            execute format('create role %I nologin noinherit', r);
        end if;
    end loop;
    if to_regprocedure('auth.uid()') is null then
        if to_regnamespace('auth') is null and not has_database_privilege(current_database(), 'CREATE') then
            raise exception 'Morgus needs auth.uid() (a Supabase project has it); run morgus/db/embedded.py''s SUPABASE_AUTH once as a superuser';
        end if;
        create schema if not exists auth;
        create function auth.uid() returns uuid language sql stable as $f$
            select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
        $f$;
        grant usage on schema auth to anon, authenticated, service_role;
        grant execute on function auth.uid() to anon, authenticated, service_role;
    end if;
end
$$;

-- ------------------------------------------------------------------ columns

alter table tasks add column if not exists owner_id uuid;
alter table tasks alter column owner_id set default auth.uid();
-- The intake's claim (morgus/app/intake.py): set when a process takes a pending row to start its workflow.
-- The API sets it when it inserts its own pending row, so the intake never starts an API task a second time.
alter table tasks add column if not exists started_at timestamptz;
alter table tasks alter column id set default gen_random_uuid();
alter table tasks alter column title set default '';
create index if not exists tasks_owner_idx on tasks (owner_id, created_at desc);
create index if not exists tasks_pending_idx on tasks (created_at) where status = 'pending';

-- A row inserted by a user names no workflow: it is always task-<id> (the intake starts exactly that id).
create or replace function morgus_task_defaults() returns trigger language plpgsql as $$
begin
    if new.workflow_id is null then
        new.workflow_id := 'task-' || new.id::text;
    end if;
    return new;
end
$$;
drop trigger if exists morgus_tasks_defaults on tasks;
create trigger morgus_tasks_defaults before insert on tasks for each row execute function morgus_task_defaults();

-- ------------------------------------------------------------------ MORGUS_PUBLIC_READ

-- One row, written by the worker at start (morgus/db/migrate.py::set_public_read). The policies ask the function,
-- which runs as the table's owner: the API roles need no access to the table itself.
create table if not exists morgus_config (
    id          boolean primary key default true check (id),
    public_read boolean not null default false
);
insert into morgus_config default values on conflict do nothing;
alter table morgus_config enable row level security;

create or replace function morgus_public_read() returns boolean
    language sql stable security definer set search_path = public, pg_temp as $$
    select coalesce((select public_read from morgus_config where id), false)
$$;

-- ------------------------------------------------------------------ triggers run as the tables' owner

-- A user's insert fires the event trigger, which writes task_events and calls pg_notify(): neither is theirs to do.
alter function morgus_record_event() security definer set search_path = public, pg_temp;

-- ------------------------------------------------------------------ privileges

-- Supabase grants ALL on every new public table to anon and authenticated (default privileges): TRUNCATE ignores
-- RLS and a table-wide INSERT covers every column. Start from nothing and grant what the policies below expect.
do $$
declare
    t text;
begin
    foreach t in array array['tasks', 'task_steps', 'artifacts', 'knowledge', 'task_messages', 'task_condensations',
                             'task_events', 'schema_migrations', 'morgus_config', 'task_live'] loop
        if to_regclass(t) is not null then
            execute format('revoke all on %I from anon, authenticated', t);
            execute format('grant all on %I to service_role', t);
        end if;
    end loop;
end
$$;
revoke all on sequence task_events_id_seq from anon, authenticated;
revoke execute on function morgus_public_read() from public;
grant execute on function morgus_public_read() to anon, authenticated, service_role;

grant select on tasks, task_steps, artifacts, task_events to anon, authenticated;
-- What a user may say when starting a task; everything else (status, owner) is defaulted and checked below.
grant insert (id, title, description, model, owner_id, status) on tasks to authenticated;

-- ------------------------------------------------------------------ policies

do $$
declare
    r text;
    t text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        foreach t in array array['tasks', 'task_steps', 'artifacts'] loop
            execute format('drop policy if exists %I on %I', 'console_read_' || r, t);
        end loop;
    end loop;
end
$$;

drop policy if exists morgus_read on tasks;
create policy morgus_read on tasks for select to anon, authenticated
    using (owner_id = (select auth.uid()) or (select morgus_public_read()));
drop policy if exists morgus_insert on tasks;
create policy morgus_insert on tasks for insert to authenticated
    with check (owner_id = (select auth.uid()) and status = 'pending');

-- A step, artifact or event is visible exactly when its task is (the subquery runs under the tasks policy above).
do $$
declare
    t text;
begin
    foreach t in array array['task_steps', 'artifacts', 'task_events'] loop
        execute format('drop policy if exists morgus_read on %I', t);
        execute format('create policy morgus_read on %I for select to anon, authenticated '
                       'using (exists (select 1 from tasks where tasks.id = %I.task_id))', t, t);
    end loop;
end
$$;
