"""All SQL of the semantic memory (`knowledge`, migrations/020_memory.sql), on the store's pool and its outage retry.

A note belongs to an owner (`tasks.owner_id` of the task it came from; null is the local single-user scope) and is
only ever searched within that owner's notes. It is keyed by (task, note key), so a retried distil stores nothing
twice. Search is cosine distance over the HNSW index; `hnsw.iterative_scan` keeps the index scan going past other
owners' rows (pgvector 0.8), so a filter on the owner does not starve the result.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from morgus.db.retry import DbRetry, retried
from morgus.db.store import Store

COLUMNS = "id, owner_id, task_id, kind, phase, content, metadata, embedding_model, created_at"


class Knowledge:
    def __init__(self, store: Store) -> None:
        self.pool = store.pool
        self.db_retry: DbRetry | None = store.db_retry

    @retried
    async def owner_of(self, task_id: str) -> str | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("select owner_id from tasks where id = %s", (task_id,))).fetchone()
        return str(row[0]) if row and row[0] else None

    @retried
    async def notes_of_task(self, task_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"select {COLUMNS} from knowledge where task_id = %s order by created_at, id", (task_id,))
            return await cur.fetchall()

    @retried
    async def save_notes(
        self,
        *,
        task_id: str,
        owner_id: str | None,
        phase: str,
        model: str,
        notes: list[tuple[str, str, str, str]],  # (kind, content, key, vector literal)
    ) -> None:
        """All of a task's notes in one transaction; a note already stored for the task is left as it is."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "insert into knowledge (owner_id, task_id, kind, phase, content, note_hash, embedding, "
                "embedding_model, metadata) values (%s, %s, %s, %s, %s, %s, %s::vector, %s, %s) "
                "on conflict (task_id, note_hash) do nothing",
                [
                    (owner_id, task_id, kind, phase, content, key, vec, model, Jsonb({"source": "distil"}))
                    for kind, content, key, vec in notes
                ],
            )

    @retried
    async def search(
        self, owner_id: str | None, vector: str, *, limit: int, max_distance: float | None = None
    ) -> list[dict[str, Any]]:
        """The owner's nearest notes, nearest first (cosine distance, 0 = same direction)."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("set local hnsw.iterative_scan = relaxed_order")
            await cur.execute(
                f"select * from (select {COLUMNS}, embedding <=> %(v)s::vector as distance from knowledge "
                "where owner_id is not distinct from %(o)s::uuid and embedding is not null "
                "order by embedding <=> %(v)s::vector limit %(l)s) nearest "
                "where %(d)s::float8 is null or distance <= %(d)s::float8 order by distance",
                {"v": vector, "o": owner_id, "l": limit, "d": max_distance},
            )
            return await cur.fetchall()

    @retried
    async def list_notes(
        self, *, owner: str | None, local_only: bool = False, task_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first. `owner` (a uuid) or `local_only` (the null owner) narrow it; neither: every owner."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"select {COLUMNS} from knowledge where (%(o)s::uuid is null or owner_id = %(o)s::uuid) "
                "and (not %(local)s or owner_id is null) and (%(t)s::uuid is null or task_id = %(t)s::uuid) "
                "order by created_at desc, id desc limit %(l)s",
                {"o": owner, "local": local_only, "t": task_id, "l": limit},
            )
            return await cur.fetchall()

    @retried
    async def get_note(self, note_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"select {COLUMNS} from knowledge where id = %s", (note_id,))
            return await cur.fetchone()

    @retried
    async def delete_note(self, note_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("delete from knowledge where id = %s", (note_id,))
            return cur.rowcount > 0

    @retried
    async def without_embedding(self, limit: int) -> list[tuple[str, str]]:
        """Notes whose embedding was cleared by a change of dimension (morgus/memory/schema.py): (id, content)."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute("select id, content from knowledge where embedding is null limit %s", (limit,))
            ).fetchall()
        return [(str(i), c) for i, c in rows]

    @retried
    async def set_embedding(self, note_id: str, vector: str, model: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "update knowledge set embedding = %s::vector, embedding_model = %s where id = %s",
                (vector, model, note_id),
            )
