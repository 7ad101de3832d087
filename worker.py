"""The Morgus worker: runs TaskWorkflow and all activities on the task queue (`python worker.py`).

SIGTERM/SIGINT stop polling and let in-flight activities finish (up to MORGUS_SHUTDOWN_GRACE_S seconds);
whatever does not finish is retried by Temporal on another worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from db.migrate import apply_migrations
from db.store import Store
from morgus.config import ConfigError, Settings, fail, load_settings
from morgus.log import configure_logging
from workflows import TaskWorkflow


def build_worker(client: Client, store: Store, settings: Settings, *, task_queue: str | None = None, **kwargs: object) -> Worker:
    grace = float(os.environ.get("MORGUS_SHUTDOWN_GRACE_S", "30"))
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[TaskWorkflow],
        activities=build_activities(store, settings),
        graceful_shutdown_timeout=timedelta(seconds=grace),
        **kwargs,  # type: ignore[arg-type]
    )


async def run_worker(settings: Settings) -> None:
    from starter.client import connect_temporal, open_store, redact_dsn

    log = structlog.get_logger().bind(task_queue=settings.task_queue)
    await asyncio.to_thread(apply_migrations, settings.dsn)
    client = await connect_temporal(settings)
    store = await open_store(settings, max_size=20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, store, settings)
    log.info("worker started", temporal=settings.temporal_address, database=redact_dsn(settings.dsn), pid=os.getpid())
    try:
        async with worker:
            await stop.wait()
            log.info("shutting down: draining in-flight activities")
    finally:
        await store.close()
    log.info("worker stopped")


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
