"""What every Morgus activity shares: heartbeating while it waits, and riding out a database outage."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import psycopg
import psycopg_pool
import structlog
from temporalio import activity

T = TypeVar("T")
_DB_DOWN = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.InterfaceError)


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


async def with_db_retry(op: Callable[[], Awaitable[T]], *, give_up_after_s: float, what: str) -> T:
    """Retry `op` while the database is unreachable (heartbeating meanwhile), so an outage delays a task
    instead of failing it. After `give_up_after_s` the error propagates and Temporal's retry takes over."""
    deadline = time.monotonic() + give_up_after_s
    delay = 0.5
    while True:
        try:
            return await op()
        except _DB_DOWN as e:
            if time.monotonic() > deadline:
                raise
            structlog.get_logger().warning("database unavailable, retrying", what=what, error=str(e)[:200])
            with contextlib.suppress(RuntimeError):  # outside an activity (tests, CLI) there is no heartbeat
                activity.heartbeat(f"waiting for database: {what}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
