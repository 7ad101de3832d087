"""Morgus's HTTP API (FastAPI): start, list, inspect, answer and cancel tasks, and a live Server-Sent Events
stream of projection changes fed by Postgres LISTEN/NOTIFY, resumable from the last event id.

Mutating endpoints need `Authorization: Bearer $MORGUS_API_TOKEN` when that is set. `morgus api` binds to
loopback by default. The OpenAPI schema is at /openapi.json.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from morgus.config import Settings, load_settings
from morgus.contracts import Budget, Phase, TaskInput, TaskStatus

MAX_PAGE = 200
EVENT_BATCH = 500


class TaskCreate(BaseModel):
    title: str = Field(default="", max_length=200)
    description: str = Field(min_length=1, max_length=20_000)
    model: str | None = Field(default=None, max_length=200)
    repo_url: str | None = Field(default=None, max_length=2000)
    budget: Budget = Field(default_factory=Budget)


class AnswerBody(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)


class CancelBody(BaseModel):
    reason: str = Field(default="cancelled from the console", max_length=2000)


def _json(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if k in ("id", "task_id") else
                float(v) if k == "cost_usd" else v) for k, v in row.items()}


def create_app(settings: Settings | None = None, *, client: Any = None, store: Any = None) -> FastAPI:
    settings = settings or load_settings()
    state: dict[str, Any] = {"client": client, "store": store}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starter.client import connect_temporal, open_store

        owned = state["store"] is None
        if state["client"] is None:
            state["client"] = await connect_temporal(settings)
        if owned:
            state["store"] = await open_store(settings)
        yield
        if owned:
            await state["store"].close()

    app = FastAPI(title="Morgus", version="0.1.0", lifespan=lifespan,
                  description="Start, watch, answer and cancel Morgus tasks.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"error": f"{where}: {first.get('msg')}" if where else first.get("msg")}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    def authorized(authorization: str | None = Header(default=None)) -> None:
        token = settings.api_token
        if token and authorization != f"Bearer {token}":
            raise HTTPException(401, "this endpoint needs Authorization: Bearer <MORGUS_API_TOKEN>")

    def task_id_of(task_id: str) -> str:
        from starter.tasks import TaskOpError, parse_task_ref

        try:
            return parse_task_ref(task_id)
        except TaskOpError as e:
            raise HTTPException(404, str(e)) from None

    async def row_or_404(task_id: str) -> dict[str, Any]:
        row = await state["store"].fetch_task(task_id)
        if row is None:
            raise HTTPException(404, f"no task with id {task_id}")
        return row

    # ---------------------------------------------------------------- health and config

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        checks = {"temporal": False, "database": False}
        try:
            checks["temporal"] = await asyncio.wait_for(state["client"].service_client.check_health(), 3)
        except Exception:  # noqa: BLE001 - any failure is "unhealthy"
            pass
        try:
            async with state["store"].pool.connection(timeout=3) as conn:
                await conn.execute("select 1")
            checks["database"] = True
        except Exception:  # noqa: BLE001
            pass
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "unhealthy", **checks}, status_code=200 if ok else 503)

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        models = [m for m in dict.fromkeys([settings.model, settings.code_model]) if m]
        return {"models": models, "default_model": settings.model, "temporal_ui_url": settings.temporal_ui_url,
                "namespace": settings.temporal_namespace, "auth": bool(settings.api_token)}

    # ---------------------------------------------------------------- tasks

    @app.post("/api/tasks", status_code=201, dependencies=[Depends(authorized)])
    async def create_task(body: TaskCreate) -> dict[str, Any]:
        from morgus.ids import new_task_id, workflow_id_for
        from starter.tasks import start_task

        task = TaskInput(title=body.title, description=body.description, model=body.model,
                         repo_url=body.repo_url, budget=body.budget)
        task_id = new_task_id()
        await state["store"].insert_pending(task_id, workflow_id_for(task_id), task.display_title(), task.description, task.model)
        try:
            await start_task(state["client"], task, task_queue=settings.task_queue, task_id=task_id)
        except Exception as e:  # noqa: BLE001 - never leave a task "pending" that will never run
            message = f"could not start the task: Temporal refused or is unreachable ({type(e).__name__})"
            await state["store"].mark_failed_to_start(task_id, message)
            raise HTTPException(503, message) from None
        return _json(await state["store"].fetch_task(task_id))  # type: ignore[return-value]

    @app.get("/api/tasks")
    async def list_tasks(status: TaskStatus | None = None, phase: Phase | None = None,
                         q: str | None = Query(default=None, max_length=200),
                         limit: int = Query(default=50, ge=1, le=MAX_PAGE), cursor: str | None = None) -> dict[str, Any]:
        rows, next_cursor = await state["store"].search_tasks(status=status, phase=phase, q=q, limit=limit, cursor=cursor)
        counts = await state["store"].count_by_status()
        return {"tasks": [_json(r) for r in rows], "next_cursor": next_cursor, "counts": counts}

    @app.get("/api/tasks/{task_id}")
    async def get_task(task_id: str) -> dict[str, Any]:
        tid = task_id_of(task_id)
        return _json(await row_or_404(tid)) | {"temporal_url": f"{settings.temporal_ui_url}/namespaces/"
                                               f"{settings.temporal_namespace}/workflows/task-{tid}"}

    @app.get("/api/tasks/{task_id}/steps")
    async def get_steps(task_id: str, after: int = Query(default=-1, ge=-1)) -> dict[str, Any]:
        tid = task_id_of(task_id)
        await row_or_404(tid)
        return {"steps": [_json(s) for s in await state["store"].fetch_steps(tid, after=after)]}

    @app.get("/api/tasks/{task_id}/artifacts")
    async def get_artifacts(task_id: str) -> dict[str, Any]:
        tid = task_id_of(task_id)
        await row_or_404(tid)
        return {"artifacts": [_json(a) for a in await state["store"].fetch_artifacts(tid)]}

    @app.post("/api/tasks/{task_id}/answer", dependencies=[Depends(authorized)])
    async def answer(task_id: str, body: AnswerBody) -> dict[str, Any]:
        from starter.tasks import TaskOpError, answer_task

        tid = task_id_of(task_id)
        await row_or_404(tid)
        try:
            await answer_task(state["client"], tid, body.text)
        except TaskOpError as e:
            raise HTTPException(409, str(e)) from None
        return {"ok": True}

    @app.post("/api/tasks/{task_id}/cancel", dependencies=[Depends(authorized)])
    async def cancel(task_id: str, body: CancelBody | None = None) -> dict[str, Any]:
        from starter.tasks import TaskOpError, cancel_task

        tid = task_id_of(task_id)
        await row_or_404(tid)
        try:
            await cancel_task(state["client"], tid, (body or CancelBody()).reason)
        except TaskOpError as e:
            raise HTTPException(409, str(e)) from None
        return {"ok": True}

    # ---------------------------------------------------------------- live stream

    @app.get("/api/events")
    async def events(request: Request, task_id: str | None = None, after: int | None = None,
                     last_event_id: str | None = Header(default=None)) -> StreamingResponse:
        """Server-Sent Events of projection changes (`task`, `step`, `artifact`), each with its id. Reconnect
        with the `Last-Event-ID` header (browsers do it themselves) or `?after=<id>` to resume with no gap."""
        tid = task_id_of(task_id) if task_id else None
        start = after if after is not None else int(last_event_id) if (last_event_id or "").isdigit() else None
        return StreamingResponse(_stream(request, tid, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _stream(request: Request, task_id: str | None, after: int | None) -> AsyncIterator[str]:
        store = state["store"]
        async with await psycopg.AsyncConnection.connect(settings.dsn, autocommit=True) as listener:
            await listener.execute("listen morgus_events")
            last = after if after is not None else await store.last_event_id()
            yield ": connected\n\n"
            while not await request.is_disconnected():
                batch = await store.events_after(last, task_id=task_id)
                for ev in batch:
                    last = ev["id"]
                    data = json.dumps(_json(ev["payload"]) | {"task_id": str(ev["task_id"])})
                    yield f"id: {ev['id']}\nevent: {ev['kind']}\ndata: {data}\n\n"
                if len(batch) == EVENT_BATCH:
                    continue  # more are waiting: no need to wait for a notification
                notified = False
                async for _ in listener.notifies(timeout=15, stop_after=1):
                    notified = True
                if not notified:
                    yield ": keep-alive\n\n"

    # ---------------------------------------------------------------- the console

    dist = Path(os.environ.get("MORGUS_CONSOLE_DIST", Path(__file__).resolve().parent.parent / "console" / "dist"))
    if dist.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=dist, html=True), name="console")
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        import structlog

        structlog.get_logger().warning("serving on a non-loopback address without MORGUS_API_TOKEN: anyone who "
                                       "reaches it can start and cancel tasks", host=host)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
