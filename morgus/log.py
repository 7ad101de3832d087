"""structlog set-up. Bind task and workflow ids; never log secrets (the API key is not a loggable field)."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    for noisy in ("httpx", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    # the pool reports every failed connect attempt; Morgus reports outages itself, once, in one line
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR + 10)
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def activity_logger(task_id: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to the running activity's task, workflow, run and attempt."""
    from temporalio import activity

    info = activity.info()
    return structlog.get_logger().bind(
        task_id=task_id,
        workflow_id=info.workflow_id,
        run_id=info.workflow_run_id,
        activity=info.activity_type,
        attempt=info.attempt,
    )
