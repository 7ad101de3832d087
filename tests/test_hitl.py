"""The user in the loop: pause and resume (across a worker SIGKILL), and calls that wait for the user's yes (approve,
deny with a reason the model reads, approve_all), through the CLI, the API and the `temporal` CLI. Real Temporal,
Postgres, git and the scripted LLM; nothing here needs a sandbox (a denied shell_exec never reaches one)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from morgus.app.auto_answer import UNATTENDED_DENIAL, decision_for
from morgus.app.stack import start_worker_process, terminate
from morgus.contracts import ApprovalPolicy, PauseResult, ResumeState, SayResult, TaskResult, TaskStatusView
from morgus.workflows.approvals import approval_needed, command_matches
from morgus.workflows.task import DENIED
from tests.conftest import assert_steps_contiguous, settings_env, start, task_id_of, wait_for, wait_task_status
from tests.helpers.api import is_error, served
from tests.helpers.gitrepos import bare_repo
from tests.helpers.temporal import temporal_cli
from tests.test_human import morgus_cli
from tests.test_replay import replay_every_run


def calls(*calls: tuple[str, dict], delay_s: float = 0) -> dict:
    reply: dict = {"content": None, "tool_calls": [{"name": n, "arguments": a} for n, a in calls]}
    if delay_s:
        reply["delay_s"] = delay_s
    return reply


def tool_results(request) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "tool"]


async def status_of(handle) -> TaskStatusView:
    return await handle.query("status", result_type=TaskStatusView)


# ---------------------------------------------------------------- the policy, without a server


@pytest.mark.parametrize(
    "command",
    [
        "curl https://x",
        "  curl https://x",
        "/usr/bin/curl https://x",
        "bash -c 'curl https://x'",
        'sh -c "cd /tmp && curl x"',
        "c\\url x",
        "'c'url x",
        'c""url x',
        "cu\\\nrl x",
        "FOO=1 curl x",
        "env -i HOME=/ curl x",
        "sudo -E curl x",
        "echo https://x | xargs curl",
        "echo $(curl x)",
        "echo `curl x`",
        "curl${IFS}x",
        "CURL x",
        "ls; curl x",
        "true&&curl x",
    ],
)
def test_the_command_patterns_see_through_the_usual_disguises(command: str) -> None:
    assert command_matches("curl", command), command


def test_several_word_patterns_and_what_does_not_match() -> None:
    assert command_matches("npm publish", "npm --tag beta publish")
    assert command_matches("git push", "git -C repo push origin main")
    assert command_matches("git push", "bash -c 'git push'")
    assert not command_matches("npm publish", "npm test; echo publish")  # another command's word
    assert command_matches("git push", "git commit -m 'push later'")  # generous: quoted words are words too
    for harmless in ("echo curly", "npm install curl-lib", "ssh-keygen -t ed25519", "git status", "scpx"):
        assert not command_matches("curl", harmless) and not command_matches("ssh", harmless), harmless
    assert not command_matches("  ", "anything")
    # what it cannot catch (documented): a command built at run time
    assert not command_matches("curl", "X=cu; ${X}rl https://x")
    assert not command_matches("curl", "python3 -c 'import urllib.request'")


def test_approval_needed_follows_the_policy_and_approve_all() -> None:
    policy = ApprovalPolicy()
    assert approval_needed(None, [], "git_push", "{}") is None
    assert approval_needed(policy, [], "git_push", "{}") == "the approval policy names git_push"
    assert approval_needed(policy, ["git_push"], "git_push", "{}") is None
    assert approval_needed(policy, [], "file_write", "{}") is None
    assert approval_needed(policy, [], "shell_exec", json.dumps({"command": "npm ci && npm publish"}))
    assert approval_needed(policy, [], "shell_exec", json.dumps({"command": "npm test"})) is None
    assert approval_needed(policy, [], "shell_exec", '{"command": "\\u0063url x"}')  # JSON escapes are decoded
    assert approval_needed(policy, [], "shell_exec", '{"command": curl x')  # not JSON: the raw text is read
    assert approval_needed(policy, [], "shell_exec", None) == "the command is too large to check"
    assert approval_needed(ApprovalPolicy(tools=["shell_exec"], commands=[]), [], "shell_exec", '{"command":"ls"}')
    for bad in ({"tools": ["Git Push"]}, {"commands": ["curl\nx"]}, {"commands": [" "]}, {"other": 1}):
        with pytest.raises(ValueError):
            ApprovalPolicy.model_validate(bad)
    old = ResumeState().model_dump(mode="json")
    del old["paused"], old["approved_tools"]  # a run carried from before pause/approvals still decodes
    assert ResumeState.model_validate(old).approved_tools == []
    assert decision_for({"metadata": {"call_id": "c1"}}) == ("c1", "deny", UNATTENDED_DENIAL)


# ---------------------------------------------------------------- pause and resume


async def test_pause_mid_build_survives_a_worker_sigkill_and_resumes_where_it_stopped(client, store, settings, llm):
    marker = llm.add(
        "pause-kill",
        [
            {"content": "research done"},
            {"content": "plan done"},
            calls(("file_write", {"path": "a.txt", "content": "A"}), delay_s=4),  # paused while this is in flight
            calls(("file_write", {"path": "b.txt", "content": "B"})),
            {"content": "build done"},
            {"content": "executed"},
            {"content": "finalized"},
        ],
    )
    env = settings_env(settings) | {"MORGUS_LOG_LEVEL": "warning"}
    first = start_worker_process(env)
    second = None
    try:
        handle = await start(client, settings, marker)
        task_id = task_id_of(handle)
        await wait_for(lambda: asyncio.sleep(0, llm.in_flight("pause-kill") > 0), what="BUILD's first call")
        with pytest.raises(WorkflowUpdateFailedError) as refused:  # not paused: nothing to resume
            await handle.execute_update("resume", result_type=PauseResult)
        assert refused.value.cause.message == f"task {task_id} is not paused"
        paused = await morgus_cli(settings, "task", "pause", task_id)
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.strip() == (
            f"task {task_id} pauses once its running call has finished; no LLM or tool call starts until it is resumed"
        )
        again = await morgus_cli(settings, "task", "pause", task_id)
        assert again.returncode == 2 and again.stderr.strip() == f"morgus: task {task_id} is already paused"
        row = await wait_task_status(store, task_id, "paused")  # the running LLM call finished; its tool call waits
        assert row["phase"] == "BUILD"
        assert len(llm.requests_for("pause-kill")) == 3
        assert not (settings.workspace_for(task_id) / "a.txt").exists()

        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = start_worker_process(env)
        status = await status_of(handle)  # answered by the new worker, which replayed the task: still paused
        assert status.status == "paused" and status.paused
        steps = await store.fetch_steps(task_id)
        assert [s["type"] for s in steps][-1] == "PAUSED"
        assert len(llm.requests_for("pause-kill")) == 3  # nothing ran while paused, nor on the new worker's replay

        cli = await asyncio.to_thread(
            temporal_cli, settings, "workflow", "update", "execute", "--workflow-id", handle.id, "--name", "resume"
        )
        assert cli.returncode == 0, cli.stderr
        result: TaskResult = await asyncio.wait_for(handle.result(), 120)
    finally:
        terminate(first)
        if second is not None:
            terminate(second)
    assert result.status == "completed"
    requests = llm.requests_for("pause-kill")
    assert [r.index for r in requests] == [0, 1, 2, 3, 4, 5, 6]  # each turn once: nothing re-run, nothing skipped
    assert "a.txt" in tool_results(requests[3])[-1]  # the held call's result reached the next turn
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    kinds = [s["type"] for s in steps]
    assert kinds.count("PAUSED") == 1 and kinds.count("RESUMED") == 1
    between = kinds[kinds.index("PAUSED") : kinds.index("RESUMED") + 1]
    assert between == ["PAUSED", "RESUMED"]  # no call started while paused
    assert kinds[kinds.index("RESUMED") + 1] == "TOOL_RESULT"  # the held call ran first, once
    assert sum(1 for s in steps if s["type"] == "TOOL_RESULT") == 2
    assert (settings.workspace_for(task_id) / "a.txt").read_text() == "A"


async def test_a_paused_task_can_be_cancelled_and_a_cancelling_task_refuses_messages(
    client, store, settings, worker_for, llm
):
    marker = llm.add("pause-cancel", [{"content": "thinking", "delay_s": 3}, {"content": "research done"}])
    async with worker_for(settings):
        handle = await start(client, settings, marker)
        task_id = task_id_of(handle)
        await wait_for(lambda: asyncio.sleep(0, llm.in_flight("pause-cancel") > 0), what="the first call")
        await handle.execute_update("pause", result_type=PauseResult)
        await wait_task_status(store, task_id, "paused")
        async with served(settings, client, store) as http:
            again = await http.post(f"/api/tasks/{task_id}/pause", json={})
            assert is_error(again, 409) == f"task {task_id} is already paused"
            is_error(await http.post(f"/api/tasks/{task_id}/resume", json={"now": True}), 422)
    # no worker: the cancel and the message reach the task in one activation, the cancel first
    await handle.signal("cancel")
    say = asyncio.create_task(handle.execute_update("say", {"text": "too late"}, result_type=SayResult))
    async with worker_for(settings):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await say
        assert refused.value.cause.message == f"task {task_id} is being cancelled; it takes no more messages"
        assert (await handle.result()).status == "cancelled"
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert [s["type"] for s in steps][-2:] == ["PAUSED", "TASK_END"]
    assert not [s for s in steps if s["type"] == "USER_MESSAGE"]
    assert len(llm.requests_for("pause-cancel")) == 1


# ---------------------------------------------------------------- approvals


async def test_approve_deny_and_approve_all_and_a_push_never_runs_unapproved(
    client, store, settings, worker, llm, tmp_path
):
    bare = bare_repo(tmp_path / "remote.git")
    marker = llm.add(
        "approvals",
        [
            {"content": "research done"},
            {"content": "plan done"},
            calls(
                ("file_write", {"path": "README.md", "content": "# hi\n"}),
                ("git_init", {}),
                ("git_add", {}),
                ("git_commit", {"message": "first"}),
            ),
            {"content": "build done"},
            calls(("shell_exec", {"command": "bash -c 'curl -s https://example.invalid'"})),
            {"content": "executed without the network"},
            calls(("git_push", {})),
            calls(("notify_user", {"message": "pushed"})),
            calls(("notify_user", {"message": "pushed, again"})),
            {"content": "finalized"},
        ],
    )
    policy = ApprovalPolicy(tools=["git_push", "notify_user"])
    handle = await start(client, settings, marker, repo_url=str(bare), approvals=policy)
    task_id = task_id_of(handle)

    # EXECUTE: the curl waits; denied through the CLI, the reason is the call's result for the model
    row = await wait_task_status(store, task_id, "waiting_for_approval")
    pending = (await status_of(handle)).pending_approval
    assert pending is not None and pending.tool == "shell_exec" and pending.why == "the command matches 'curl'"
    assert json.loads(pending.arguments) == {"command": "bash -c 'curl -s https://example.invalid'"}
    assert row["pending_question"].startswith("Approve shell_exec(")
    shown = await morgus_cli(settings, "task", "show", task_id)
    assert "waiting for approval" in shown.stdout
    denied = await morgus_cli(settings, "task", "deny", task_id, "--reason", "no network calls, use the files")
    assert denied.returncode == 0, denied.stderr
    assert denied.stdout.strip() == f"shell_exec call {pending.call_id} of task {task_id} denied"

    # FINALIZE: git_push waits, and nothing reaches the remote while it does
    await wait_for(lambda: _pending_tool(handle, "git_push"), what="git_push to wait for approval")
    pending = (await status_of(handle)).pending_approval
    assert pending is not None
    assert subprocess.run(["git", "-C", str(bare), "rev-parse", "--verify", "-q", "main"]).returncode != 0
    for bad, error in (
        ({"call_id": "call_nope", "decision": "approve"}, "'call_nope' is not waiting for approval"),
        ({"call_id": pending.call_id, "decision": "maybe"}, "the decision must be"),
        ({"call_id": pending.call_id}, "the decision must be"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("decide", bad)
        assert error in str(refused.value.cause), bad
    async with served(settings, client, store) as http:
        url = f"/api/tasks/{task_id}/approvals"
        assert "'other' is not waiting" in is_error(
            await http.post(url, json={"call_id": "other", "decision": "approve"}), 409
        )
        is_error(await http.post(url, json={"call_id": pending.call_id, "decision": "yes"}), 422)
        is_error(await http.post(url, json={"call_id": "x\x1b[2J", "decision": "approve"}), 422)
        assert subprocess.run(["git", "-C", str(bare), "rev-parse", "--verify", "-q", "main"]).returncode != 0
        r = await http.post(url, json={"call_id": pending.call_id, "decision": "approve", "reason": "ship it"})
        assert r.status_code == 200, r.text
        assert r.json() == {"call_id": pending.call_id, "tool": "git_push", "decision": "approve"}

        # the first notify_user waits; approve_all through the `temporal` CLI lets the second run unasked
        await wait_for(lambda: _pending_tool(handle, "notify_user"), what="notify_user to wait for approval")
        pending = (await status_of(handle)).pending_approval
        assert pending is not None
        cli = await asyncio.to_thread(
            temporal_cli, settings, "workflow", "update", "execute", "--workflow-id", handle.id, "--name", "decide",
            "--input", json.dumps({"call_id": pending.call_id, "decision": "approve_all"}),
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        result: TaskResult = await handle.result()
        assert result.status == "completed"
        late = await http.post(url, json={"call_id": pending.call_id, "decision": "approve"})
        assert is_error(late, 409) == f"task {task_id} has ended (completed); there is nothing to approve"

    assert subprocess.run(["git", "-C", str(bare), "log", "-1", "--format=%s", "main"], capture_output=True,
                          text=True).stdout.strip() == "first"  # fmt: skip
    requests = llm.requests_for("approvals")
    assert [r.index for r in requests] == list(range(10))
    assert tool_results(requests[5])[-1] == f"{DENIED}no network calls, use the files"
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    approvals = [s for s in steps if s["type"] == "APPROVAL"]
    decisions = [s for s in steps if s["type"] == "DECISION"]
    assert [s["metadata"]["tool"] for s in approvals] == ["shell_exec", "git_push", "notify_user"]
    assert [(s["metadata"]["tool"], s["metadata"]["decision"]) for s in decisions] == [
        ("shell_exec", "deny"),
        ("git_push", "approve"),
        ("notify_user", "approve_all"),
    ]
    assert decisions[0]["metadata"]["reason"] == "no network calls, use the files"
    assert all(a["metadata"]["call_id"] == d["metadata"]["call_id"] for a, d in zip(approvals, decisions, strict=True))
    denied_result = next(s for s in steps if s["type"] == "TOOL_RESULT" and s["metadata"].get("denied"))
    assert denied_result["metadata"]["ok"] is False
    assert sum(1 for s in steps if s["type"] == "NOTIFICATION") == 2  # both ran, the second without asking


async def test_cancel_while_waiting_for_approval(client, store, settings, worker, llm):
    marker = llm.add(
        "approve-cancel", [calls(("notify_user", {"message": "hi"})), calls(("notify_user", {"message": "again"}))]
    )
    handle = await start(client, settings, marker, approvals=ApprovalPolicy(tools=["notify_user"]))
    task_id = task_id_of(handle)
    await wait_task_status(store, task_id, "waiting_for_approval")
    approved = await morgus_cli(settings, "task", "approve", task_id)  # the one call waiting is picked
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("notify_user call ") and approved.stdout.strip().endswith("approved")
    await wait_for(lambda: _pending_tool(handle, "notify_user"), what="the second call to wait")
    await handle.execute_update("pause", result_type=PauseResult)  # pausing while it waits is taken too
    cancelled = await morgus_cli(settings, "task", "cancel", task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert (await handle.result()).status == "cancelled"
    row = await store.fetch_task(task_id)
    assert row["status"] == "cancelled" and row["pending_question"] is None
    steps = await store.fetch_steps(task_id)
    assert [s["type"] for s in steps][-2:] == ["APPROVAL", "TASK_END"]
    assert sum(1 for s in steps if s["type"] == "NOTIFICATION") == 1  # the approved one ran, the other never
    nothing = await morgus_cli(settings, "task", "approve", task_id)
    assert nothing.returncode == 2 and "has ended" in nothing.stderr


async def _pending_tool(handle, tool: str) -> bool:
    status = await status_of(handle)
    return status.pending_approval is not None and status.pending_approval.tool == tool


async def test_a_decision_binds_to_the_call_shown_even_when_the_model_reuses_call_ids(
    client, store, settings, worker, llm
):
    """red3: call ids are the model's (or its server's). Two calls with the same id, in one reply or in two, must
    not share a decision: a repeated `approve` for the first (a double click, a retried request, a stale console
    tab) must not approve the second call, which the user never saw."""
    dup = {"id": "call_dup"}
    marker = llm.add(
        "approve-dup-ids",
        [
            {"content": None, "tool_calls": [
                {**dup, "name": "notify_user", "arguments": {"message": "harmless"}},
                {**dup, "name": "notify_user", "arguments": {"message": "never shown to the user"}},
            ]},
            {"content": None, "tool_calls": [{**dup, "name": "notify_user", "arguments": {"message": "third"}}]},
            {"content": "research done"},
        ],
    )  # fmt: skip
    handle = await start(client, settings, marker, approvals=ApprovalPolicy(tools=["notify_user"]))
    await wait_for(lambda: _pending_tool(handle, "notify_user"), what="the first call to wait")
    first = (await status_of(handle)).pending_approval
    assert first is not None and "harmless" in first.arguments
    await handle.execute_update("decide", {"call_id": first.call_id, "decision": "approve"})
    await wait_for(lambda: _pending_tool(handle, "notify_user"), what="the second call to wait")
    second = (await status_of(handle)).pending_approval
    assert second is not None and "never shown" in second.arguments
    with pytest.raises(WorkflowUpdateFailedError) as refused:  # the same decision again: not for this call
        await handle.execute_update("decide", {"call_id": first.call_id, "decision": "approve"})
    assert "is not waiting for approval" in str(refused.value.cause)
    await handle.execute_update("decide", {"call_id": second.call_id, "decision": "deny"})
    await wait_for(lambda: _pending_tool(handle, "notify_user"), what="the third call to wait")
    third = (await status_of(handle)).pending_approval
    assert third is not None and "third" in third.arguments
    assert len({first.call_id, second.call_id, third.call_id}) == 3
    await handle.execute_update("decide", {"call_id": third.call_id, "decision": "deny"})
    await handle.cancel()
    steps = await store.fetch_steps(task_id_of(handle))
    assert sum(1 for s in steps if s["type"] == "NOTIFICATION") == 1  # only the approved one ran


@pytest.mark.parametrize(
    "command", ["git -c 'a.b=;' push origin main", "git -c a.b=\\; push", 'git -c "x.y=|" push', "git '&' push"]
)
def test_a_quoted_separator_does_not_end_the_command(command: str) -> None:
    """red3: `git -c 'a.b=;' push` is one git command that pushes; a `;` in quotes once hid the push."""
    arguments = json.dumps({"command": command})
    policy = ApprovalPolicy(commands=["git push"])
    assert approval_needed(policy, [], "shell_exec", arguments) is None  # the reading of approvals-v1
    assert approval_needed(policy, [], "shell_exec", arguments, True) == "the command matches 'git push'"
    assert approval_needed(policy, [], "shell_exec", json.dumps({"command": "git status; echo push"}), True) is None


async def test_a_push_hidden_behind_a_quoted_separator_waits_for_approval(client, store, settings, worker, llm):
    marker = llm.add(
        "approve-quoted",
        [
            {"content": "research done"},
            {"content": "plan done"},
            calls(("shell_exec", {"command": "git -c 'a.b=;' push origin main"})),
            {"content": "build done"},
        ],
    )
    handle = await start(client, settings, marker, approvals=ApprovalPolicy(commands=["git push"]))
    await wait_for(lambda: _pending_tool(handle, "shell_exec"), what="the push to wait")
    pending = (await status_of(handle)).pending_approval
    assert pending is not None and pending.why == "the command matches 'git push'"
    await handle.execute_update("decide", {"call_id": pending.call_id, "decision": "deny", "reason": "no"})
    await wait_for(lambda: llm_requests(llm, "approve-quoted", 4), what="the model to hear the denial")
    with contextlib.suppress(RPCError):  # the task may already have finished its last phases
        await handle.signal("cancel")
    assert (await handle.result()).status in ("cancelled", "completed")
    assert tool_results(llm.requests_for("approve-quoted")[3])[-1] == f"{DENIED}no"
    await replay_every_run(client, handle, record_as="task-red3-v18")


async def llm_requests(llm, marker: str, n: int) -> bool:
    return len(llm.requests_for(marker)) >= n


def test_call_ids_are_made_unique_and_decidable() -> None:
    """red3: ids the API could not send back (a control character, over 200 characters) left a call undecidable."""
    from morgus.activities.llm_reply import unique_call_ids
    from morgus.contracts import ToolCall

    ids = ["call_a", "call_a", "", "x\x1b[2J", "y" * 300, "call_3_5", "toolu_01AbC"]
    got = [c.id for c in unique_call_ids([ToolCall(id=i, name="n", arguments="{}") for i in ids], {"call_3_5"}, 3)]
    assert got == ["call_a", "call_3_1", "call_3_2", "call_3_3", "call_3_4", "call_3_5_1", "toolu_01AbC"]
