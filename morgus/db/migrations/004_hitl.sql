-- The user in the loop (issue 14): a task can be paused (`pause`/`resume`) and can wait for the user's yes to a
-- risky call (`decide`). Both are statuses of their own, so the dashboard can say what a task waits for.
alter table tasks drop constraint if exists tasks_status_check;
alter table tasks add constraint tasks_status_check
    check (status in ('pending', 'running', 'waiting_for_input', 'waiting_for_approval', 'paused', 'completed',
                      'error', 'cancelled'));
