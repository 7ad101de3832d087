"""The Morgus worker: runs TaskWorkflow and all activities on the task queue (`python -m morgus.worker`).

SIGTERM/SIGINT stop polling and let in-flight activities finish (up to MORGUS_SHUTDOWN_GRACE_S seconds);
whatever does not finish is retried by Temporal on another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from morgus.activities import build_activities
from morgus.activities.sandbox import SandboxActivities
from morgus.config import ConfigError, Settings, load_settings
from morgus.db.knowledge import Knowledge
from morgus.db.migrate import apply_migrations, set_public_read
from morgus.db.store import Store
from morgus.log import configure_logging
from morgus.mcp.config import load_mcp_config
from morgus.memory.embeddings import Embedder
from morgus.memory.schema import align_dimension, reembed
from morgus.sandbox.base import SandboxBackend, SandboxUnavailable, select_backend
from morgus.sandbox.pool import pooled
from morgus.workflow_bytecode import cache_workflow_bytecode
from morgus.workflows import TaskWorkflow


def host_queue_name(task_queue: str) -> str:
    """This worker's own queue, for activities that must reach its Docker engine (unique per process)."""
    return f"{task_queue}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def sandbox_activities(settings: Settings, host_queue: str, backend: SandboxBackend | None = None) -> SandboxActivities:
    if backend is not None:
        return SandboxActivities(settings, backend, host_queue)
    try:
        return SandboxActivities(
            settings, pooled(settings, select_backend(settings, settings.workspace_root)), host_queue
        )
    except SandboxUnavailable as e:
        structlog.get_logger().warning("no sandbox on this worker; shell tools will report it", reason=str(e))
        return SandboxActivities(settings, None, host_queue, unavailable=str(e))


@dataclass
class MorgusWorkers:
    """Two Temporal workers in one process: the shared task queue, and this host's own queue for the
    activities that must reach its sandboxes."""

    shared: Worker
    host: Worker
    sandbox: SandboxActivities


def build_workers(
    client: Client, store: Store, settings: Settings, *, backend: SandboxBackend | None = None
) -> MorgusWorkers:
    """Limits keep one host from taking more than it can run (MORGUS_MAX_CONCURRENT_*, MORGUS_MAX_CACHED_TASKS);
    on shutdown in-flight activities get MORGUS_SHUTDOWN_GRACE_S to finish, the rest is retried elsewhere."""
    grace = timedelta(seconds=settings.shutdown_grace_s)
    cache_workflow_bytecode([TaskWorkflow])  # the sandbox imports it afresh for every task
    sandbox = sandbox_activities(settings, host_queue_name(settings.task_queue), backend)
    acts = build_activities(store, settings, sandbox)
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[TaskWorkflow],
        activities=acts.shared,
        graceful_shutdown_timeout=grace,
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_tasks,
    )
    host = Worker(
        client,
        task_queue=sandbox.host_queue,
        activities=acts.host,
        graceful_shutdown_timeout=grace,
        max_concurrent_activities=settings.max_concurrent_activities,
    )
    return MorgusWorkers(shared, host, sandbox)


@contextlib.asynccontextmanager
async def running_workers(
    client: Client, store: Store, settings: Settings, **kwargs: Any
) -> AsyncIterator[MorgusWorkers]:
    from morgus.sandbox.pool import SandboxPool

    workers = build_workers(client, store, settings, **kwargs)
    pool = workers.sandbox.backend if isinstance(workers.sandbox.backend, SandboxPool) else None
    async with workers.shared, workers.host:
        keeper = asyncio.create_task(pool.maintain()) if pool is not None else None
        try:
            yield workers
        finally:
            if keeper is not None and pool is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                await asyncio.to_thread(pool.drain, close=True)  # unclaimed containers go with the worker


async def run_worker(settings: Settings) -> None:
    from morgus.app.client import connect_temporal, open_store, redact_dsn
    from morgus.app.intake import maybe_intake

    log = structlog.get_logger().bind(task_queue=settings.task_queue)
    await asyncio.to_thread(apply_migrations, settings.dsn)
    await asyncio.to_thread(align_dimension, settings.dsn, settings.embedding_dimensions)
    await asyncio.to_thread(set_public_read, settings.dsn, settings.public_read)
    client = await connect_temporal(settings, metrics=True)
    store = await open_store(settings, max_size=20)
    if settings.embedding_base_url:  # notes left without an embedding by a change of model (morgus/memory/schema.py)
        await reembed(Knowledge(store), Embedder(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_workers(client, store, settings) as workers, maybe_intake(settings, store, client):
            log.info(
                "worker started",
                temporal=settings.temporal_address,
                database=redact_dsn(settings.dsn),
                pid=os.getpid(),
                host_queue=workers.sandbox.host_queue,
                sandbox=workers.sandbox.backend and workers.sandbox.backend.name,
            )
            await reap(client, workers.sandbox.backend)
            await stop.wait()
            log.info("shutting down: draining in-flight activities")
    finally:
        await store.close()
    log.info("worker stopped")


async def reap(client: Client, backend: SandboxBackend | None) -> None:
    """Remove sandboxes that crashed workers left behind for workflows that have closed."""
    from morgus.activities.sandbox import reap_orphans

    if backend is not None:
        try:
            await reap_orphans(client, backend)
        except Exception as e:  # noqa: BLE001 - reaping is housekeeping; never stop the worker for it
            structlog.get_logger().warning("reaper failed", error=str(e))


def main() -> None:
    code = 0
    try:
        settings = load_settings()
        load_mcp_config(settings.mcp_config)  # a bad MCP config stops the worker here, before it connects
        configure_logging(settings.log_level, settings.log_format)
        asyncio.run(run_worker(settings))
    except ConfigError as e:
        sys.stderr.write(f"morgus worker: {e}\n")
        code = 2
    except KeyboardInterrupt:
        code = 0
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"morgus worker: stopped by an unexpected error: {e}\n")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Avoid the interpreter-shutdown crash of the Temporal core (temporalio/sdk-python#300).
        os._exit(code)


if __name__ == "__main__":
    main()
