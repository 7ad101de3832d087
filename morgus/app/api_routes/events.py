"""/api/events: the live Server-Sent Events stream of projection changes, resumable from the last event id (one
Postgres LISTEN per process, fanned out: morgus/app/event_stream.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from morgus.app.api_auth import current_owner
from morgus.app.api_deps import EventsDep, StoreDep, row_or_404, task_id_of
from morgus.app.api_errors import json_errors
from morgus.app.event_stream import Subscriber, TooManyStreams

PG_BIGINT_MAX = 2**63 - 1

router = APIRouter()


class EventStreamResponse(StreamingResponse):
    """An SSE response that notices a client leaving at once (not at its next write) and always frees its slot."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
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


@router.get(
    "/events",
    status_code=200,
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "`text/event-stream`: events `task`, `step`, `artifact`; `data` is the changed row "
            "as JSON, `id` the event id to resume after. With `task_id`, also `live` (no id): a piece of a call's "
            "text in flight (`seq`, `kind` llm|shell, `run`, `attempt`, `offset` in UTF-16 units, `text`, "
            "`snapshot`), starting with a snapshot of each call in flight",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **json_errors(400, 401, 404, 422, 503),
    },
)
async def events(
    broadcaster: EventsDep,
    store: StoreDep,
    task_id: str | None = Query(default=None, max_length=100),
    after: int | None = Query(default=None, ge=0, le=PG_BIGINT_MAX),
    last_event_id: str | None = Header(default=None, max_length=19, pattern=r"^[0-9]+$"),
) -> EventStreamResponse:
    """Server-Sent Events of projection changes, each with its id. Reconnect with the `Last-Event-ID` header or
    `?after=<id>` to resume with no gap and no duplicate. Beyond MORGUS_API_MAX_STREAMS open streams: 503."""
    tid = task_id_of(task_id) if task_id else None
    if current_owner() is not None:
        # A signed-in user streams one task of their own (the all-tasks stream would show everyone's).
        # TODO: an owner filter in the broadcaster, for a user's dashboard.
        if tid is None:
            raise HTTPException(422, "task_id: a signed-in user's event stream is for one of their tasks; pass task_id")
        await row_or_404(store, tid)
    start = after if after is not None else int(last_event_id) if last_event_id else None
    if start is not None and start > PG_BIGINT_MAX:
        raise HTTPException(422, "Last-Event-ID: not an event id this API gave out")
    try:
        sub: Subscriber = broadcaster.subscribe(tid)
    except TooManyStreams:
        raise HTTPException(
            503,
            f"the server already has {broadcaster.max_streams} open event streams "
            "(MORGUS_API_MAX_STREAMS); try again later",
        ) from None
    return EventStreamResponse(broadcaster.frames(sub, start), on_close=lambda: broadcaster.unsubscribe(sub))
