"""A task runs all five phases through the real stack and the projection mirrors it, in order."""

from __future__ import annotations

import json

from morgus.contracts import PHASE_ORDER, TaskResult
from tests.conftest import assert_steps_contiguous, start, task_id_of


def five_phase_script(name: str) -> list[dict]:
    return [
        {"content": "researching", "tool_calls": [{"name": "notify_user", "arguments": {"message": "hello"}}]},
        {"content": "research done"},
        {"content": "plan done"},
        {
            "content": "plan",
            "tool_calls": [
                {"name": "file_write", "arguments": {"path": "PLAN.md", "content": "plan 'quoted' \"x\"\n"}}
            ],
        },
        {
            "content": "build",
            "tool_calls": [
                {"name": "file_write", "arguments": {"path": "src/app.py", "content": "print('hi')\n"}},
                {"name": "file_write", "arguments": {"path": "src/util.py", "content": "X = 1\n"}},
            ],
        },
        {"content": "build done"},
        {"content": "check", "tool_calls": [{"name": "file_read", "arguments": {"path": "src/app.py"}}]},
        {"content": "execute done"},
        {"content": "all done"},
    ]


async def test_task_runs_five_phases_and_projects_in_order(client, store, settings, worker, llm):
    marker = llm.add("e2e", five_phase_script("e2e"))
    handle = await start(client, settings, marker, title="five phases")
    result: TaskResult = await handle.result()
    task_id = task_id_of(handle)

    assert result.status == "completed"
    # the model's last words, then what the tools reported (checked-summary-v1)
    assert result.summary.startswith("all done\n\nChecked by Morgus from the tools' reports: files written or changed")
    ws = settings.workspace_for(task_id)
    assert (ws / "src/app.py").read_text() == "print('hi')\n"
    assert (ws / "PLAN.md").read_text() == "plan 'quoted' \"x\"\n"

    row = await store.fetch_task(task_id)
    assert row["status"] == "completed" and row["phase"] == "FINALIZE"
    assert row["title"] == "five phases" and row["completed_at"] is not None
    assert row["total_tokens"] == result.usage.total_tokens > 0
    assert row["pending_question"] is None and row["error_message"] is None

    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert row["step_count"] == len(steps)
    phase_starts = [s["phase"] for s in steps if s["type"] == "PHASE_START"]
    assert phase_starts == [p.value for p in PHASE_ORDER]
    # steps are in phase order: once a phase starts, no step of an earlier phase appears
    order = [PHASE_ORDER.index(s["phase"]) for s in steps if s["phase"]]
    assert order == sorted(order)
    types = [s["type"] for s in steps]
    assert types[0] == "TASK_START" and types[-1] == "TASK_END"
    assert types.count("TOOL_CALL") == types.count("TOOL_RESULT") == 5
    assert "NOTIFICATION" in types
    read_result = next(s for s in steps if s["type"] == "TOOL_RESULT" and s["metadata"]["tool"] == "file_read")
    assert read_result["content"] == "print('hi')\n"


async def test_assistant_tool_calls_message_is_kept_in_the_conversation(client, settings, worker, llm):
    """The public implementation dropped the assistant's tool_calls message, so every second request was rejected."""
    marker = llm.add("keep-tool-calls", five_phase_script("k"))
    handle = await start(client, settings, marker)
    assert (await handle.result()).status == "completed"
    reqs = llm.requests_for("keep-tool-calls")
    assert all(r.status == 200 for r in reqs), [(r.index, r.status) for r in reqs]
    second = reqs[1].body["messages"]
    assistant = [m for m in second if m["role"] == "assistant"]
    assert assistant and assistant[0]["tool_calls"][0]["function"]["name"] == "notify_user"
    tool_msgs = [m for m in second if m["role"] == "tool"]
    assert tool_msgs[0]["tool_call_id"] == assistant[0]["tool_calls"][0]["id"]
    # every phase opens with a user message naming it in capitals
    last = reqs[-1].body["messages"]
    openings = [m["content"].splitlines()[0] for m in last if m["role"] == "user"]
    assert openings == [f"Phase: {p.value}" for p in PHASE_ORDER]
    # one tool list for the whole task (the prefix cache); the phase's own permissions are the workflow's check,
    # and cloudflare_deploy is left out without credentials
    offered = {tuple(t["function"]["name"] for t in r.body["tools"]) for r in reqs}
    assert len(offered) == 1, offered
    assert {"file_write", "shell_exec", "git_commit", "deploy_local", "notify_user"} <= set(next(iter(offered)))
    assert "cloudflare_deploy" not in next(iter(offered))
    assert json.loads(assistant[0]["tool_calls"][0]["function"]["arguments"]) == {"message": "hello"}
