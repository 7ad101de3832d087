"""A call's live text, written while the call runs: the reply as the model generates it, a command's output.

An activity writes into a `LiveStream`; a background task writes what accumulated to Postgres every INTERVAL_S
(never per token): one upsert of the `task_live` row (the text so far, for a page opened mid-call) and NOTIFY
morgus_live with the new piece and its offset (the API fans it out to the task's event streams). Best effort: a
write that fails is logged and retried with the whole text at the next tick, never waited for, and never fails the
call; the durable step, written once when the call completes, is the record.

Keyed by the seq of the step the text becomes, and a `run` that grows whenever the text starts over (a new activity
attempt; the same call asking the model again), so a dead attempt's text is replaced, never continued. Capped at
MAX_UNITS per call (a 5 MB line costs the database 64 K once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog

from morgus.db.store import Store
from morgus.live_text import LiveWrite, notices, utf16_len
from morgus.text import clean_text

INTERVAL_S = 0.15
MAX_UNITS = 64 * 1024  # UTF-16 units of live text per call
CAPPED = "\n[… the live view stops here at 64 K characters; the whole {what} is in the step when it completes]"

log = structlog.get_logger()


def _cut(text: str, units: int) -> str:
    """The longest start of `text` of at most `units` UTF-16 units."""
    out, n = [], 0
    for c in text:
        n += 2 if ord(c) > 0xFFFF else 1
        if n > units:
            break
        out.append(c)
    return "".join(out)


class LiveStream:
    def __init__(
        self,
        store: Store,
        *,
        task_id: str,
        seq: int,
        kind: str,
        phase: str | None,
        attempt: int,
        pull: Callable[[], str] | None = None,
        interval_s: float = INTERVAL_S,
        max_units: int = MAX_UNITS,
    ) -> None:
        self.store = store  # the plain store: a live write never waits out a database outage
        self.task_id, self.seq, self.kind, self.phase, self.attempt = task_id, seq, kind, phase, attempt
        self.pull = pull  # called at each tick for text gathered elsewhere (a command's output, read in a thread)
        self.interval_s = interval_s
        self.max_units = max_units
        self.part = 0
        self._task: asyncio.Task[None] | None = None
        self._failed = False
        self._reset()

    def _reset(self) -> None:
        self._text = ""  # this run's text so far (capped): a write after a failed one sends all of it
        self._units = 0
        self._pending = ""
        self._sent_units = 0
        self._replace = True  # the next write starts the row over
        self._capped = False
        self._superseded = False  # a newer run owns the row: this one stops writing

    @property
    def run(self) -> int:
        return self.attempt * 10 + self.part

    @property
    def text(self) -> str:
        return self._text

    def write(self, text: str) -> None:
        """Add text (on the event loop; cheap: it is written at the next tick)."""
        if not text or self._capped or self._superseded:
            return
        text = clean_text(text)
        room = self.max_units - self._units
        if utf16_len(text) > room:
            text = _cut(text, room) + CAPPED.format(what="reply" if self.kind == "llm" else "output")
            self._capped = True
        self._text += text
        self._units += utf16_len(text)
        self._pending += text

    def restart(self) -> None:
        """The text starts over: the same call asks the model again."""
        self.part += 1
        self._reset()

    async def flush(self) -> None:
        if self.pull is not None:
            self.write(self.pull())
        if not self._pending or self._superseded:
            return
        replace = self._replace
        piece = self._text if replace else self._pending
        offset = 0 if replace else self._sent_units
        self._pending = ""
        head: dict[str, Any] = {
            "task_id": self.task_id,
            "seq": self.seq,
            "kind": self.kind,
            "phase": self.phase,
            "run": self.run,
            "attempt": self.attempt,
        }
        write = LiveWrite(
            task_id=self.task_id,
            seq=self.seq,
            kind=self.kind,
            phase=self.phase,
            run=self.run,
            attempt=self.attempt,
            text=piece,
            replace=replace,
            notices=notices(head, piece, offset),
        )
        try:
            written = await self.store.live_append(write)
        except Exception as e:  # noqa: BLE001 - the live view is best effort; the step is the record
            self._replace = True  # the row may lack this piece: the next write sends the whole text
            if not self._failed:
                log.warning("live text not written; the call goes on", task_id=self.task_id, error=type(e).__name__)
            self._failed = True
            return
        if not written:
            self._superseded = True
            return
        self._replace = False
        self._sent_units = offset + utf16_len(piece)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def __aenter__(self) -> LiveStream:
        self._task = asyncio.create_task(self._tick(), name=f"live-{self.kind}-{self.seq}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # no last write: the step, written next, replaces the live text (and deletes its row)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
