-- Intake from the tables (morgus/app/intake.py): a `pending` task row starts its workflow, a `task_inputs` row is
-- delivered to it (answer, say, cancel, ...), each announced on NOTIFY channel `morgus_intake` (a hint: the intake
-- reads the rows, and sweeps every few seconds for what a listener missed).

create table if not exists task_inputs (
    id           bigint generated always as identity primary key,   -- the order inputs of a task are delivered in
    task_id      uuid not null references tasks (id) on delete cascade,
    kind         text not null check (kind ~ '^[a-z_]{1,32}$'),      -- which kinds exist is the code's table
    payload      jsonb not null default '{}'::jsonb check (octet_length(payload::text) <= 100000),
    status       text not null default 'pending' check (status in ('pending', 'delivered', 'rejected')),
    reason       text,                                               -- why it was rejected (the validator's sentence)
    result       jsonb,                                              -- what the workflow answered, when delivered
    attempts     integer not null default 0,                         -- sends begun: >0 means look before sending again
    created_at   timestamptz not null default now(),
    delivered_at timestamptz
);
create index if not exists task_inputs_pending_idx on task_inputs (task_id, id) where status = 'pending';
alter table task_inputs enable row level security;

revoke all on task_inputs from anon, authenticated;
grant all on task_inputs to service_role;
grant select on task_inputs to authenticated;
grant insert (task_id, kind, payload) on task_inputs to authenticated;

-- Only the owner of the task sends it input and reads what became of it (not public even with MORGUS_PUBLIC_READ).
drop policy if exists morgus_read on task_inputs;
create policy morgus_read on task_inputs for select to authenticated
    using (exists (select 1 from tasks where tasks.id = task_inputs.task_id and tasks.owner_id = (select auth.uid())));
drop policy if exists morgus_insert on task_inputs;
create policy morgus_insert on task_inputs for insert to authenticated
    with check (status = 'pending'
                and exists (select 1 from tasks where tasks.id = task_inputs.task_id
                                                and tasks.owner_id = (select auth.uid())));

-- As the owner: the inserting user may not call pg_notify() (morgus/db/embedded.py revokes it from PUBLIC).
create or replace function morgus_intake_notify() returns trigger
    language plpgsql security definer set search_path = public, pg_temp as $$
begin
    perform pg_notify('morgus_intake', tg_table_name);
    return null;
end
$$;
drop trigger if exists morgus_tasks_intake on tasks;
create trigger morgus_tasks_intake after insert on tasks
    for each row when (new.status = 'pending') execute function morgus_intake_notify();
-- A task's workflow has begun: the inputs held for it can go now, not at the next sweep.
drop trigger if exists morgus_tasks_began on tasks;
create trigger morgus_tasks_began after update of status on tasks
    for each row when (old.status = 'pending' and new.status <> 'pending') execute function morgus_intake_notify();
drop trigger if exists morgus_inputs_intake on task_inputs;
create trigger morgus_inputs_intake after insert on task_inputs
    for each row execute function morgus_intake_notify();

-- Supabase Realtime: a console sees its inputs become delivered or rejected.
do $$
begin
    if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
        begin
            alter publication supabase_realtime add table task_inputs;
        exception when duplicate_object then null;
        end;
    end if;
end
$$;
