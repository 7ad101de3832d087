"""Watching it work: the model's reply and a running command's output reach the console (the API's event stream and
GET /api/tasks/{id}/live) while they are produced, survive a reconnect, and give way to the durable step, which is
written once. Real Temporal, Postgres, API (uvicorn), the scripted LLM streaming over HTTP, and a real sandbox.
The scripted stream pauses at gates the test opens, and the command waits for files the test writes: no sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import structlog

from morgus.activities.live import MAX_UNITS, LiveStream
from morgus.activities.llm import LlmActivities
from morgus.activities.llm_stream import StreamedReply
from morgus.app.event_stream import live_piece, render_live
from morgus.contracts import TaskResult
from morgus.live_text import TerminalText, notices, utf16_len
from morgus.sandbox.bwrap_backend import BwrapBackend
from morgus.text import clean_text
from tests.conftest import make_settings, start, task_id_of, wait_for
from tests.helpers.api import served
from tests.helpers.backends import bwrap_or_skip

# ---------------------------------------------------------------- without a server


def test_terminal_text_joins_split_characters_and_drops_terminal_control() -> None:
    t = TerminalText()
    out = t.feed("stdout", b"a\xe2\x82") + t.feed("stdout", b"\xac b\x1b[3") + t.feed("stdout", b"1mred\x1b[0m\r")
    out += t.feed("stdout", b"\nnul:\x00:\xff:\x1b]0;title\x07ok\rnext\n")
    assert out == "a\u20ac bred\nnul::\ufffd:ok\nnext\n"
    # stderr has its own decoder: a character split in stdout is not broken by stderr between its halves
    t = TerminalText()
    assert t.feed("stdout", b"\xf0\x9f") + t.feed("stderr", b"E") + t.feed("stdout", b"\x98\x80") == "E\U0001f600"
    # a stray ESC does not hold the text after it back past a newline
    assert TerminalText().feed("stdout", b"x\x1b\nafter") == "x\nafter"


def test_notices_fit_postgres_payload_limit_and_count_utf16_offsets() -> None:
    worst = "\x01" * 2500 + "\U0001f600" * 10
    pieces = [json.loads(n) for n in notices({"task_id": "t"}, worst, 7)]
    assert all(len(n.encode()) < 8000 for n in notices({"task_id": "t"}, worst, 7))
    assert "".join(p["text"] for p in pieces) == worst
    assert [p["offset"] for p in pieces] == [7, 1007, 2007]
    assert utf16_len("a\U0001f600") == 3


def test_a_foreign_notify_is_ignored_and_no_text_can_end_a_frame() -> None:
    for junk in ("", "not json", "[]", '{"task_id": 1}', '{"task_id": "t", "text": "x", "seq": "1"}'):
        assert live_piece(junk) is None
    piece = live_piece(json.dumps({"task_id": "t", "seq": 1, "run": 10, "attempt": 1, "offset": 0,
                                   "text": "a\n\ndata: x\r\n\u2028\x00"}))  # fmt: skip
    assert piece is not None
    frame = render_live(piece)
    assert frame.endswith("\n\n") and frame.count("\n") == 3 and "\r" not in frame
    assert json.loads(frame.split("data: ", 1)[1])["text"] == "a\n\ndata: x\r\n\u2028\x00"


def test_the_stream_accumulator_rebuilds_native_tool_calls_and_usage() -> None:
    from openai.types.chat import ChatCompletionChunk

    from morgus.scripted_llm import _completion, stream_chunks

    reply = {"content": "hi there", "tool_calls": [{"name": "file_write", "arguments": {"path": "a", "content": "é"}}]}
    whole = _completion("m", 0, reply, [{"role": "user", "content": "x"}])
    acc = StreamedReply()
    text = "".join(acc.add(ChatCompletionChunk.model_validate(c)) for c, _ in stream_chunks(whole, True, 3))
    got = acc.completion()
    assert text == "hi there" == got.choices[0].message.content
    call = got.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_0_0",
        "file_write",
        {"path": "a", "content": "é"},
    )
    assert got.choices[0].finish_reason == "tool_calls" and got.usage.total_tokens == whole["usage"]["total_tokens"]
    # a server that repeats the whole name in every delta, and gives no id
    acc = StreamedReply()
    for args in ('{"a"', ": 1}"):
        acc.add(ChatCompletionChunk.model_validate({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": args}}]}, "finish_reason": None}]}))  # fmt: skip
    call = acc.completion().choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_0", "f", '{"a": 1}')


async def test_a_server_that_refuses_streaming_is_asked_without_it(settings, store, llm) -> None:
    marker = llm.add("stream-refused", [{"content": "plain answer", "stream": {"refuse": True}}])
    acts = LlmActivities(store, settings)
    live = LiveStream(store, task_id="00000000-0000-0000-0000-000000000000", seq=0, kind="llm", phase=None, attempt=1)
    resp = await acts._complete(structlog.get_logger(), "scripted", [{"role": "system", "content": marker}], {}, live)
    assert resp.choices[0].message.content == "plain answer" and acts.stream is False
    sent = llm.requests_for("stream-refused")
    assert [r.body.get("stream") for r in sent] == [True, None] and [r.status for r in sent] == [400, 200]


# ---------------------------------------------------------------- the real task, through the API


class Events:
    """One SSE connection to /api/events?task_id=…, read in the background."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def read(self, http: httpx.AsyncClient, task_id: str) -> None:
        async with http.stream("GET", "/api/events", params={"task_id": task_id}) as resp:
            assert resp.status_code == 200
            event: dict[str, Any] = {}
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    event["kind"] = line[7:]
                elif line.startswith("id: "):
                    event["id"] = int(line[4:])
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif line == "" and "data" in event:
                    self.frames.append(event)
                    event = {}

    def live(self) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if f["kind"] == "live"]

    def text(self, seq: int) -> tuple[int, str]:
        """What a console makes of the live pieces of `seq`: the highest run's text (see console/src/live.ts)."""
        run, text = -1, ""
        for p in (p for p in self.live() if p["seq"] == seq):
            if p["run"] > run:
                run, text = p["run"], ""
            if p["run"] != run:
                continue
            if p["snapshot"]:
                text = p["text"] if len(p["text"]) >= len(text) else text
            elif p["offset"] <= utf16_len(text) < p["offset"] + utf16_len(p["text"]):
                text += p["text"][utf16_len(text) - p["offset"] :]
        return run, text


@contextlib.asynccontextmanager
async def reading(http: httpx.AsyncClient, task_id: str) -> AsyncIterator[Events]:
    events = Events()
    job = asyncio.create_task(events.read(http, task_id))
    try:
        yield events
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


async def llm_response(store, task_id: str) -> list[dict]:
    return [s for s in await store.fetch_steps(task_id) if s["type"] == "LLM_RESPONSE"]


# NUL, a lone surrogate and an escape sequence ride along: they must not break the stream, the row or the step
REPLY = "Looking into it: the bakery wants a one-page site \x00 with \ud800 hours \x1b[31m and a map. " * 3


async def test_the_reply_streams_survives_a_reconnect_and_a_retried_attempt_leaves_no_trace(
    client, store, settings, worker, llm
):
    marker = llm.add(
        "stream-llm",
        [
            # attempt 1 pauses at 40 characters, then the provider drops the connection at 60; attempt 2 pauses at 40
            {"content": REPLY, "stream": {"chunk_chars": 5, "pause_after_chars": 40, "fail_after_chars": 60}},
            {"content": "plan done"},
        ],
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    async with served(settings, client, store) as http, reading(http, task_id) as first:
        # attempt 1's text arrives through the API's event stream while no step of the reply exists
        piece = await wait_for(
            lambda: _async([p for p in first.live() if p["attempt"] == 1 and p["kind"] == "llm"]), what="live text"
        )
        seq = piece[0]["seq"]
        assert not [s for s in await store.fetch_steps(task_id) if s["seq"] == seq]
        run1, text1 = first.text(seq)
        assert run1 == 10 and text1 and clean_text(REPLY).startswith(text1)
        llm.release("stream-llm#1")  # attempt 1 goes on to 60 characters and its connection drops
        await wait_for(lambda: _async(first.text(seq)[0] == 20 and len(first.text(seq)[1]) >= 40), what="attempt 2")
        assert not await llm_response(store, task_id)

        # a reload mid-reply: a new connection starts with a snapshot, the API read agrees; attempt 2's text only
        async with reading(http, task_id) as second:
            snap = await wait_for(lambda: _async([p for p in second.live() if p["snapshot"]]), what="snapshot")
            assert snap[0]["seq"] == seq and snap[0]["run"] == 20 and snap[0]["offset"] == 0
            assert clean_text(REPLY).startswith(snap[0]["text"]) and len(snap[0]["text"]) >= 40
            rows = (await http.get(f"/api/tasks/{task_id}/live")).json()["live"]
            assert [(r["seq"], r["kind"], r["attempt"], r["phase"]) for r in rows] == [(seq, "llm", 2, "RESEARCH")]
            assert clean_text(REPLY).startswith(rows[0]["text"])
        llm.release("stream-llm#2")
        result: TaskResult = await asyncio.wait_for(handle.result(), 60)

        assert result.status == "completed"
        steps = await llm_response(store, task_id)
        # the durable step is the completed attempt's reply, once (the dead attempt's 60 characters are not in it)
        assert steps[0]["seq"] == seq and steps[0]["content"] == clean_text(REPLY)
        assert steps[0]["metadata"]["usage"]["completion_tokens"] > 0
        assert (await http.get(f"/api/tasks/{task_id}/live")).json() == {"live": []}
        assert first.text(seq)[1] and clean_text(REPLY).startswith(first.text(seq)[1])
    sent = [r for r in llm.requests_for("stream-llm") if r.index == 0]
    assert len(sent) == 2 and all(
        r.body["stream"] and r.body["stream_options"] == {"include_usage": True} for r in sent
    )


async def _async(value: Any) -> Any:
    return value


def _shell(command: str) -> dict:
    return {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": command, "timeout_s": 60}}]}


# hostile output: a character split across two writes, NUL, an invalid byte, colours and a window title, then 5 MB
COMMAND = (
    "echo first line; printf 'euro:\\xe2\\x82'; sleep 0.2; printf '\\xac nul:\\x00 bad:\\xff "
    "\\033[31mred\\033[0m \\033]0;title\\007ok\\n'; "
    "while [ ! -e go ]; do sleep 0.05; done; echo second line; "
    "head -c 5000000 /dev/zero | tr '\\0' a; echo; while [ ! -e go2 ]; do sleep 0.05; done; echo done"
)


async def test_a_running_command_streams_its_output_before_its_result(
    client, store, temporal_server, postgres, worker_for, llm
):
    bwrap_or_skip()
    root = Path(tempfile.mkdtemp(prefix="morgus-stream-"))  # under /tmp, reachable by the sandbox user
    root.chmod(0o755)
    settings = make_settings(temporal_server, postgres, llm, root)
    backend = BwrapBackend(settings.workspace_root)
    marker = llm.add(
        "stream-shell", [{"content": "research done"}, {"content": "plan done"}, _shell(COMMAND), {"content": "built"}]
    )
    async with worker_for(settings, backend=backend):
        handle = await start(client, settings, marker)
        task_id = task_id_of(handle)
        workspace = settings.workspace_for(task_id)
        async with served(settings, client, store) as http, reading(http, task_id) as events:

            def shell_text() -> str:
                seqs = {p["seq"] for p in events.live() if p["kind"] == "shell"}
                return events.text(min(seqs))[1] if seqs else ""

            await wait_for(lambda: _async("ok\n" in shell_text()), what="the command's first lines, live")
            assert not [s for s in await store.fetch_steps(task_id) if s["type"] == "TOOL_RESULT"]
            text = shell_text()
            assert text.startswith("first line\neuro:\u20ac nul: bad:\ufffd red ok\n"), text
            (workspace / "go").write_text("")
            await wait_for(lambda: _async("live view stops" in shell_text()), what="the capped flood")
            text = shell_text()
            assert "second line\naaaa" in text and utf16_len(text) <= MAX_UNITS + 200
            rows = (await http.get(f"/api/tasks/{task_id}/live")).json()["live"]
            assert rows[0]["kind"] == "shell" and rows[0]["text"] == text
            (workspace / "go2").write_text("")
            result: TaskResult = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "completed"
    tool = [s for s in await store.fetch_steps(task_id) if s["type"] == "TOOL_RESULT"][0]
    # the result is the capped output as before (head and tail, bytes as printed), not the live text
    assert tool["content"].startswith("exit code 0\n--- stdout ---\nfirst line\neuro:\u20ac")
    result_text = [m for m in llm.requests_for("stream-shell")[-1].body["messages"] if m["role"] == "tool"][0][
        "content"
    ]
    assert "bytes omitted" in result_text and "done\n\n--- stderr ---" in result_text
    assert not await store.live_rows(task_id)
