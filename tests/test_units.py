"""Pieces with their own contracts: the workspace guard, error classification, the protocol checks the
scripted server shares with real providers, the tool registry and the no-repeat guard of tool activities."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import openai
import pytest
from temporalio.testing import ActivityEnvironment

from morgus.activities.llm_errors import classify_error
from morgus.activities.tool_runner import ToolActivities
from morgus.activities.tools import REGISTRY, ToolError
from morgus.activities.tools.workspace import resolve_in_workspace
from morgus.contracts import Phase, TaskInput, ToolCall, ToolRequest
from morgus.scripted_llm import ProtocolError, validate_messages

# ---------------------------------------------------------------- workspace guard


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "~/x", "", "a\x00b"])
def test_paths_that_leave_the_workspace_are_refused(tmp_path: Path, bad: str):
    with pytest.raises(ToolError):
        resolve_in_workspace(tmp_path, bad)


def test_symlinks_out_are_refused_and_in_are_allowed(tmp_path: Path):
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir(), outside.mkdir()
    os.symlink(outside, ws / "out")
    os.symlink("/etc/passwd", ws / "passwd")
    os.symlink(ws / "real", ws / "inside")
    with pytest.raises(ToolError, match="symlink"):
        resolve_in_workspace(ws, "out/file")
    with pytest.raises(ToolError, match="symlink"):
        resolve_in_workspace(ws, "passwd")
    assert resolve_in_workspace(ws, "inside/x") == ws / "real" / "x"
    assert resolve_in_workspace(ws, "a/./b.txt") == ws / "a" / "b.txt"
    assert resolve_in_workspace(ws, ".") == ws


# ---------------------------------------------------------------- LLM errors


def _status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request, json={"error": {"message": "boom"}})
    return openai.APIStatusError("boom", response=response, body={"error": {"message": "provider says boom"}})


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_transient_status_codes_are_retryable(status: int):
    err = classify_error(_status_error(status))
    assert not err.non_retryable and err.type == "LlmTransientError"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_rejections_are_not_retryable_and_keep_the_provider_message(status: int):
    err = classify_error(_status_error(status))
    assert err.non_retryable and err.message == f"LLM provider returned HTTP {status}: provider says boom"


def test_retry_after_becomes_the_next_retry_delay():
    err = classify_error(_status_error(429, {"Retry-After": "7"}))
    assert err.next_retry_delay is not None and err.next_retry_delay.total_seconds() == 7


def test_connection_errors_and_timeouts_are_retryable():
    request = httpx.Request("POST", "http://x")
    assert not classify_error(openai.APIConnectionError(request=request)).non_retryable
    assert not classify_error(openai.APITimeoutError(request=request)).non_retryable


# ---------------------------------------------------------------- protocol


def test_conversation_that_dropped_the_assistant_tool_calls_is_rejected():
    ok = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]
    validate_messages(ok)
    with pytest.raises(ProtocolError, match="must be a response to a preceeding message with 'tool_calls'"):
        validate_messages([m for m in ok if m["role"] != "assistant"])
    with pytest.raises(ProtocolError, match="did not have response messages: c1"):
        validate_messages([*ok[:3], {"role": "user", "content": "next"}])


# ---------------------------------------------------------------- registry and contracts


def test_registry_exposes_the_public_tool_contract():
    params = {name: set(spec.args.model_json_schema()["properties"]) for name, spec in REGISTRY.items()}
    assert params == {
        "file_read": {"path"},
        "file_write": {"path", "content"},
        "file_list": {"path"},
        "notify_user": {"message"},
        "ask_user": {"question"},
        "shell_exec": {"command", "timeout_s"},
        "git_init": set(),
        "git_add": {"paths"},
        "git_commit": {"message"},
        "git_push": {"remote", "branch"},
        "search_web": {"query", "max_results"},
        "fetch_url": {"url"},
        "deploy_local": {"directory"},
        "cloudflare_deploy": {"directory", "project_name"},
        "memory_search": {"query", "limit"},
    }
    from morgus.phases import SANDBOX_TOOLS

    assert {n for n, spec in REGISTRY.items() if spec.sandbox} == SANDBOX_TOOLS
    assert REGISTRY["ask_user"].run is None  # the workflow's own durable wait
    assert REGISTRY["file_list"].openai_schema()["function"]["parameters"]["properties"]["path"]["default"] == "."


def test_task_input_accepts_the_documented_json():
    task = TaskInput.model_validate({"title": "t", "description": "d", "model": None})
    assert task.limits.max_iterations_per_phase == 50
    assert TaskInput(description="Build a thing\nwith details").display_title() == "Build a thing"
    with pytest.raises(ValueError):
        TaskInput(description="")


# ---------------------------------------------------------------- no repeated side effect


async def test_a_tool_whose_result_is_stored_is_not_run_again(settings, store, client, llm, tmp_path):
    """A retried tool activity (worker died after storing its result) returns the stored result unchanged."""
    from tests.conftest import start, task_id_of

    marker = llm.add("guard", [{"content": "done"}])
    handle = await start(client, settings, marker)  # creates the task row; no worker runs it
    task_id = task_id_of(handle)
    from morgus.contracts import ProjectionBatch

    await store.apply_projection(
        ProjectionBatch(task_id=task_id, workflow_id=handle.id, title="t", description="d", model=None)
    )
    tools = ToolActivities(store, settings)
    req = ToolRequest(
        task_id=task_id,
        phase=Phase.BUILD,
        assistant_seq=2,
        result_seq=3,
        step_seq=5,
        call=ToolCall(id="call_1", name="file_write", arguments='{"path": "n.txt", "content": "first"}'),
    )
    env = ActivityEnvironment()
    first = await env.run(tools.execute, REGISTRY["file_write"], req)
    target = settings.workspace_for(task_id) / "n.txt"
    target.write_text("changed by the user afterwards")
    again = await env.run(tools.execute, REGISTRY["file_write"], req)
    assert again == first
    assert target.read_text() == "changed by the user afterwards"  # not rewritten
    steps = await store.fetch_steps(task_id)
    assert [s["seq"] for s in steps if s["type"] == "TOOL_RESULT"] == [5]
    await handle.terminate()
