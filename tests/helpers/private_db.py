"""A Postgres of the test's own, for tests that stop the database mid-task (the session's is shared by all)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from morgus.config import Settings
from morgus.db.embedded import EmbeddedPostgres
from morgus.db.migrate import apply_migrations
from morgus.db.store import Store
from tests.conftest import free_port, make_settings


@asynccontextmanager
async def private_database(
    temporal_server: Any, llm: Any, tmp_path: Path, *, pool_size: int = 10
) -> AsyncIterator[tuple[EmbeddedPostgres, Settings, Store]]:
    """Started and migrated, with settings pointing at it and an open store; stopped at the end."""
    pg = EmbeddedPostgres(tmp_path / "pg", free_port())
    pg.start()
    apply_migrations(pg.dsn)
    store = Store(pg.dsn, max_size=pool_size)
    await store.open()
    try:
        yield pg, make_settings(temporal_server, pg, llm, tmp_path), store
    finally:
        await store.close()
        pg.stop("immediate")
