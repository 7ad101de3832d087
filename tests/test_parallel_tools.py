"""parallel-tools-v1: the calls of one model turn that share nothing run concurrently; results keep the calls' order.

The local web server below counts the requests it is answering at the same moment: a turn whose fetches ran one
after another never has two in flight, so concurrency is shown without timing anything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from morgus.app.stack import start_worker_process, terminate
from morgus.contracts import ApprovalPolicy, PauseResult, Phase, ResumeState, StepType, TaskResult, TaskStatusView
from morgus.workflows.ledger import Ledger
from morgus.workflows.parallel import WORKSPACE, defers_too_much, touches, waits_for
from morgus.workflows.task import MAX_CALLS_IN_FLIGHT
from tests.conftest import (
    assert_steps_contiguous,
    free_port,
    settings_env,
    start,
    task_id_of,
    wait_for,
    wait_task_status,
)
from tests.helpers.tools import http_server
from tests.test_replay import replay_every_run


def fetch(url: str) -> dict[str, Any]:
    return {"name": "fetch_url", "arguments": {"url": url}}


class Pages:
    """A web server whose /p/<name> pages wait until `expected` requests are in flight together (or `patience`
    seconds), and whose /hold/<name> pages wait until `release` is set. Counts hits and the peak in flight."""

    def __init__(self, expected: int, patience: float = 20) -> None:
        self.expected, self.patience = expected, patience
        self.cond = threading.Condition()
        self.in_flight = self.peak = 0
        self.opened = False
        self.hits: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.release = threading.Event()
        self.log: list[tuple[float, str]] = []  # (monotonic time, path): for the failure message

    def handler(self) -> type[BaseHTTPRequestHandler]:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with pages.cond:
                    pages.hits[self.path] += 1
                    pages.log.append((time.monotonic(), self.path))
                    pages.in_flight += 1
                    pages.peak = max(pages.peak, pages.in_flight)
                    pages.opened = pages.opened or pages.in_flight >= pages.expected  # stays open once reached
                    pages.cond.notify_all()
                    if self.path.startswith("/p/"):
                        pages.cond.wait_for(lambda: pages.opened, timeout=pages.patience)
                if self.path.startswith("/hold/"):
                    pages.release.wait(60)
                body = f"page {self.path}".encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the worker that asked was killed meanwhile
                    pass
                finally:
                    with pages.cond:
                        pages.in_flight -= 1
                        pages.answered[self.path] += 1

            def do_POST(self) -> None:  # noqa: N802 (a notification webhook that always fails)
                with pages.cond:
                    pages.hits[f"POST {self.path}"] += 1
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


# ---------------------------------------------------------------- the plan, without a server


def test_what_waits_for_what() -> None:
    calls = [
        touches("fetch_url"),  # 0
        touches("file_write"),  # 1
        touches("file_read"),  # 2: after the write
        touches("file_list"),  # 3: after the write, alongside the read
        touches("notify_user"),  # 4
        touches("shell_exec"),  # 5: after every workspace call
        touches("search_web"),  # 6
        touches("git_commit"),  # 7: after the command
        touches("some_new_tool"),  # 8: unknown tools are treated as changing the workspace
        touches("srv__read", "srv", mcp_read_only=True),  # 9
        touches("srv__write", "srv"),  # 10
        touches("srv__write2", "srv"),  # 11: same server, after 10
        touches("other__write", "other"),  # 12: another server
        touches("srv__read2", "srv", mcp_read_only=True),  # 13: reads what 10 and 11 wrote
    ]
    assert calls[2] == {WORKSPACE: False} and calls[1] == {WORKSPACE: True} and calls[0] == {}
    assert waits_for(calls) == [
        [],
        [],
        [1],
        [1],
        [],
        [1, 2, 3],
        [],
        [1, 2, 3, 5],
        [1, 2, 3, 5, 7],
        [],
        [9],
        [9, 10],
        [],
        [10, 11],
    ]
    assert waits_for([touches("file_read")] * 3) == [[], [], []]
    assert waits_for([touches("shell_exec")] * 3) == [[], [0], [0, 1]]
    # notifications reach the user's webhook in order, alongside the other calls
    assert waits_for([touches("notify_user"), touches("fetch_url"), touches("file_write"), touches("notify_user")]) == [
        [],
        [],
        [],
        [0],
    ]
    # notifications whose text could not come back through the history run one by one (None: arguments not inline)
    assert not defers_too_much([("notify_user", "x" * 30_000)] * 5) and defers_too_much([("notify_user", None)] * 6)
    assert not defers_too_much([("fetch_url", None)] * 50)


def test_ledger_reserves_one_step_per_call_in_order() -> None:
    state = ResumeState(message_count=5, step_seq=9)
    ledger = Ledger(state)
    ledger.queue_message("tool", "Error: refused", tool_call_id="a")  # a call refused before the others: slot 5
    ledger.defer_step(Phase.RESEARCH, StepType.TOOL_RESULT, "Error: refused")
    first, second = ledger.reserve_tool_slots(), ledger.reserve_tool_slots()
    # the refused call's step keeps its place (9) before the calls that run (10, 11)
    assert (first.result_seq, first.step_seq, second.result_seq, second.step_seq) == (6, 10, 7, 11)
    assert ledger.step_count == 12 and ledger.message_count == 8
    ledger.defer_step(Phase.RESEARCH, StepType.TOOL_RESULT, "Error: crashed", seq=second.step_seq)
    ledger.defer_step(Phase.RESEARCH, StepType.NOTIFICATION, "said")
    assert [s.seq for s in ledger.take_deferred()] == [9, 11, 12]


# ---------------------------------------------------------------- a task


async def test_a_turns_calls_run_concurrently_and_answer_in_order(client, store, settings, worker_for, llm) -> None:
    pages = Pages(expected=4)
    with http_server(pages.handler()) as base:
        closed = f"http://127.0.0.1:{free_port()}/nobody-listens"
        research = [fetch(f"{base}/p/{n}") for n in range(4)]
        research.insert(2, fetch(closed))  # fails (connection refused) while the others succeed
        research.insert(1, {"name": "shell_exec", "arguments": {"command": "true"}})  # refused: not in RESEARCH
        research.append({"name": "notify_user", "arguments": {"message": "read four pages"}})
        build = [
            {"name": "file_write", "arguments": {"path": "x.txt", "content": "written first"}},
            {"name": "file_read", "arguments": {"path": "x.txt"}},
            {"name": "file_list", "arguments": {"path": "."}},
            {"name": "shell_exec", "arguments": {"command": "cat x.txt; echo >> x.txt ran"}},
            {"name": "file_read", "arguments": {"path": "x.txt"}},
        ]
        marker = llm.add(
            "parallel",
            [
                {"content": None, "tool_calls": research},
                {"content": "research done"},
                {"content": "plan done"},
                {"content": None, "tool_calls": build},
                {"content": "build done"},
                {"content": "execute done"},
                {"content": "finalize done"},
            ],
        )
        allowed = settings.model_copy(update={"fetch_allow": "127.0.0.1"})
        async with worker_for(allowed):
            handle = await start(client, allowed, marker)
            result: TaskResult = await asyncio.wait_for(handle.result(), 240)
    assert result.status == "completed", result
    assert pages.peak == 4, f"the four fetches of the turn were never in flight together: {pages.log}"
    assert all(pages.hits[f"/p/{n}"] == 1 for n in range(4)), pages.hits

    task_id = task_id_of(handle)
    msgs = await store.load_messages(task_id, 10_000)
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    by_seq = {m.seq: m for m in msgs}
    turns = [m for m in msgs if m.role == "assistant" and m.tool_calls]
    for turn in turns:  # each call's result follows its turn in the order of the calls
        ids = [c.id for c in turn.tool_calls]
        assert [by_seq[turn.seq + 1 + i].tool_call_id for i in range(len(ids))] == ids
    results = [by_seq[turns[0].seq + 1 + i].content or "" for i in range(len(research))]
    assert "page /p/0" in results[0] and "not available" in results[1] and "page /p/1" in results[2], pages.log
    assert results[3].startswith("Error:") and "failed" in results[3]  # the closed port
    assert "page /p/2" in results[4] and "page /p/3" in results[5] and "notified" in results[6]
    built = [by_seq[turns[1].seq + 1 + i].content or "" for i in range(len(build))]
    assert "written first" in built[1]  # the read waited for the write
    assert "x.txt" in built[2]
    assert "written first" in built[3]  # the command ran after them
    assert "ran" in built[4]  # and the last read after the command

    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    results_by_call = Counter(s["metadata"]["tool_call_id"] for s in steps if s["type"] == "TOOL_RESULT")
    assert set(results_by_call.values()) == {1} and len(results_by_call) == len(research) + len(build)
    first_turn = [s for s in steps if s["type"] == "TOOL_RESULT"][: len(research)]
    assert [s["metadata"]["tool_call_id"] for s in first_turn] == [c.id for c in turns[0].tool_calls]
    notes = [s for s in steps if s["type"] == "NOTIFICATION" and s["content"] == "read four pages"]
    assert len(notes) == 1 and notes[0]["seq"] > first_turn[-1]["seq"]
    await replay_every_run(client, handle, record_as="task-parallel-v20")


async def test_worker_killed_mid_turn_reruns_only_unfinished_calls(client, store, settings, llm) -> None:
    """Two calls of the turn finished, one was running when the worker was SIGKILLed: the new worker runs only that
    one again; every call has exactly one result."""
    pages = Pages(expected=1)
    with http_server(pages.handler()) as base:
        calls = [fetch(f"{base}/p/fast1"), fetch(f"{base}/hold/slow"), fetch(f"{base}/p/fast2")]
        marker = llm.add(
            "parallel-kill",
            [
                {"content": None, "tool_calls": calls},
                {"content": "research done"},
                {"content": "plan done"},
                {"content": "build done"},
                {"content": "execute done"},
                {"content": "finalize done"},
            ],
        )
        env = settings_env(settings) | {"MORGUS_LOG_LEVEL": "warning", "MORGUS_FETCH_ALLOW": "127.0.0.1"}
        first = start_worker_process(env)
        second = None
        try:
            handle = await start(client, settings, marker)
            task_id = task_id_of(handle)

            async def two_stored() -> bool:
                msgs = await store.load_messages(task_id, 10_000)
                return pages.hits["/hold/slow"] == 1 and sum(m.role == "tool" for m in msgs) == 2

            await wait_for(two_stored, timeout=90, what="the fast calls stored while the slow one runs")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            pages.release.set()  # the killed worker's request is answered into a closed socket
            second = start_worker_process(env)
            result: TaskResult = await asyncio.wait_for(handle.result(), 180)
        finally:
            pages.release.set()
            terminate(first)
            if second is not None:
                terminate(second)
    assert result.status == "completed", result
    assert pages.hits == Counter({"/p/fast1": 1, "/p/fast2": 1, "/hold/slow": 2}), pages.hits
    msgs = await store.load_messages(task_id, 10_000)
    tools = [m for m in msgs if m.role == "tool"]
    assert [m.tool_call_id for m in tools] == [c.id for m in msgs if m.role == "assistant" for c in m.tool_calls]
    assert [name in (m.content or "") for name, m in zip(("fast1", "slow", "fast2"), tools, strict=True)] == [True] * 3
    assert all((m.content or "").find("Status: 200") >= 0 for m in tools)
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert Counter(s["type"] for s in steps)["TOOL_RESULT"] == 3


async def test_cancelled_while_two_chained_calls_wait_out_a_pause(client, store, settings, worker_for, llm) -> None:
    """Paused while a command runs, two reads wait for it and then for the resume; a cancel ends the task with the
    one PAUSED step the turn wrote (the second read, let through the gate by the first, paused again)."""
    build = [
        {"name": "shell_exec", "arguments": {"command": "touch started; until [ -e go ]; do sleep 0.1; done"}},
        {"name": "file_read", "arguments": {"path": "started"}},
        {"name": "file_list", "arguments": {"path": "."}},
    ]
    marker = llm.add(
        "parallel-pause",
        [{"content": "research done"}, {"content": "plan done"}, {"content": None, "tool_calls": build}],
    )
    async with worker_for(settings):
        handle = await start(client, settings, marker)
        task_id = task_id_of(handle)
        workspace = settings.workspace_for(task_id)
        await wait_for(lambda: asyncio.sleep(0, (workspace / "started").exists()), timeout=120, what="the command")
        await handle.execute_update("pause", result_type=PauseResult)
        (workspace / "go").touch()
        await wait_task_status(store, task_id, "paused")  # the command finished; the reads wait
        await handle.signal("cancel")
        result: TaskResult = await asyncio.wait_for(handle.result(), 120)
    assert result.status == "cancelled", result
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert [s["type"] for s in steps].count("PAUSED") == 1, [(s["type"], s["content"][:40]) for s in steps]
    assert [s["type"] for s in steps][-1] == "TASK_END"
    await replay_every_run(client, handle, record_as="task-parallel-pause-cancel")  # replayed, not recorded


async def test_a_turn_of_many_long_notifications(client, store, settings_with, worker_for, llm, tmp_path) -> None:
    """A model with a large window sends 110 notifications of 20,000 characters in one turn: each is written once,
    in order, and the model is asked again (deferred to the next LLM request, their text made a 2.2 MB payload, over
    Temporal's limit: the task was stuck)."""
    config = tmp_path / "models.json"
    config.write_text(json.dumps({"models": {"scripted": {"context_window": 10_000_000}}}))
    settings = settings_with(MORGUS_MODEL_CONFIG=str(config))
    notes = [{"name": "notify_user", "arguments": {"message": f"{i:03d}" + "x" * 19_997}} for i in range(110)]
    marker = llm.add(
        "parallel-notes",
        [
            {"content": None, "tool_calls": notes, "stream": {"chunk_chars": 100_000}},
            {"content": "noted"},
            {"content": "plan", "delay_s": 60},
        ],
    )
    async with worker_for(settings):
        handle = await start(client, settings, marker)
        asked_again = lambda: len(llm.requests_for("parallel-notes")) >= 2  # noqa: E731
        await wait_for(lambda: asyncio.sleep(0, asked_again()), 120, what="the next LLM request")
        await handle.signal("cancel")
        result: TaskResult = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "cancelled", result
    steps = await store.fetch_steps(task_id_of(handle))
    assert_steps_contiguous(steps)
    said = [s["content"][:3] for s in steps if s["type"] == "NOTIFICATION"]
    assert said == [f"{i:03d}" for i in range(110)]


async def test_cancelled_while_the_second_call_of_a_turn_waits_for_approval(client, store, settings, worker, llm):
    """The first call was approved (and given its slots), the second waits for approval: a cancel ends the task
    with a step in the first call's slot (the steps had a gap where its result would have been)."""
    notes = [{"name": "notify_user", "arguments": {"message": m}} for m in ("first", "second")]
    marker = llm.add("parallel-approve", [{"content": None, "tool_calls": notes}])
    handle = await start(client, settings, marker, approvals=ApprovalPolicy(tools=["notify_user"]))
    task_id = task_id_of(handle)

    async def waiting(n: int) -> str | None:
        pending = (await handle.query("status", result_type=TaskStatusView)).pending_approval
        steps = await store.fetch_steps(task_id)
        return pending.call_id if pending and sum(s["type"] == "APPROVAL" for s in steps) == n else None

    first = await wait_for(lambda: waiting(1), what="the first call's approval")
    await handle.execute_update("decide", {"call_id": first, "decision": "approve"})
    await wait_for(lambda: waiting(2), what="the second call's approval")
    await handle.signal("cancel")
    assert (await asyncio.wait_for(handle.result(), 60)).status == "cancelled"
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert not [s for s in steps if s["type"] == "NOTIFICATION"]  # neither ran
    await replay_every_run(client, handle, record_as="task-parallel-approval-cancel")  # replayed, not recorded


async def test_a_turn_of_many_calls_holds_few_activity_slots(client, store, settings, worker_for, llm) -> None:
    """12 fetches in one turn: never more than MAX_CALLS_IN_FLIGHT at once (the pages wait for one more than that,
    or 3 s), so one task's turn cannot take every activity slot of its worker from the other tasks."""
    pages = Pages(expected=MAX_CALLS_IN_FLIGHT + 1, patience=3)
    with http_server(pages.handler()) as base:
        research = [fetch(f"{base}/p/{n}") for n in range(12)]
        marker = llm.add(
            "parallel-many",
            [
                {"content": None, "tool_calls": research},
                {"content": "research done"},
                {"content": "plan", "delay_s": 60},
            ],
        )
        allowed = settings.model_copy(update={"fetch_allow": "127.0.0.1"})
        async with worker_for(allowed):
            handle = await start(client, allowed, marker)
            await wait_for(lambda: asyncio.sleep(0, len(llm.requests_for("parallel-many")) >= 2), 120, what="PLAN")
            await handle.signal("cancel")
            assert (await asyncio.wait_for(handle.result(), 60)).status == "cancelled"
    assert 1 < pages.peak <= MAX_CALLS_IN_FLIGHT, pages.log
    assert all(pages.hits[f"/p/{n}"] == 1 for n in range(12)), pages.hits
    assert_steps_contiguous(await store.fetch_steps(task_id_of(handle)))
    await replay_every_run(client, handle, record_as="task-parallel-many")  # replayed, not recorded


async def test_cancelled_after_a_call_of_the_turn_failed(client, store, settings, worker_for, llm) -> None:
    """A notification whose webhook keeps failing while a fetch runs (5 attempts, ~15 s of backoff): its last
    failure (a local activity's: an ApplicationError, not an ActivityError) failed the whole task; now it is the
    call's error, and a cancel ends the task with that error step in its slot (the outcomes were never taken: a
    gap)."""
    pages = Pages(expected=1)
    with http_server(pages.handler()) as base:
        calls = [{"name": "notify_user", "arguments": {"message": "hi"}}, fetch(f"{base}/hold/slow")]
        marker = llm.add("parallel-failed", [{"content": None, "tool_calls": calls}])
        failing = settings.model_copy(update={"fetch_allow": "127.0.0.1", "notify_webhook": f"{base}/hook"})
        async with worker_for(failing):
            handle = await start(client, failing, marker)

            async def notification_failed() -> bool:
                history = await handle.fetch_history()
                return any(e.marker_recorded_event_attributes.HasField("failure") for e in history.events)

            await wait_for(notification_failed, 90, interval=1, what="the notification's last attempt")
            await handle.signal("cancel")
            assert (await asyncio.wait_for(handle.result(), 60)).status == "cancelled"
    steps = await store.fetch_steps(task_id_of(handle))
    assert_steps_contiguous(steps)
    failed = [s for s in steps if s["type"] == "TOOL_RESULT" and s["metadata"]["tool"] == "notify_user"]
    assert len(failed) == 1 and "HTTP 500" in failed[0]["content"], failed
    await replay_every_run(client, handle, record_as="task-parallel-failed-cancel")  # replayed, not recorded


async def test_a_local_tool_that_keeps_failing_is_the_models_to_hear(client, store, settings, worker_for, llm) -> None:
    """local-tool-failure-v1: a lone notify_user whose webhook fails every attempt (~15 s of backoff) ended the whole
    task (a local activity's last failure is an ApplicationError); now the model hears it and the task goes on."""
    pages = Pages(expected=1)
    with http_server(pages.handler()) as base:
        note = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "started"}}]}
        marker = llm.add("local-failure", [note, {"content": "research done"}], repeat_last=True)
        failing = settings.model_copy(update={"notify_webhook": f"{base}/hook"})
        async with worker_for(failing):
            handle = await start(client, failing, marker)
            result: TaskResult = await asyncio.wait_for(handle.result(), 120)
    assert result.status == "completed", result
    assert pages.hits["POST /hook"] == 5  # every attempt of TOOL_RETRY, then the model was told
    heard = [m for m in llm.requests_for("local-failure")[1].body["messages"] if m["role"] == "tool"]
    assert len(heard) == 1 and "tool notify_user failed" in heard[0]["content"] and "HTTP 500" in heard[0]["content"]
    steps = await store.fetch_steps(task_id_of(handle))
    assert_steps_contiguous(steps)
    await replay_every_run(client, handle, record_as="task-local-failure-v21")
