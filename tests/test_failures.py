"""Iteration cap, transient and permanent LLM errors, and malformed tool calls."""

from __future__ import annotations

import os

import pytest
from temporalio.client import WorkflowFailureError

from morgus.contracts import TaskLimits, TaskResult
from tests.conftest import start, task_id_of, wait_task_status


async def test_iteration_cap_moves_on_then_asks_and_stop_fails_the_task_with_a_clear_error(
    client, store, settings, worker, llm
):
    """RESEARCH and PLAN move on at the cap (a step says so); BUILD asks the user, who stops the task."""
    marker = llm.add(
        "loop", [{"content": "again", "tool_calls": [{"name": "file_list", "arguments": {}}]}], repeat_last=True
    )
    handle = await start(
        client, settings, marker, limits=TaskLimits(max_iterations_per_phase=3, loop_repeats=50, require_work=False)
    )
    row = await wait_task_status(store, task_id_of(handle), "waiting_for_input")
    assert row["pending_question"].startswith("Phase BUILD reached its iteration cap (3 LLM calls)")
    assert len(llm.requests_for("loop")) == 9
    await handle.execute_update("answer", {"text": "stop"}, result_type=str)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "iteration cap (3 LLM calls)" in str(info.value.cause)
    row = await wait_task_status(store, task_id_of(handle), "error")
    assert "phase BUILD reached its iteration cap" in row["error_message"]
    steps = await store.fetch_steps(task_id_of(handle))
    assert steps[-1]["type"] == "ERROR"
    assert [s["phase"] for s in steps if "moving on with what it has" in s["content"]] == ["RESEARCH", "PLAN"]


async def test_llm_500_twice_then_success(client, store, settings, worker, llm):
    marker = llm.add("flaky", [{"content": "ok after retries", "fail": [{"status": 500, "times": 2}]}])
    handle = await start(client, settings, marker)
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    statuses = [r.status for r in llm.requests_for("flaky") if r.index == 0]
    assert statuses == [500, 500, 200]


async def test_llm_429_retry_after_is_honoured(client, settings, worker, llm):
    marker = llm.add("throttled", [{"content": "ok", "fail": [{"status": 429, "times": 1, "retry_after": 2}]}])
    handle = await start(client, settings, marker)
    assert (await handle.result()).status == "completed"
    first, second = [r for r in llm.requests_for("throttled") if r.index == 0]
    assert (first.status, second.status) == (429, 200)
    # the retry waited for the provider's Retry-After (2 s), not the policy's 1 s initial interval
    assert second.at - first.at >= 1.9


async def test_llm_400_fails_the_task_with_the_provider_message(client, store, settings, worker, llm):
    marker = llm.add(
        "rejected",
        [
            {
                "content": "never",
                "fail": [{"status": 400, "times": -1, "message": "Invalid 'messages[1].content': string too long."}],
            }
        ],
    )
    handle = await start(client, settings, marker)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await wait_task_status(store, task_id_of(handle), "error")
    assert row["error_message"] == "LLM provider returned HTTP 400: Invalid 'messages[1].content': string too long."
    assert len(llm.requests_for("rejected")) == 1  # not retried


async def test_llm_401_is_not_retried(client, store, settings, worker, llm):
    marker = llm.add(
        "unauthorized",
        [{"content": "x", "fail": [{"status": 401, "times": -1, "message": "Incorrect API key provided."}]}],
    )
    handle = await start(client, settings, marker)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await wait_task_status(store, task_id_of(handle), "error")
    assert "HTTP 401: Incorrect API key provided." in row["error_message"]


async def test_malformed_tool_calls_go_back_to_the_model(client, store, settings, worker, llm, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    ws = settings.workspace_for("will-be-replaced")
    marker = llm.add(
        "malformed",
        [
            {
                "content": None,
                "delay_s": 1,
                "tool_calls": [{"name": "file_write", "arguments": {"path": "x", "content": ""}}],
            },
            {"content": "research done"},
            {"content": "plan done"},
            {
                "content": None,
                "tool_calls": [
                    {"name": "rm_rf", "arguments": {}},
                    {"name": "file_write", "arguments": "{not json"},
                    {"name": "file_write", "arguments": {"path": "a.txt"}},
                    {"name": "file_read", "arguments": {"path": "../../etc/passwd"}},
                    {"name": "file_read", "arguments": {"path": "/etc/passwd"}},
                    {"name": "file_list", "arguments": {"path": "."}},
                ],
            },
            {
                "content": None,
                "tool_calls": [
                    {"name": "file_read", "arguments": {"path": "link/secret.txt"}},
                    {"name": "file_write", "arguments": {"path": "link/evil.txt", "content": "x"}},
                    {"name": "ask_user", "arguments": {"prompt": "wrong field"}},
                ],
            },
            {"content": "build done despite the errors"},
        ],
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    ws = settings.workspace_for(task_id)
    ws.mkdir(parents=True, exist_ok=True)
    os.symlink(tmp_path, ws / "link")

    result: TaskResult = await handle.result()
    assert result.status == "completed"
    tool_msgs = [m for m in llm.requests_for("malformed")[-1].body["messages"] if m["role"] == "tool"]
    contents = [m["content"] for m in tool_msgs]
    assert "'file_write' is not available in phase RESEARCH" in contents.pop(0)
    assert len(contents) == 9
    assert "'rm_rf' is an unknown tool in phase BUILD" in contents[0]
    assert "not valid JSON" in contents[1]
    assert "content: Field required" in contents[2]
    assert "contains '..'" in contents[3]
    assert "is absolute" in contents[4]
    assert contents[5] == "link -> (link, not followed)"  # the listing itself works
    assert "'link' is a symlink; links in the workspace are never followed" in contents[6]
    assert "'link' is a symlink; links in the workspace are never followed" in contents[7]
    assert "ask_user needs" in contents[8]
    assert all(c.startswith("Error:") for i, c in enumerate(contents) if i != 5)
    assert not (tmp_path / "evil.txt").exists()
    assert "top secret" not in str(llm.requests_for("malformed")[-1].body)
    steps = await store.fetch_steps(task_id)
    results = [s for s in steps if s["type"] == "TOOL_RESULT"]
    assert len(results) == 10 and sum(1 for s in results if not s["metadata"]["ok"]) == 9
    assert [s["seq"] for s in steps] == list(range(len(steps)))
