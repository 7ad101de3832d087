"""The live event stream's fan-out: ONE Postgres LISTEN connection per API process, any number of SSE clients.

The broadcaster owns a cursor into `task_events` (ids commit in id order, see morgus/db/migrations/003_events.sql). A
NOTIFY only wakes it; it then reads every event after its cursor once, renders each SSE frame once, and puts the
frame on every subscriber's bounded queue. A subscriber whose queue is full is dropped (its stream ends; the
client reconnects with Last-Event-ID and catches up from the database) rather than buffered without bound.

A new subscriber registers its queue first, then backfills from the database (the shared pool, briefly) until a
read comes back empty, then drains its queue skipping ids it already sent. Registration happens between two
broadcasts (asyncio runs one at a time), so every event is either committed before the backfill ends or
broadcast after the queue exists: no gap, and the id check removes duplicates.

Live text (a reply being generated, a command's output: morgus/activities/live.py) rides the same connection as
NOTIFY morgus_live, whose payload is the piece itself: it goes straight to the subscribers of that task (the
all-tasks stream does not carry it) as an `event: live` frame with no id, so it never moves a client's resume
point. A task's stream starts, after its backfill, with a `live` snapshot of each call in flight (its text so far,
offset 0); pieces queued meanwhile overlap it, and the client keeps what extends its text (see console/src/live.ts).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import structlog

log = structlog.get_logger()

EVENT_BATCH = 500
QUEUE_SIZE = 2000  # frames a client may lag behind before it is dropped
LIVE_CHANNEL = "morgus_live"
APPLICATION_NAME = "morgus-api-events"  # how the one listener shows in pg_stat_activity
POLL_S = 5.0  # read the table even without a NOTIFY, in case one was lost while reconnecting


class TooManyStreams(Exception):
    pass


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (
            v.isoformat()
            if isinstance(v, datetime)
            else str(v)
            if k in ("id", "task_id")
            else float(v)
            if k == "cost_usd"
            else v
        )
        for k, v in row.items()
    }


def render(ev: dict[str, Any]) -> str:
    data = json.dumps(_jsonable(ev["payload"]) | {"task_id": str(ev["task_id"])})
    return f"id: {ev['id']}\nevent: {ev['kind']}\ndata: {data}\n\n"


LIVE_FIELDS = ("task_id", "seq", "kind", "phase", "run", "attempt", "offset", "text")


def render_live(piece: dict[str, Any]) -> str:
    """A live piece as an SSE frame with no id (ASCII JSON: no byte of the text can end the frame)."""
    data = json.dumps({k: piece.get(k) for k in LIVE_FIELDS} | {"snapshot": bool(piece.get("snapshot"))})
    return f"event: live\ndata: {data}\n\n"


def live_piece(payload: str) -> dict[str, Any] | None:
    """A NOTIFY morgus_live payload, or None if it is not one (anyone with database access can NOTIFY)."""
    try:
        piece = json.loads(payload)
    except ValueError:
        return None
    if (
        not isinstance(piece, dict)
        or not isinstance(piece.get("task_id"), str)
        or not isinstance(piece.get("text"), str)
    ):
        return None
    if not all(isinstance(piece.get(k), int) for k in ("seq", "run", "attempt", "offset")):
        return None
    return piece


@dataclass(eq=False)
class Subscriber:
    task_id: str | None
    start: int | None  # the broadcaster's cursor when the slot was taken: "from now" for a client with no resume id
    # (event id, task id, frame); a live frame has no id
    queue: asyncio.Queue[tuple[int | None, str, str] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class Broadcaster:
    def __init__(
        self, dsn: str, store: Any, *, max_streams: int, keepalive_s: float = 15.0, queue_size: int = QUEUE_SIZE
    ) -> None:
        self.dsn = dsn
        self.queue_size = queue_size
        self.store = store
        self.max_streams = max_streams
        self.keepalive_s = keepalive_s
        self.cursor: int | None = 0
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        try:
            self.cursor = await self.store.last_event_id()
        except Exception as e:  # noqa: BLE001 - the database is not up yet: the listener starts from "now" once it is
            log.warning("event stream: database not reachable at start; will retry", error=type(e).__name__)
            self.cursor = None
        self._task = asyncio.create_task(self._run(), name="morgus-event-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for sub in list(self.subscribers):
            self._drop(sub)

    # ---------------------------------------------------------------- the one listener

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, application_name=APPLICATION_NAME
                ) as conn:
                    await conn.execute("listen morgus_events")
                    await conn.execute(f"listen {LIVE_CHANNEL}")
                    delay = 0.5
                    await self._broadcast()  # whatever committed while (re)connecting
                    loop = asyncio.get_running_loop()
                    polled = loop.time()
                    while True:
                        # one packet may hold many notifications (a live write sends several): all are taken
                        notes = [n async for n in conn.notifies(timeout=POLL_S, stop_after=1)]
                        for note in notes:
                            if note.channel == LIVE_CHANNEL:
                                self._send_live(note.payload)
                        events = not notes or any(n.channel != LIVE_CHANNEL for n in notes)
                        if events or loop.time() - polled >= POLL_S:  # live pieces must not starve the poll
                            await self._broadcast()  # an event, or the poll
                            polled = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the database restarted or is unreachable: reconnect, keep the cursor
                log.warning("event listener lost its connection; reconnecting", error=type(e).__name__, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _broadcast(self) -> None:
        if self.cursor is None:
            self.cursor = await self.store.last_event_id()
        while True:
            batch = await self.store.events_after(self.cursor, limit=EVENT_BATCH)
            # No await from here to the cursor update: a subscriber registers either before or after a batch.
            for ev in batch:
                frame = (ev["id"], str(ev["task_id"]), render(ev))
                for sub in list(self.subscribers):
                    if sub.task_id is None or sub.task_id == frame[1]:
                        try:
                            sub.queue.put_nowait(frame)
                        except asyncio.QueueFull:
                            log.info("dropping a slow event-stream client; it will resume from its last event id")
                            self._drop(sub)
                self.cursor = ev["id"]
            if len(batch) < EVENT_BATCH:
                return

    def _send_live(self, payload: str) -> None:
        piece = live_piece(payload)
        if piece is None:
            return
        frame = render_live(piece)
        for sub in list(self.subscribers):
            if sub.task_id == piece["task_id"]:
                try:
                    sub.queue.put_nowait((None, piece["task_id"], frame))
                except asyncio.QueueFull:
                    self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.subscribers.discard(sub)
        # Discard what it has not read yet (all of it: a hole in the middle would be a gap once it resumes after
        # its last id) and leave only the end marker, so its loop wakes and ends.
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    # ---------------------------------------------------------------- clients

    def subscribe(self, task_id: str | None) -> Subscriber:
        """Take a slot (or raise TooManyStreams). Synchronous, so the count cannot race."""
        if len(self.subscribers) >= self.max_streams:
            raise TooManyStreams()
        sub = Subscriber(task_id, self.cursor, asyncio.Queue(self.queue_size))
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def frames(self, sub: Subscriber, after: int | None) -> AsyncIterator[str]:
        """SSE text for one client: the backfill after `after` (or from now), then live frames and keep-alives."""
        last = after if after is not None else sub.start
        if last is None:
            last = await self.store.last_event_id()
        yield ": connected\n\n"
        while True:  # backfill from the shared pool, one short query at a time
            batch = await self.store.events_after(last, task_id=sub.task_id, limit=EVENT_BATCH)
            for ev in batch:
                last = ev["id"]
                yield render(ev)
            if len(batch) < EVENT_BATCH:
                break
        if sub.task_id is not None:  # the calls in flight, their text so far
            for row in await self.store.live_rows(sub.task_id):
                yield render_live({**row, "task_id": str(row["task_id"]), "offset": 0, "snapshot": True})
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), self.keepalive_s)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                return  # dropped (too slow, or the server is stopping): the client resumes from `last`
            ev_id, _, frame = item
            if ev_id is None:
                yield frame
            elif ev_id > last:
                last = ev_id
                yield frame
