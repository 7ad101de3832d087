"""Riding out a database outage: the store's one retry, so an outage delays a task instead of failing it.

A `Store` opened for activities carries a `DbRetry` (see `Store.retrying`); every public store method is wrapped by
`retried` and, while Postgres is unreachable, tries again with backoff (0.5 s doubling to 5 s) until
`give_up_after_s` (Settings.db_retry_s) has passed since the first attempt; then the error propagates and Temporal's
activity retry takes over. Meanwhile `on_wait` is called before each pause: the activities pass a heartbeat, so a
long outage is not mistaken for a dead worker. A store without a `DbRetry` (API, CLI) fails at once, as a request
should. Every store method is idempotent (see morgus/db/store.py), so running one again after a dropped connection is
safe; a method's transaction is rolled back whole when its connection dies, never half-written.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import psycopg
import psycopg_pool
import structlog

# What an unreachable database looks like: a refused or dropped connection, or no pooled connection in time.
DB_DOWN = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.InterfaceError)
# OperationalErrors that say nothing about reachability and come back the same on every attempt: a pool closed by
# its owner (the worker shutting down), and a statement over one of Postgres's limits (SQLSTATE class 54:
# "string is too long for tsvector", "stack depth limit exceeded"). Retried, each held its activity for
# db_retry_s (600 s), heartbeating, so nothing looked wrong.
PROGRAM_LIMIT_CLASS = "54"


def is_outage(e: BaseException) -> bool:
    """Whether `e` is the database being unreachable (worth waiting for) rather than an answer it will repeat."""
    if not isinstance(e, DB_DOWN) or isinstance(e, psycopg_pool.PoolClosed):
        return False
    sqlstate = getattr(e, "sqlstate", None)
    return not (isinstance(sqlstate, str) and sqlstate.startswith(PROGRAM_LIMIT_CLASS))


FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0

T = TypeVar("T")
P = ParamSpec("P")


def _no_wait(what: str) -> None:
    return None


@dataclass(frozen=True)
class DbRetry:
    give_up_after_s: float
    on_wait: Callable[[str], None] = _no_wait  # called before each pause, with what is waiting

    async def run(self, op: Callable[[], Awaitable[T]], *, what: str) -> T:
        deadline = time.monotonic() + self.give_up_after_s
        delay = FIRST_DELAY_S
        while True:
            try:
                return await op()
            except DB_DOWN as e:
                if not is_outage(e) or time.monotonic() > deadline:
                    raise
                structlog.get_logger().warning("database unavailable, retrying", what=what, error=str(e)[:200])
                self.on_wait(what)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)


class Retrying(Protocol):
    """What `retried` needs of the object whose method it wraps."""

    db_retry: DbRetry | None


S = TypeVar("S", bound=Retrying)


def retried(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run `method` under its object's `db_retry` (once, whole: a retry never nests inside another)."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.db_retry is None:
            return await method(self, *args, **kwargs)
        return await self.db_retry.run(lambda: method(self, *args, **kwargs), what=method.__name__)

    return run
