-- Issue 15 (pickup): a row the API inserts is claimed in the same statement (`started_at` set, morgus/db/store.py
-- insert_pending) and started by the API itself, so no intake has anything to do with it; its insert no longer
-- wakes every worker's intake (each then read the pending rows for nothing, on the cores the new task's pickup
-- needs). A row inserted by a Supabase client (started_at null) still wakes them at once.
drop trigger if exists morgus_tasks_intake on tasks;
create trigger morgus_tasks_intake after insert on tasks
    for each row when (new.status = 'pending' and new.started_at is null) execute function morgus_intake_notify();
