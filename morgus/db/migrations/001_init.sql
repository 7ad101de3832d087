-- Morgus projection schema. Applies to plain Postgres (with pgvector) and to a Supabase project alike.
-- The worker owns these tables (and so bypasses RLS); the console reads through a read-only role.

create extension if not exists vector;

create table if not exists tasks (
    id                uuid primary key,
    workflow_id       text not null unique,
    title             text not null,
    description       text not null,
    status            text not null default 'pending'
                      check (status in ('pending', 'running', 'waiting_for_input', 'completed', 'error', 'cancelled')),
    phase             text check (phase in ('RESEARCH', 'PLAN', 'BUILD', 'EXECUTE', 'FINALIZE')),
    model             text,
    pending_question  text,
    error_message     text,
    step_count        integer not null default 0,
    prompt_tokens     bigint not null default 0,
    completion_tokens bigint not null default 0,
    total_tokens      bigint not null default 0,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    completed_at      timestamptz
);
create index if not exists tasks_status_idx on tasks (status);
create index if not exists tasks_created_idx on tasks (created_at desc);

create table if not exists task_steps (
    id         uuid primary key,          -- uuid5(task id, seq): a replayed write is a no-op
    task_id    uuid not null references tasks (id) on delete cascade,
    seq        integer not null,
    phase      text,
    type       text not null,
    content    text not null default '',
    metadata   jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    unique (task_id, seq)
);

create table if not exists artifacts (
    id         uuid primary key,
    task_id    uuid not null references tasks (id) on delete cascade,
    type       text not null check (type in ('deployment', 'repository', 'file', 'log')),
    name       text not null,
    url        text,
    path       text,
    metadata   jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);
create index if not exists artifacts_task_idx on artifacts (task_id);

create table if not exists knowledge (
    id         uuid primary key default gen_random_uuid(),
    content    text not null,
    embedding  vector(1536),
    metadata   jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);

-- The agent's conversation (claim-check): activities read and append it, the workflow only passes its length.
create table if not exists task_messages (
    task_id    uuid not null,
    seq        integer not null,
    message    jsonb not null,
    created_at timestamptz not null default now(),
    primary key (task_id, seq)
);

alter table tasks enable row level security;
alter table task_steps enable row level security;
alter table artifacts enable row level security;
alter table knowledge enable row level security;
alter table task_messages enable row level security;

-- Read-only access for the console: Supabase's anon/authenticated roles where they exist, else morgus_console.
do $$
declare
    r text;
    t text;
begin
    if not exists (select 1 from pg_roles where rolname = 'morgus_console') then
        create role morgus_console nologin;
    end if;
    foreach r in array array['morgus_console', 'anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            foreach t in array array['tasks', 'task_steps', 'artifacts'] loop
                execute format('grant select on %I to %I', t, r);
                if not exists (select 1 from pg_policies where tablename = t and policyname = 'console_read_' || r) then
                    execute format('create policy %I on %I for select to %I using (true)', 'console_read_' || r, t, r);
                end if;
            end loop;
        end if;
    end loop;
end
$$;
