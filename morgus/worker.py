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
from morgus.db.migrate import apply_migrations, set_public_read
from morgus.db.store import Store
from morgus.log import configure_logging
from morgus.sandbox.base import SandboxBackend, SandboxUnavailable, select_backend
from morgus.workflows import TaskWorkflow


def host_queue_name(task_queue: str) -> str:
    """This worker's own queue, for activities that must reach its Docker engine (unique per process)."""
    return f"{task_queue}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def sandbox_activities(settings: Settings, host_queue: str, backend: SandboxBackend | None = None) -> SandboxActivities:
    if backend is not None:
        return SandboxActivities(settings, backend, host_queue)
    try:
        return SandboxActivities(settings, select_backend(settings, workspace_root=settings.workspace_root), host_queue)
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
    workers = build_workers(client, store, settings, **kwargs)
    async with workers.shared, workers.host:
        yield workers


async def run_worker(settings: Settings) -> None:
    from morgus.app.client import connect_temporal, open_store, redact_dsn
    from morgus.app.intake import maybe_intake

    log = structlog.get_logger().bind(task_queue=settings.task_queue)
    await asyncio.to_thread(apply_migrations, settings.dsn)
    await asyncio.to_thread(set_public_read, settings.dsn, settings.public_read)
    client = await connect_temporal(settings, metrics=True)
    store = await open_store(settings, max_size=20)
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
