"""Red-team regression tests (issue 11): attacks that broke a defence, kept so they stay broken.

Each test names the attack. Real parts only: the scripted model server, a real worker on the Temporal dev server,
the embedded Postgres, the real `temporal` CLI, real sandboxes, a real API server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from morgus.activities.llm_reply import _tool_params
from morgus.activities.tools import ToolError
from morgus.tool_parse import recover_calls
from tests.conftest import start, task_id_of, wait_task_status
from tests.helpers.gitrepos import bare_repo, commit_a_file, marker_dir, markers, trap_repo
from tests.helpers.temporal import temporal_cli
from tests.helpers.tools import call, ctx_for

DEEP = "[" * 50_000 + "]" * 50_000  # far deeper than Python's json parser can recurse


# ---------------------------------------------------------------- model text: nesting and size


def test_deeply_nested_json_in_model_text_is_prose_not_a_crash():
    """Attack: a model reply of `[[[[…` (prose, a fenced block, a <tool_call> tag, a list around a real call)
    raised RecursionError out of the parser, failing the LLM activity on every retry."""
    tools = _tool_params()
    for text in (DEEP, "[" * 100_000, f"```json\n{DEEP}\n```", f"<tool_call>{DEEP}</tool_call>", '{"a":' * 50_000):
        found = recover_calls(text, tools)
        assert found.calls == [] and found.content == text
    call = {"name": "file_read", "arguments": {"path": "x"}}
    nested: object = call
    for _ in range(900):
        nested = [nested]
    assert recover_calls(json.dumps(nested), tools).calls == []  # a call buried 900 lists deep is data
    # a real call beside the deep junk is still found
    found = recover_calls(f"{DEEP}\n```json\n{json.dumps(call)}\n```", tools)
    assert [(c.name, json.loads(c.arguments)) for c in found.calls] == [("file_read", {"path": "x"})]


def test_a_call_after_much_code_in_the_reply_is_still_found():
    """The bounded search (see bench/bench_tool_parse.py for the cost of 10^6 `{`) still finds a bare call after
    thousands of braces of code shown in prose."""
    call = json.dumps({"name": "file_read", "arguments": {"path": "x"}})
    found = recover_calls("function(){ return {a: 1}; }\n" * 20_000 + call, _tool_params())
    assert [c.name for c in found.calls] == ["file_read"]


DEEP_TURN = "[" * 2_000 + "]" * 2_000  # past the parser's depth, small enough for the context window


def deep_script() -> list[dict]:
    return [
        # prose full of nesting, and native calls whose arguments are nested past the parser's depth
        {
            "content": "data " + DEEP_TURN,
            "tool_calls": [
                {"name": "file_list", "arguments": DEEP_TURN},
                {"name": "ask_user", "arguments": '{"question": ' + DEEP_TURN + "}"},
            ],
        },
        {"content": "[" * 3000 + " research done"},
        {"content": "plan done"},
        {
            "content": "build",
            "tool_calls": [{"name": "file_write", "arguments": '{"path": "a.txt", "content": ' + DEEP_TURN + "}"}],
        },
        {"content": "build done"},
    ]


async def test_a_task_whose_model_writes_deep_nesting_completes(client, store, settings, worker, llm):
    """Attack: the same nesting end to end: native tool-call arguments, ask_user arguments (parsed in the
    workflow, where an uncaught error fails the workflow task forever) and reply text. The task completes
    and the model is told, as a tool error, that its arguments were too deep."""
    marker = llm.add("deep-nesting", deep_script())
    handle = await start(client, settings, marker)
    result = await asyncio.wait_for(handle.result(), timeout=180)
    assert result.status == "completed", result.error_message
    steps = await store.fetch_steps(task_id_of(handle))
    errors = [s["content"] for s in steps if s["type"] == "TOOL_ERROR" or "error" in (s["content"] or "")[:80].lower()]
    assert any("nested too deeply" in (c or "") for c in errors), [s["content"][:120] for s in steps]
    assert any("ask_user needs" in (s["content"] or "") for s in steps)


# ---------------------------------------------------------------- workflow input through Temporal


@pytest.mark.parametrize(
    "payload",
    ["[" * 5000 + "]" * 5000, '{"description": ' + "[" * 5000 + "]" * 5000 + "}"],
    ids=["deep list", "deep description"],
)
async def test_deeply_nested_workflow_input_fails_at_once(payload, client, store, settings, worker, tmp_path):
    """Attack: `temporal workflow start --input '[[[[…]]]]'`. The input was found invalid, but reading its title
    for the error row raised RecursionError in the workflow's __init__: every workflow task failed, forever,
    RUNNING and invisible to the API."""
    task_id = str(uuid.uuid4())
    (tmp_path / "input.json").write_text(payload)
    started = await asyncio.to_thread(
        temporal_cli,
        settings,
        "workflow",
        "start",
        "--type",
        "TaskWorkflow",
        "--task-queue",
        settings.task_queue,
        "--workflow-id",
        f"task-{task_id}",
        "--input-file",
        str(tmp_path / "input.json"),
    )
    assert started.returncode == 0, started.stderr
    handle = client.get_workflow_handle(f"task-{task_id}")
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TaskInputInvalid"
    await wait_task_status(store, task_id, "error")


# ---------------------------------------------------------------- git push through /proc magic links


async def test_a_push_through_a_sandbox_processes_proc_link_into_its_workspace_is_refused(settings, tmp_path):
    """Attack: repo_url `/proc/<pid of a sandboxed process>/cwd/evil.git`. realpath() trusts readlink, which for a
    process in another mount namespace says "/workspace", so the check saw a path outside every workspace; git
    then opened the task's real workspace and ran the receive hooks the sandbox planted there, on the host. (With
    the worker as root the sandbox's files are another uid's and git's ownership check stops it; a worker running
    as the same uid as its bwrap sandbox had no such luck. The repository here is made by the worker's uid.)"""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    mark = marker_dir(tmp_path)
    ctx = ctx_for(settings)
    await commit_a_file(ctx)
    evil = ctx.workspace / "evil.git"
    trap_repo(evil, mark)
    # receive-pack runs this while it advertises refs, before any object arrives
    bare_repo(tmp_path / "alt.git")
    (evil / "objects" / "info" / "alternates").write_text(f"{tmp_path}/alt.git/objects\n")
    with (evil / "config").open("a") as f:
        f.write(f"[core]\n\talternateRefsCommand = touch {mark}/alternateRefsCommand; true\n")
    # a process in its own mount namespace with the workspace as its cwd, as a sandboxed command is
    proc = subprocess.Popen(
        [
            "bwrap",
            "--dev-bind",
            "/",
            "/",
            "--tmpfs",
            "/mnt",
            "--bind",
            str(ctx.workspace),
            "/mnt",
            "--chdir",
            "/mnt",
            "--",
            "sleep",
            "120",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        pid = None
        while pid is None and time.monotonic() < deadline:
            kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            pid = next((int(k) for k in kids if os.readlink(f"/proc/{k}/cwd") == "/mnt"), None)
            await asyncio.sleep(0.1)
        assert pid is not None, "the namespaced process did not start"
        assert os.path.realpath(f"/proc/{pid}/cwd") == "/mnt"  # what fooled the check
        link = tmp_path / "innocent.git"
        link.symlink_to(f"/proc/{pid}/cwd/evil.git")
        for url in (
            f"/proc/{pid}/cwd/evil.git",
            f"/proc/{pid}/root/mnt/evil.git",
            f"file:///proc/{pid}/cwd/evil.git",
            str(link),
        ):
            ctx.repo_url = url
            with pytest.raises(ToolError, match="/proc link"):
                await call("git_push", ctx)
        assert markers(mark) == []
    finally:
        proc.kill()
        proc.wait()


async def test_a_local_push_goes_to_the_checked_real_path(settings, tmp_path):
    """The defence pushes to the real path it checked (a link in the URL is resolved once, not again by git)."""
    bare = bare_repo(tmp_path / "remote.git")
    (tmp_path / "via").symlink_to(tmp_path)
    ctx = ctx_for(settings, repo_url=f"file://{tmp_path}/via/remote.git")
    await commit_a_file(ctx)
    out = await call("git_push", ctx)
    assert "pushed" in out
    assert subprocess.run(["git", "--git-dir", str(bare), "rev-parse", "main"], capture_output=True).returncode == 0
