"""Connecting to Temporal and Postgres with errors a user can act on."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from db.store import Store
from morgus.config import ConfigError, Settings


class Unavailable(ConfigError):
    """A service Morgus needs is not reachable; the message says how to start it."""


def redact_dsn(dsn: str) -> str:
    """host:port/db of a connection string, never its password."""
    try:
        d = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DATABASE_URL)"
    return f"{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')}"


async def connect_temporal(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter
        )
    except Exception:  # noqa: BLE001 - the SDK raises RuntimeError for connection problems
        raise Unavailable(
            f"cannot reach Temporal at {settings.temporal_address}; "
            "start the stack with `morgus up` or set TEMPORAL_ADDRESS"
        ) from None


async def open_store(settings: Settings, *, max_size: int = 4) -> Store:
    store = Store(settings.dsn, max_size=max_size)
    await store.open()
    try:
        await store.pool.wait(timeout=10)
    except Exception:  # noqa: BLE001 - PoolTimeout wraps the connection error
        await store.close()
        hint = "start the stack with `morgus up`" if settings.embedded_db else "check DATABASE_URL"
        raise Unavailable(f"cannot reach Postgres at {redact_dsn(settings.dsn)}; {hint}") from None
    return store
