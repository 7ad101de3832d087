-- An ordered log of projection changes for the live stream (SSE), filled by triggers and announced with
-- NOTIFY. Inserts take a transaction-level advisory lock, so event ids commit in id order: a reader that resumes
-- "after id N" can never miss an event that committed late (no gap, no duplicate).
create table if not exists task_events (
    id         bigserial primary key,
    task_id    uuid not null,
    kind       text not null,            -- task | step | artifact
    payload    jsonb not null,
    created_at timestamptz not null default now()
);
create index if not exists task_events_task_idx on task_events (task_id, id);
alter table task_events enable row level security;

create or replace function morgus_record_event() returns trigger language plpgsql as $$
declare
    new_id bigint;
    row_json jsonb := to_jsonb(new);
begin
    perform pg_advisory_xact_lock(7162534);
    insert into task_events (task_id, kind, payload)
    values ((row_json ->> (case when tg_table_name = 'tasks' then 'id' else 'task_id' end))::uuid,
            case tg_table_name when 'tasks' then 'task' when 'task_steps' then 'step' else 'artifact' end,
            row_json)
    returning id into new_id;
    perform pg_notify('morgus_events', new_id::text);
    return new;
end
$$;

drop trigger if exists morgus_tasks_event on tasks;
create trigger morgus_tasks_event after insert or update on tasks
    for each row execute function morgus_record_event();
drop trigger if exists morgus_steps_event on task_steps;
create trigger morgus_steps_event after insert on task_steps
    for each row execute function morgus_record_event();
drop trigger if exists morgus_artifacts_event on artifacts;
create trigger morgus_artifacts_event after insert on artifacts
    for each row execute function morgus_record_event();

-- Supabase: put the projection tables in the realtime publication when it exists.
do $$
begin
    if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
        begin
            alter publication supabase_realtime add table tasks, task_steps, artifacts;
        exception when duplicate_object then null;
        end;
    end if;
end
$$;
