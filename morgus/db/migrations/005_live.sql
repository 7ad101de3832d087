-- The live view of calls in flight (docs/architecture.md, "Watching it work"): one row per LLM reply or shell
-- command being produced, keyed by the seq of the step that will replace it, holding the text so far (capped),
-- so a page opened mid-reply shows it. Its deltas travel as NOTIFY morgus_live (never as task_events rows: the
-- durable log grows only by durable changes). A row is deleted in the transaction that writes its step, and with
-- the rest of its task's rows when the task ends; at most a few rows per running task exist at any time.
-- UNLOGGED: it is a view of work in flight, not a record; a crash empties it, which is right (no WAL for
-- several small rewrites a second per streaming call).
create unlogged table if not exists task_live (
    task_id    uuid not null,
    seq        integer not null,          -- the seq of the step this text becomes (LLM_RESPONSE or TOOL_RESULT)
    kind       text not null,             -- llm | shell
    phase      text,
    run        integer not null,          -- grows when the text starts over (a new attempt, a reply asked again)
    attempt    integer not null,
    text       text not null default '',
    updated_at timestamptz not null default now(),
    primary key (task_id, seq)
);
alter table task_live enable row level security;
