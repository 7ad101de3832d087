"""What every Morgus activity shares: heartbeating while it waits, and a store that rides out a database outage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

from morgus.config import Settings
from morgus.db.retry import DbRetry
from morgus.db.store import Store


@contextlib.asynccontextmanager
async def heartbeating(every_s: float | None = None) -> AsyncIterator[None]:
    """Heartbeat in the background so a slow LLM call or tool is not mistaken for a dead worker."""
    info = activity.info()
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else None
    if not timeout:
        yield
        return
    interval = every_s or max(0.5, timeout / 3)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def heartbeat_while_db_down(what: str) -> None:
    """The store's `DbRetry.on_wait` in activities: a task waiting out a database outage is alive, not stuck."""
    with contextlib.suppress(RuntimeError):  # outside an activity (tests, CLI) there is no heartbeat
        activity.heartbeat(f"waiting for database: {what}")


def activity_store(store: Store, settings: Settings) -> Store:
    """The store as activities use it: every call rides out an outage for up to MORGUS_DB_RETRY_S, heartbeating,
    so an outage delays a task instead of failing it; after that the error propagates and Temporal's retry
    takes over (morgus/db/retry.py)."""
    return store.retrying(DbRetry(give_up_after_s=settings.db_retry_s, on_wait=heartbeat_while_db_down))
