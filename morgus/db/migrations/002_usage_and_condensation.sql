-- Cached prompt tokens and cost on the task; conversation condensations (summaries of older turns).
alter table tasks add column if not exists cached_tokens bigint not null default 0;
alter table tasks add column if not exists cost_usd numeric(14, 6) not null default 0;

create table if not exists task_condensations (
    task_id      uuid not null,
    upto_seq     integer not null,       -- messages below this seq (except protected ones) are summarised
    summary      text not null,
    turns        integer not null,       -- assistant turns the summary covers
    created_at   timestamptz not null default now(),
    primary key (task_id, upto_seq)
);
alter table task_condensations enable row level security;
