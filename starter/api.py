"""Morgus's HTTP API (FastAPI): start, list, inspect, answer and cancel tasks, and a live Server-Sent Events
stream of projection changes (one Postgres LISTEN per process, fanned out; see starter/event_stream.py),
resumable from the last event id.

The trust boundary (docs/security-api.md): with MORGUS_API_TOKEN set, every /api endpoint needs
`Authorization: Bearer <token>` (reads and the stream included; /healthz and the console's static files do not);
the Host name must be an allowed one; mutating requests must be JSON and same-origin (starter/api_guard.py).
Every error is `{"error": "<one sentence>"}`. The OpenAPI schema is at /openapi.json.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from morgus.config import Settings, load_settings, normalize_host
from morgus.contracts import Budget, Phase, TaskInput, TaskLimits, TaskStatus
from starter.api_guard import GuardMiddleware
from starter.api_models import (
    AnswerBody,
    ArtifactsView,
    CancelBody,
    ConfigView,
    ErrorView,
    HealthView,
    OkView,
    StepsView,
    TaskCreate,
    TaskDetail,
    TaskPage,
    TaskView,
    check_line,
)
from starter.event_stream import Broadcaster, Subscriber, TooManyStreams

log = structlog.get_logger()

MAX_PAGE = 200
PG_BIGINT_MAX = 2**63 - 1
PG_INT_MAX = 2**31 - 1


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorView} for code in codes}


def _json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """For a route whose success is not JSON (the event stream): its errors still are."""
    from http import HTTPStatus

    return {code: {"description": HTTPStatus(code).phrase,
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorView"}}}}
            for code in codes}


READ_ERRORS = _errors(400, 401, 404, 422)
WRITE_ERRORS = _errors(400, 401, 403, 404, 409, 415, 422, 503)


class EventStreamResponse(StreamingResponse):
    """An SSE response that notices a client leaving at once (not at its next write) and always frees its slot."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Any) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass  # the client is gone
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            self.on_close()


def parse_cursor(cursor: str | None) -> str | None:
    """`next_cursor` is `<created_at ISO>|<task uuid>`; anything else is the client's mistake (422), not ours."""
    if cursor is None:
        return None
    ts, sep, tid = cursor.partition("|")
    try:
        if not sep:
            raise ValueError
        datetime.fromisoformat(ts)
        UUID(tid)
    except ValueError:
        raise ValueError("cursor: not a cursor this API gave out; pass next_cursor from the previous page") from None
    return cursor


def create_app(settings: Settings | None = None, *, client: Any = None, store: Any = None,
               bind_host: str | None = None) -> FastAPI:
    settings = settings or load_settings()
    state: dict[str, Any] = {"client": client, "store": store, "events": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starter.client import connect_temporal, open_store

        owned = state["store"] is None
        if state["client"] is None:
            state["client"] = await connect_temporal(settings)
        if owned:
            state["store"] = await open_store(settings)
        state["events"] = Broadcaster(settings.dsn, state["store"], max_streams=settings.api_max_streams)
        await state["events"].start()
        try:
            yield
        finally:
            await state["events"].stop()
            if owned:
                await state["store"].close()

    app = FastAPI(title="Morgus", version="0.1.0", lifespan=lifespan,
                  description="Start, watch, answer and cancel Morgus tasks. Every error is {\"error\": \"<sentence>\"}.")
    hosts = settings.allowed_hosts
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        hosts = (*hosts, normalize_host(bind_host))
    app.add_middleware(GuardMiddleware, allowed_hosts=hosts)

    # ---------------------------------------------------------------- errors: always {"error": "<one sentence>"}

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _first_error(exc.errors())}, status_code=422)

    @app.exception_handler(ValidationError)
    async def invalid_model(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"error": _first_error(exc.errors())}, status_code=422)

    @app.exception_handler(ResponseValidationError)
    async def bad_response(request: Request, exc: ResponseValidationError) -> JSONResponse:
        log.error("a response did not match its declared model", path=request.url.path, errors=str(exc.errors())[:2000])
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is no endpoint at {request.url.path} (the API is described at /openapi.json)"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}" + (f" (use {allowed})" if allowed else "")
        elif not isinstance(message, str):
            message = str(message)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The last resort: the client learns nothing of the internals; the log has the trace.
        log.error("unexpected error in the API", path=request.url.path, method=request.method, exc_info=exc)
        return JSONResponse({"error": "internal error"}, status_code=500)

    # ---------------------------------------------------------------- the token

    bearer = HTTPBearer(auto_error=False, description="MORGUS_API_TOKEN, when the server sets one")

    def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        token = settings.api_token
        if not token:
            return
        given = credentials.credentials if credentials is not None else ""
        # Constant time, on bytes (compare_digest refuses non-ASCII str; a header may carry any latin-1 byte).
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
            raise HTTPException(401, "this endpoint needs Authorization: Bearer <MORGUS_API_TOKEN>",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api", dependencies=[Depends(authorized)])

    def task_id_of(task_id: str) -> str:
        from starter.tasks import TaskOpError, parse_task_ref

        try:
            return parse_task_ref(task_id)
        except TaskOpError:
            raise HTTPException(404, "no task with that id (expected a uuid or task-<uuid>)") from None

    async def row_or_404(task_id: str) -> dict[str, Any]:
        row = await state["store"].fetch_task(task_id)
        if row is None:
            raise HTTPException(404, f"no task with id {task_id}")
        return row

    # ---------------------------------------------------------------- health and config

    @app.get("/healthz", response_model=HealthView, responses={503: {"model": HealthView}})
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

    @api.get("/config", response_model=ConfigView, responses=_errors(400, 401))
    async def config() -> ConfigView:
        models = [m for m in dict.fromkeys([settings.model, settings.code_model]) if m]
        return ConfigView(models=models, default_model=settings.model, temporal_ui_url=settings.temporal_ui_url,
                          namespace=settings.temporal_namespace, auth=bool(settings.api_token))

    # ---------------------------------------------------------------- tasks

    @api.post("/tasks", status_code=201, response_model=TaskView, responses=WRITE_ERRORS)
    async def create_task(body: TaskCreate) -> Any:
        from morgus.ids import new_task_id, workflow_id_for
        from starter.tasks import start_task

        task = TaskInput(title=body.title, description=body.description, model=body.model,
                         repo_url=body.repo_url, budget=Budget(**body.budget.model_dump()),
                         limits=TaskLimits(require_work=settings.require_work))
        task_id = new_task_id()
        await state["store"].insert_pending(task_id, workflow_id_for(task_id), task.display_title(), task.description, task.model)
        try:
            await start_task(state["client"], task, task_queue=settings.task_queue, task_id=task_id)
        except Exception as e:  # noqa: BLE001 - never leave a task "pending" that will never run
            message = f"could not start the task: Temporal refused or is unreachable ({type(e).__name__})"
            await state["store"].mark_failed_to_start(task_id, message)
            raise HTTPException(503, message) from None
        return await state["store"].fetch_task(task_id)

    @api.get("/tasks", response_model=TaskPage, responses=READ_ERRORS)
    async def list_tasks(status: TaskStatus | None = None, phase: Phase | None = None,
                         q: str | None = Query(default=None, max_length=200, description="words in the title or description (no wildcards)"),
                         limit: int = Query(default=50, ge=1, le=MAX_PAGE),
                         cursor: str | None = Query(default=None, max_length=200, description="next_cursor of the previous page")) -> Any:
        try:
            check_line(q, "q")
            parse_cursor(cursor)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        rows, next_cursor = await state["store"].search_tasks(status=status, phase=phase, q=q, limit=limit, cursor=cursor)
        counts = await state["store"].count_by_status()
        return {"tasks": rows, "next_cursor": next_cursor, "counts": counts}

    @api.get("/tasks/{task_id}", response_model=TaskDetail, responses=READ_ERRORS)
    async def get_task(task_id: str) -> Any:
        tid = task_id_of(task_id)
        return await row_or_404(tid) | {"temporal_url": f"{settings.temporal_ui_url}/namespaces/"
                                          f"{settings.temporal_namespace}/workflows/task-{tid}"}

    @api.get("/tasks/{task_id}/steps", response_model=StepsView, responses=READ_ERRORS)
    async def get_steps(task_id: str, after: int = Query(default=-1, ge=-1, le=PG_INT_MAX)) -> Any:
        tid = task_id_of(task_id)
        await row_or_404(tid)
        return {"steps": await state["store"].fetch_steps(tid, after=after)}

    @api.get("/tasks/{task_id}/artifacts", response_model=ArtifactsView, responses=READ_ERRORS)
    async def get_artifacts(task_id: str) -> Any:
        tid = task_id_of(task_id)
        await row_or_404(tid)
        return {"artifacts": await state["store"].fetch_artifacts(tid)}

    @api.post("/tasks/{task_id}/answer", response_model=OkView, responses=WRITE_ERRORS)
    async def answer(task_id: str, body: AnswerBody) -> OkView:
        from starter.tasks import TaskOpError, answer_task

        tid = task_id_of(task_id)
        await row_or_404(tid)
        try:
            await answer_task(state["client"], tid, body.text)
        except TaskOpError as e:
            raise HTTPException(409, str(e)) from None
        return OkView(ok=True)

    @api.post("/tasks/{task_id}/cancel", response_model=OkView, responses=WRITE_ERRORS)
    async def cancel(task_id: str, body: CancelBody | None = None) -> OkView:
        """The body is optional, but the request must still say `Content-Type: application/json` (no cross-site form can)."""
        from starter.tasks import TaskOpError, cancel_task

        tid = task_id_of(task_id)
        row = await row_or_404(tid)
        if row["status"] == TaskStatus.cancelled:
            raise HTTPException(409, f"task {tid} is already cancelled")
        try:
            await cancel_task(state["client"], tid, (body or CancelBody()).reason)
        except TaskOpError as e:
            raise HTTPException(409, str(e)) from None
        return OkView(ok=True)

    # ---------------------------------------------------------------- live stream

    @api.get("/events", status_code=200, response_class=EventStreamResponse, responses={
        200: {"description": "`text/event-stream`: events `task`, `step`, `artifact`; `data` is the changed row "
                             "as JSON, `id` the event id to resume after",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **_json_errors(400, 401, 404, 422, 503)})
    async def events(task_id: str | None = Query(default=None, max_length=100),
                     after: int | None = Query(default=None, ge=0, le=PG_BIGINT_MAX),
                     last_event_id: str | None = Header(default=None, max_length=19, pattern=r"^[0-9]+$")) -> Any:
        """Server-Sent Events of projection changes, each with its id. Reconnect with the `Last-Event-ID` header or
        `?after=<id>` to resume with no gap and no duplicate. Beyond MORGUS_API_MAX_STREAMS open streams: 503."""
        tid = task_id_of(task_id) if task_id else None
        start = after if after is not None else int(last_event_id) if last_event_id else None
        if start is not None and start > PG_BIGINT_MAX:
            raise HTTPException(422, "Last-Event-ID: not an event id this API gave out")
        broadcaster: Broadcaster = state["events"]
        try:
            sub: Subscriber = broadcaster.subscribe(tid)
        except TooManyStreams:
            raise HTTPException(503, f"the server already has {broadcaster.max_streams} open event streams "
                                     "(MORGUS_API_MAX_STREAMS); try again later") from None
        return EventStreamResponse(broadcaster.frames(sub, start), on_close=lambda: broadcaster.unsubscribe(sub))

    app.include_router(api)

    # ---------------------------------------------------------------- the console

    dist = settings.console_dist or Path(__file__).resolve().parent.parent / "console" / "dist"
    if dist.is_dir():
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
    return app


def _first_error(errors: Any) -> str:
    """One sentence from pydantic's error list: `<field>: <what is wrong>`."""
    first = list(errors)[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header"))
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    return f"{where}: {msg}" if where else msg


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        log.warning("serving on a non-loopback address without MORGUS_API_TOKEN: anyone who "
                    "reaches it can start and cancel tasks", host=host)
    uvicorn.run(create_app(settings, bind_host=host), host=host, port=port, log_level="warning")
