"""ask_user waits durably for the `answer` signal (from the temporal CLI or `morgus task answer`); cancel works."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from morgus.app.stack import temporal_binary
from morgus.contracts import TaskResult, TaskStatusView
from tests.conftest import ask, settings_env, start, task_id_of, wait_for, wait_task_status


async def sa_lists(client, workflow_id: str, status: str) -> bool:
    query = f"WorkflowId = '{workflow_id}' AND MorgusStatus = '{status}'"
    return any([wf async for wf in client.list_workflows(query)])


async def morgus_cli(settings, *args: str) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, off the event loop (the in-process worker must keep running)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "morgus", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_ask_user_answered_by_temporal_cli_and_by_morgus_cli(client, store, settings, worker, llm):
    marker = llm.add(
        "ask", [ask("Which colour?"), {"content": "noted"}, ask("Which font?"), {"content": "research done"}]
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)

    row = await wait_task_status(store, task_id, "waiting_for_input")
    assert row["pending_question"] == "Which colour?"
    await wait_for(lambda: sa_lists(client, handle.id, "waiting_for_input"), what="MorgusStatus search attribute")
    status: TaskStatusView = await handle.query("status", result_type=TaskStatusView)
    assert status.status == "waiting_for_input" and status.pending_question == "Which colour?"
    assert status.phase == "RESEARCH"

    # exactly the command a user types
    cli = await asyncio.to_thread(
        subprocess.run,
        [
            temporal_binary(),
            "workflow",
            "signal",
            "--address",
            settings.temporal_address,
            "--workflow-id",
            handle.id,
            "--name",
            "answer",
            "--input",
            json.dumps({"text": "blue"}),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr

    async def second_question() -> bool:
        row = await store.fetch_task(task_id)
        return row["status"] == "waiting_for_input" and row["pending_question"] == "Which font?"

    await wait_for(second_question, what="second question")
    answered = await morgus_cli(settings, "task", "answer", task_id, "Georgia, please")
    assert answered.returncode == 0, answered.stderr

    result: TaskResult = await handle.result()
    assert result.status == "completed"
    tool_answers = [m["content"] for m in llm.requests_for("ask")[-1].body["messages"] if m["role"] == "tool"]
    assert tool_answers == ["blue", "Georgia, please"]
    steps = await store.fetch_steps(task_id)
    assert [s["content"] for s in steps if s["type"] in ("QUESTION", "ANSWER")] == [
        "Which colour?",
        "blue",
        "Which font?",
        "Georgia, please",
    ]
    row = await store.fetch_task(task_id)
    assert row["pending_question"] is None

    # answering a task that has ended is one clear line and a non-zero exit
    late = await morgus_cli(settings, "task", "answer", task_id, "too late")
    assert late.returncode != 0
    assert late.stderr.strip().count("\n") == 0 and "has ended" in late.stderr


async def test_answer_cli_refuses_a_task_that_is_not_waiting(client, store, settings, worker, llm):
    marker = llm.add(
        "busy", [{"content": "slow", "delay_s": 3, "tool_calls": [{"name": "file_list", "arguments": {}}]}]
    )
    handle = await start(client, settings, marker)
    await wait_task_status(store, task_id_of(handle), "running")
    res = await morgus_cli(settings, "task", "answer", task_id_of(handle), "hello")
    assert res.returncode == 2
    assert f"task {task_id_of(handle)} is not waiting for an answer" in res.stderr  # refused by the update's validator
    unknown = await morgus_cli(settings, "task", "answer", "00000000-0000-0000-0000-000000000000", "x")
    assert unknown.returncode == 2 and "no task with id" in unknown.stderr
    await handle.signal("cancel")
    assert (await handle.result()).status == "cancelled"


async def test_cancel_while_waiting_for_input(client, store, settings, worker, llm):
    marker = llm.add("cancel-wait", [ask("Proceed?")])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_task_status(store, task_id, "waiting_for_input")
    res = await morgus_cli(settings, "task", "cancel", task_id, "--reason", "changed my mind")
    assert res.returncode == 0, res.stderr
    result: TaskResult = await handle.result()
    assert result.status == "cancelled"
    row = await wait_task_status(store, task_id, "cancelled")
    assert row["pending_question"] is None and row["completed_at"] is not None
    steps = await store.fetch_steps(task_id)
    assert steps[-1]["type"] == "TASK_END" and "changed my mind" in steps[-1]["content"]
    await wait_for(lambda: sa_lists(client, handle.id, "cancelled"), what="cancelled search attribute")


async def test_cancel_during_a_slow_llm_call(client, store, settings, worker, llm):
    marker = llm.add("cancel-run", [{"content": "thinking", "delay_s": 30}])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_for(lambda: _llm_called(llm, "cancel-run"), what="the LLM call to start")
    await handle.signal("cancel")
    result: TaskResult = await handle.result()
    assert result.status == "cancelled"
    await wait_task_status(store, task_id, "cancelled", timeout=10)


async def test_cancel_through_temporal_itself(client, store, settings, worker, llm):
    marker = llm.add("cancel-native", [ask("Wait here?")])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_task_status(store, task_id, "waiting_for_input")
    await handle.cancel()
    await wait_task_status(store, task_id, "cancelled")


async def _llm_called(llm, name: str) -> bool:
    return bool(llm.in_flight(name) or llm.requests_for(name))
