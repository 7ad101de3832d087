"""Connecting to Temporal and Postgres with errors a user can act on."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from morgus.config import DEFAULT_TEMPORAL_ADDRESS, ConfigError, Settings
from morgus.db.store import Store


class Unavailable(ConfigError):
    """A service Morgus needs is not reachable; the message says how to start it."""


def redact_dsn(dsn: str) -> str:
    """host:port/db of a connection string, never its password."""
    try:
        d = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DATABASE_URL)"
    return f"{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')}"


def _runtime(settings: Settings) -> Runtime | None:
    """The SDK's Prometheus endpoint (MORGUS_METRICS_ADDR, e.g. 0.0.0.0:9464): worker and task metrics."""
    if not settings.metrics_addr:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.metrics_addr)))


async def connect_temporal(settings: Settings, *, metrics: bool = False) -> Client:
    """Connect with Morgus's data converter. Credentials come from the SDK's environment configuration
    (TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH / _KEY_PATH, TEMPORAL_PROFILE and its TOML file), so the
    same worker reaches a dev server, a self-hosted cluster or Temporal Cloud."""
    config = ClientConfig.load_client_connect_config()
    # Morgus's settings win, unless they are the defaults and a profile names the server.
    if settings.temporal_address != DEFAULT_TEMPORAL_ADDRESS or not config.get("target_host"):
        config["target_host"] = settings.temporal_address
    if settings.temporal_namespace != "default" or not config.get("namespace"):
        config["namespace"] = settings.temporal_namespace
    try:
        return await Client.connect(
            **config, data_converter=pydantic_data_converter, runtime=_runtime(settings) if metrics else None
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
