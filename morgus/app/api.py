"""Morgus's HTTP API (FastAPI): start, list, inspect, answer and cancel tasks, and a live Server-Sent Events
stream of projection changes (one Postgres LISTEN per process, fanned out; see morgus/app/event_stream.py),
resumable from the last event id.

This module assembles the app; the routes live in morgus/app/api_routes/ (one module per resource), what they depend
on in morgus/app/api_deps.py, the error format in morgus/app/api_errors.py, the models in morgus/app/api_models.py.

The trust boundary (docs/security-api.md): with MORGUS_API_TOKEN set, every /api endpoint needs
`Authorization: Bearer <token>` (reads and the stream included; /healthz and the console's static files do not);
the Host name must be an allowed one; mutating requests must be JSON and same-origin (morgus/app/api_guard.py).
Every error is `{"error": "<one sentence>"}`. The OpenAPI schema is at /openapi.json; console/openapi.json is its
checked-in copy, from which the console's types are generated (`python -m morgus.app.openapi`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from morgus.app.api_deps import ApiState
from morgus.app.api_errors import install_error_handlers
from morgus.app.api_guard import GuardMiddleware
from morgus.app.api_routes import api_router, open_router
from morgus.app.event_stream import Broadcaster
from morgus.config import Settings, load_settings, normalize_host

log = structlog.get_logger()

DESCRIPTION = 'Start, watch, answer and cancel Morgus tasks. Every error is {"error": "<sentence>"}.'


def create_app(
    settings: Settings | None = None, *, client: Any = None, store: Any = None, bind_host: str | None = None
) -> FastAPI:
    """The API. `client` (Temporal) and `store` are opened by the app's lifespan when not given; a given store is
    the caller's to close. `bind_host` is added to the allowed Host names (unless it is a wildcard address)."""
    settings = settings or load_settings()
    state = ApiState(settings=settings, client=client, store=store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from morgus.app.client import connect_temporal, open_store

        owned = state.store is None
        if state.client is None:
            state.client = await connect_temporal(settings)
        if state.store is None:
            state.store = await open_store(settings)
        state.events = Broadcaster(settings.dsn, state.store, max_streams=settings.api_max_streams)
        await state.events.start()
        intake = None
        if settings.intake:  # pending rows and task_inputs of the tables (morgus/app/intake.py)
            from morgus.app.intake import Intake

            intake = Intake(settings, state.store, state.client)
            await intake.start()
        try:
            yield
        finally:
            if intake is not None:
                await intake.stop()
            await state.events.stop()
            if owned:
                await state.store.close()

    app = FastAPI(title="Morgus", version="0.1.0", lifespan=lifespan, description=DESCRIPTION)
    app.state.morgus = state
    hosts = settings.allowed_hosts
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        hosts = (*hosts, normalize_host(bind_host))
    app.add_middleware(GuardMiddleware, allowed_hosts=hosts)
    install_error_handlers(app)
    app.include_router(open_router())
    app.include_router(api_router())
    _serve_console(app, settings.console_dist or Path(__file__).resolve().parents[2] / "console" / "dist")
    return app


def _serve_console(app: FastAPI, dist: Path) -> None:
    if not dist.is_dir():
        return
    from fastapi.staticfiles import StaticFiles

    static = StaticFiles(directory=dist, html=True)

    async def console_or_404(scope: Scope, receive: Receive, send: Send) -> None:
        # The router's fallback, not a mount at "/": a mount would match every path first and turn a wrong
        # method on an API route (405) into the static files' 404.
        if scope["type"] == "http" and scope["path"] != "/api" and not scope["path"].startswith("/api/"):
            await static(scope, receive, send)
            return
        raise StarletteHTTPException(404)

    app.router.default = console_or_404


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        log.warning(
            "serving on a non-loopback address without MORGUS_API_TOKEN: anyone who "
            "reaches it can start and cancel tasks",
            host=host,
        )
    uvicorn.run(create_app(settings, bind_host=host), host=host, port=port, log_level="warning")
