"""Killing the worker or stopping the database mid-task loses nothing and repeats nothing."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

from morgus.app.stack import start_worker_process, terminate
from morgus.contracts import TaskResult
from morgus.db.store import Store
from tests.conftest import assert_steps_contiguous, settings_env, start, task_id_of, wait_for
from tests.helpers.private_db import private_database


def build_heavy_script(slow_s: float) -> list[dict]:
    return [
        {"content": "research done"},
        {"content": "plan done"},
        {"content": "a", "tool_calls": [{"name": "file_write", "arguments": {"path": "a.txt", "content": "A"}}]},
        {
            "content": "b",
            "delay_s": slow_s,
            "tool_calls": [{"name": "file_write", "arguments": {"path": "b.txt", "content": "B"}}],
        },
        {
            "content": "c",
            "delay_s": slow_s,
            "tool_calls": [
                {"name": "file_write", "arguments": {"path": "c.txt", "content": "C"}},
                {"name": "notify_user", "arguments": {"message": "built"}},
            ],
        },
        {"content": "build done"},
        {"content": "execute done"},
        {"content": "finalize done"},
    ]


async def assert_no_duplicates_and_complete(store: Store, task_id: str) -> list[dict]:
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    results = Counter(s["metadata"]["tool_call_id"] for s in steps if s["type"] == "TOOL_RESULT")
    calls = Counter(s["metadata"]["tool_call_id"] for s in steps if s["type"] == "TOOL_CALL")
    assert results == calls and set(results.values()) == {1}, (results, calls)
    assert [s["phase"] for s in steps if s["type"] == "PHASE_START"] == [
        "RESEARCH",
        "PLAN",
        "BUILD",
        "EXECUTE",
        "FINALIZE",
    ]
    assert sum(1 for s in steps if s["type"] == "NOTIFICATION") == 1
    return steps


async def test_worker_sigkill_mid_build_then_restart(client, store, settings, llm):
    marker = llm.add("crash", build_heavy_script(slow_s=2))
    env = settings_env(settings) | {"MORGUS_LOG_LEVEL": "warning"}
    first = start_worker_process(env)
    try:
        handle = await start(client, settings, marker)
        task_id = task_id_of(handle)
        await wait_for(lambda: asyncio.sleep(0, llm.in_flight("crash") > 0), timeout=60, what="the slow BUILD call")
        row = await store.fetch_task(task_id)
        assert row["phase"] == "BUILD"
        os.killpg(first.pid, signal.SIGKILL)  # no goodbye: the worker and anything it started die now
        first.wait()
        second = start_worker_process(env)
        try:
            result: TaskResult = await asyncio.wait_for(handle.result(), 120)
        finally:
            terminate(second)
    finally:
        terminate(first)
    assert result.status == "completed"
    await assert_no_duplicates_and_complete(store, task_id)
    ws = settings.workspace_for(task_id)
    assert [(ws / f).read_text() for f in ("a.txt", "b.txt", "c.txt")] == ["A", "B", "C"]
    # the conversation in Postgres has exactly one tool message per call
    msgs = await store.load_messages(task_id, 10_000)
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    tool_ids = [m.tool_call_id for m in msgs if m.role == "tool"]
    assert len(tool_ids) == len(set(tool_ids))


async def test_database_outage_mid_task(client, llm, temporal_server, tmp_path):
    from morgus.worker import running_workers

    async with private_database(temporal_server, llm, tmp_path) as (pg, settings, store):
        marker = llm.add("db-outage", build_heavy_script(slow_s=1.5))
        async with running_workers(client, store, settings):
            handle = await start(client, settings, marker)
            task_id = task_id_of(handle)

            async def in_build() -> bool:
                row = await store.fetch_task(task_id)
                return bool(row and row["phase"] == "BUILD")

            await wait_for(in_build, what="BUILD phase")
            await asyncio.to_thread(pg.stop, "immediate")
            await asyncio.sleep(5)  # steps, replies and projection all wait for the database meanwhile
            await asyncio.to_thread(pg.start)
            result: TaskResult = await asyncio.wait_for(handle.result(), 120)
        assert result.status == "completed"
        steps = await assert_no_duplicates_and_complete(store, task_id)
        assert steps[-1]["type"] == "TASK_END"
        row = await store.fetch_task(task_id)
        assert row["status"] == "completed" and row["step_count"] == len(steps)
        assert row["total_tokens"] == result.usage.total_tokens
