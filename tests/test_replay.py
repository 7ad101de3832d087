"""Replay recorded histories against the current workflow code: a non-deterministic change fails here.

`tests/histories/*.json` are histories recorded from earlier versions (regenerate with
`MORGUS_RECORD_HISTORIES=1 pytest tests/test_replay.py`); a fresh history of the current code is replayed too.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from morgus.contracts import TaskResult
from morgus.workflows import TaskWorkflow
from tests.conftest import start, task_id_of, wait_for, wait_task_status

HISTORIES = Path(__file__).parent / "histories"


def replayer() -> Replayer:
    return Replayer(workflows=[TaskWorkflow], data_converter=pydantic_data_converter)


# the BUILD write and the EXECUTE run most fresh-history scripts share
WRITE_X = {"content": None, "tool_calls": [{"name": "file_write", "arguments": {"path": "x.txt", "content": "x"}}]}
RUN_X = {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": "cat x.txt"}}]}


async def replay_every_run(client, handle, record_as: str) -> None:
    """Replay each run of the task's workflow (continue-as-new makes several); with MORGUS_RECORD_HISTORIES=1
    also record them as tests/histories/<record_as>-run<N>.json, N counting from the first run."""
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    for wf in runs:
        history = await client.get_workflow_handle(handle.id, run_id=wf.run_id).fetch_history()
        await replayer().replay_workflow(history)
        if os.environ.get("MORGUS_RECORD_HISTORIES"):
            HISTORIES.mkdir(exist_ok=True)
            (HISTORIES / f"{record_as}-run{len(runs) - runs.index(wf)}.json").write_text(history.to_json())


def rich_script() -> list[dict]:
    """Exercises every workflow branch: tools, a rejected call, ask_user, several phases, a sandbox command."""
    return [
        {
            "content": "r",
            "tool_calls": [
                {"name": "notify_user", "arguments": {"message": "hi"}},
                {"name": "no_such_tool", "arguments": {}},
            ],
        },
        {"content": "research done"},
        {"content": None, "tool_calls": [{"name": "ask_user", "arguments": {"question": "Colour?"}}]},
        {"content": "plan", "tool_calls": [{"name": "file_write", "arguments": {"path": "p.md", "content": "plan"}}]},
        {"content": "plan done"},
        {
            "content": "b",
            "tool_calls": [
                {"name": "file_write", "arguments": {"path": "x.txt", "content": "x"}},
                {"name": "file_read", "arguments": {"path": "x.txt"}},
            ],
        },
        {"content": "run", "tool_calls": [{"name": "shell_exec", "arguments": {"command": "cat x.txt"}}]},
        {"content": "build done"},
    ]


def work_script() -> list[dict]:
    """The phase-work-v1 branches: a capability check, a nudge in BUILD, a cycle, an EXECUTE run, a rejected tool
    that cannot work here, the iteration cap moving RESEARCH on."""
    listing = {"content": None, "tool_calls": [{"name": "file_list", "arguments": {"path": "."}}]}
    note = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "looking"}}]}
    return [
        {"content": None, "tool_calls": [{"name": "cloudflare_deploy", "arguments": {"directory": "."}}]},
        listing,
        note,
        listing,
        note,
        listing,  # a cycle (warned), then the cap moves RESEARCH on
        {"content": "plan"},
        {"content": "I will write x.txt."},  # nudged
        {"content": "b", "tool_calls": [{"name": "file_write", "arguments": {"path": "x.txt", "content": "x"}}]},
        {"content": "build done"},
        {"content": "run", "tool_calls": [{"name": "shell_exec", "arguments": {"command": "cat x.txt"}}]},
        {"content": "exec done"},
    ]


async def test_fresh_phase_work_history_replays(client, store, settings, worker, llm):
    from morgus.contracts import TaskLimits

    marker = llm.add("replay-work", work_script())
    handle = await start(client, settings, marker, limits=TaskLimits(max_iterations_per_phase=6, require_work=True))
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    said = " ".join(str(m["content"]) for m in llm.requests_for("replay-work")[-1].body["messages"])
    for branch in ("cannot work here", "Loop detected", "moving on with what it has", "no file exists yet"):
        assert branch in said or branch == "moving on with what it has", branch
    steps = await store.fetch_steps(task_id_of(handle))
    assert any("moving on with what it has" in s["content"] for s in steps)
    await replay_every_run(client, handle, record_as="task-work-v5")


async def test_fresh_loop_choices_history_replays(client, store, settings, worker, llm):
    """loop-choices-v1: a stuck BUILD (the same failing command), warned, then asked; 'move on' ends the phase."""
    from morgus.contracts import TaskLimits

    stuck = {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": "false"}}]}
    write = WRITE_X
    run = RUN_X
    marker = llm.add(
        "replay-loop",
        [{"content": "r"}, {"content": "p"}, write, *[stuck] * 6, run, {"content": "ran"}, {"content": "done"}],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    row = await wait_task_status(store, task_id_of(handle), "waiting_for_input")
    assert "'move on' to go to the next phase" in row["pending_question"]  # the patched branch
    await handle.execute_update("answer", {"text": "move on"}, result_type=str)
    assert (await handle.result()).status == "completed"
    await replay_every_run(client, handle, record_as="task-loop-v6")


async def test_fresh_checked_summary_history_replays(client, store, settings, worker, llm):
    """checked-summary-v1: the completed task's summary ends with what the tools reported."""
    from morgus.contracts import TaskLimits

    write = WRITE_X
    run = RUN_X
    marker = llm.add(
        "replay-summary",
        [
            {"content": "r"},
            {"content": "p"},
            write,
            {"content": "b"},
            run,
            {"content": "ran"},
            {"content": "Deployed at https://example.com"},
        ],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    result: TaskResult = await handle.result()
    assert result.summary.endswith("nothing deployed; nothing committed.")  # the patched branch
    await replay_every_run(client, handle, record_as="task-summary-v7")


async def test_fresh_failed_run_history_replays(client, store, settings, worker, llm):
    """execute-failed-run-v1: EXECUTE's failed last run is pointed out once before the phase may end."""
    from morgus.contracts import TaskLimits

    write = WRITE_X
    bad = {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": "cat missing.txt"}}]}
    good = {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": "cat x.txt"}}]}
    marker = llm.add(
        "replay-failed-run",
        [
            {"content": "r"},
            {"content": "p"},
            write,
            {"content": "b"},
            bad,
            {"content": "ran"},
            good,
            {"content": "ran again"},
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    assert (await handle.result()).status == "completed"
    said = " ".join(str(m["content"]) for m in llm.requests_for("replay-failed-run")[-1].body["messages"])
    assert "Your last command failed" in said  # the patched branch
    await replay_every_run(client, handle, record_as="task-failed-run-v8")


async def test_fresh_finalize_nudge_history_replays(client, store, settings, worker, llm):
    """finalize-nudge-v1: a FINALIZE reply with no tool called, having neither committed nor told the user, is
    pointed out once."""
    from morgus.contracts import TaskLimits

    write = WRITE_X
    run = RUN_X
    init = {"content": None, "tool_calls": [{"name": "git_init", "arguments": {}}]}
    marker = llm.add(
        "replay-finalize",
        [
            {"content": "r"},
            {"content": "p"},
            write,
            {"content": "b"},
            run,
            {"content": "ran"},
            {"content": "Committed."},
            init,
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    assert (await handle.result()).status == "completed"
    said = " ".join(str(m["content"]) for m in llm.requests_for("replay-finalize")[-1].body["messages"])
    assert "Nothing was committed and this phase told the user nothing" in said  # the patched branch
    await replay_every_run(client, handle, record_as="task-finalize-v9")


async def test_fresh_finish_after_work_history_replays(client, store, settings, worker, llm):
    """finish-after-work-v1: BUILD and EXECUTE open without their ending, said once their work is shown."""
    from morgus.contracts import TaskLimits

    write = WRITE_X
    run = RUN_X
    notify = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "built x.txt"}}]}
    marker = llm.add(
        "replay-finish-later",
        [
            {"content": "r"},
            {"content": "p"},
            write,
            {"content": "b"},
            run,
            {"content": "ran"},
            notify,
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    assert (await handle.result()).status == "completed"
    users = [m["content"] for m in llm.requests_for("replay-finish-later")[-1].body["messages"] if m["role"] == "user"]
    assert any(m.startswith("When every file is written") for m in users)  # the patched branch
    await replay_every_run(client, handle, record_as="task-finish-v10")


async def test_fresh_url_claim_history_replays(client, store, settings, worker, llm):
    """execute-url-claim-v1: EXECUTE ending on a made-up URL with nothing deployed is told once."""
    from morgus.contracts import TaskLimits

    write = {"content": None, "tool_calls": [{"name": "file_write", "arguments": {"path": "s/i.html", "content": "x"}}]}
    run = {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": "cat s/i.html"}}]}
    deploy = {"content": None, "tool_calls": [{"name": "deploy_local", "arguments": {"directory": "s"}}]}
    notify = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "deployed"}}]}
    marker = llm.add(
        "replay-url-claim",
        [
            {"content": "r"},
            {"content": "p"},
            write,
            {"content": "b"},
            run,
            {"content": "Live at https://x.example"},
            deploy,
            {"content": "deployed"},
            notify,
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    assert (await handle.result()).status == "completed"
    said = " ".join(str(m["content"]) for m in llm.requests_for("replay-url-claim")[-1].body["messages"])
    assert "no tool returned the URL in it" in said  # the patched branch
    await replay_every_run(client, handle, record_as="task-url-claim-v11")


async def test_fresh_steer_history_replays(client, store, settings, worker, llm):
    """steer-v1: messages sent while an LLM call is in flight (the update and the signal) reach the next turn, one
    sent while the task waits is the answer, one sent during the last reply gets the model one more turn."""
    from morgus.contracts import SayResult
    from morgus.workflows.task import USER_SAYS

    note = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "looking"}}]}
    marker = llm.add(
        "replay-steer",
        [
            {**note, "delay_s": 4},
            {"content": None, "tool_calls": [{"name": "ask_user", "arguments": {"question": "Colour?"}}]},
            {"content": "research done"},
            {"content": "plan"},
            {"content": "built"},
            {"content": "executed"},
            {"content": "finalized", "delay_s": 4},
            {"content": "finalized, with the licence"},
        ],
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)

    async def in_flight() -> bool:
        return llm.in_flight("replay-steer") > 0

    await wait_for(in_flight, what="the first LLM call")
    await handle.execute_update("say", {"text": "use Tailwind"}, result_type=SayResult)
    await handle.signal("say", {"text": "skip the tests"})
    await wait_task_status(store, task_id, "waiting_for_input")
    answered = await handle.execute_update("say", {"text": "green"}, result_type=SayResult)
    assert answered.answered and answered.question == "Colour?"
    await wait_for(lambda: _requests_at_least(llm, "replay-steer", 6), what="FINALIZE")
    await wait_for(in_flight, what="FINALIZE's LLM call")
    await handle.execute_update("say", {"text": "add a licence"}, result_type=SayResult)
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    last = [m["content"] for m in llm.requests_for("replay-steer")[-1].body["messages"] if m["role"] == "user"]
    said = [u.removeprefix(USER_SAYS) for u in last if u.startswith(USER_SAYS)]
    assert said == ["use Tailwind", "skip the tests", "add a licence"]  # the patched branch
    await replay_every_run(client, handle, record_as="task-steer-v12")


async def test_fresh_local_tools_history_replays(client, store, settings, worker, llm):
    """local-tools-v1: file_* and notify_user run as local activities (markers, no activity tasks); a sandbox
    command and git stay activities."""
    from temporalio.api.enums.v1 import EventType

    read = {"content": None, "tool_calls": [{"name": "file_read", "arguments": {"path": "x.txt"}}]}
    listing = {"content": None, "tool_calls": [{"name": "file_list", "arguments": {"path": "."}}]}
    notify = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "built x.txt"}}]}
    missing = {"content": None, "tool_calls": [{"name": "file_read", "arguments": {"path": "no/such.txt"}}]}
    marker = llm.add(
        "replay-local-tools",
        [{"content": "r"}, {"content": "p"}, WRITE_X, read, listing, missing, {"content": "b"}, RUN_X, notify]
        + [{"content": "ran"}, {"content": "done"}],
    )
    handle = await start(client, settings, marker)
    assert (await handle.result()).status == "completed"
    tool_results = [
        m["content"] for m in llm.requests_for("replay-local-tools")[-1].body["messages"] if m["role"] == "tool"
    ]
    assert tool_results[1] == "x" and "x.txt" in tool_results[2]  # file_read and file_list answered as before
    assert tool_results[3].startswith("Error: folder 'no' does not exist")  # a tool error reaches the model
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    events = [
        e for wf in runs for e in (await client.get_workflow_handle(handle.id, run_id=wf.run_id).fetch_history()).events
    ]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert not [
        n for n in scheduled if n in ("tool:file_write", "tool:file_read", "tool:file_list", "tool:notify_user")
    ]
    assert "tool:shell_exec" in scheduled
    local = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert len(local) == 6, len(local)  # one per local call, and the first step's (pickup-v1)
    await replay_every_run(client, handle, record_as="task-local-tools-v17")


async def _requests_at_least(llm, name: str, n: int) -> bool:
    return len(llm.requests_for(name)) >= n


async def test_fresh_history_replays(client, store, settings, worker, llm):
    marker = llm.add("replay", rich_script())
    handle = await start(client, settings, marker)
    await wait_task_status(store, task_id_of(handle), "waiting_for_input")
    assert await handle.execute_update("answer", {"text": "green"}, result_type=str) == "Colour?"  # the v4 update
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    await replay_every_run(client, handle, record_as="task-rich-v4")


async def test_invalid_input_history_replays(client, store, settings, worker):
    """The TaskInputInvalid path (error row, then failure) replays too; recorded as task-invalid-input-v4.json."""
    from temporalio.client import WorkflowFailureError

    handle = await client.start_workflow(
        "TaskWorkflow", {"description": ""}, id=f"task-{uuid.uuid4()}", task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    history = await handle.fetch_history()
    await replayer().replay_workflow(history)
    if os.environ.get("MORGUS_RECORD_HISTORIES"):
        (HISTORIES / "task-invalid-input-v4.json").write_text(history.to_json())


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.name)
async def test_recorded_history_replays(path: Path):
    history = WorkflowHistory.from_json("recorded", path.read_text())
    await replayer().replay_workflow(history)


def test_recorded_histories_exist():
    assert sorted(HISTORIES.glob("*.json")), (
        "record histories with MORGUS_RECORD_HISTORIES=1 pytest tests/test_replay.py"
    )


async def test_replay_catches_a_non_deterministic_change():
    """Prove the check works: a variant that skips the phase-start projection must fail on the old history."""
    from temporalio.workflow import NondeterminismError

    from tests.unpatched_workflow import ChangedWithoutPatch

    history = WorkflowHistory.from_json("recorded", sorted(HISTORIES.glob("task-rich-*.json"))[0].read_text())
    changed = Replayer(workflows=[ChangedWithoutPatch], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await changed.replay_workflow(history)


async def test_fresh_pause_history_replays(client, store, settings, worker, llm):
    """pause-v1: paused (the update) while an LLM call is in flight, the call's tool call waits; resumed (the
    signal), it runs once and the task goes on."""
    from morgus.contracts import PauseResult

    note = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "looking"}}]}
    marker = llm.add(
        "replay-pause",
        [
            {**note, "delay_s": 3},
            {"content": "r"},
            {"content": "p"},
            {"content": "b"},
            {"content": "e"},
            {"content": "f"},
        ],
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_for(lambda: _in_flight(llm, "replay-pause"), what="the first LLM call")
    await handle.execute_update("pause", result_type=PauseResult)
    await wait_task_status(store, task_id, "paused")
    await handle.signal("resume")
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    assert [s["type"] for s in await store.fetch_steps(task_id)].count("RESUMED") == 1  # the patched branch
    await replay_every_run(client, handle, record_as="task-pause-v13")


async def test_fresh_approvals_history_replays(client, store, settings, worker, llm):
    """approvals-v1: a call the policy names waits; approved, denied (its reason is the result), approved for the
    rest of the task; the next call of that tool runs unasked."""
    from morgus.contracts import ApprovalPolicy, TaskStatusView

    def note(text: str) -> dict:
        return {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": text}}]}

    marker = llm.add(
        "replay-approve",
        [note("a"), note("b"), note("c"), note("d"), {"content": "r"}, {"content": "p"}, {"content": "b"},
         {"content": "e"}, {"content": "f"}],
    )  # fmt: skip
    handle = await start(client, settings, marker, approvals=ApprovalPolicy(tools=["notify_user"]))
    for decision in ({"decision": "approve"}, {"decision": "deny", "reason": "not now"}, {"decision": "approve_all"}):
        await wait_for(lambda: _approval_pending(handle), what="a call waiting for approval")
        status = await handle.query("status", result_type=TaskStatusView)
        assert status.pending_approval is not None
        await handle.execute_update("decide", {"call_id": status.pending_approval.call_id, **decision})
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    kinds = [s["type"] for s in await store.fetch_steps(task_id_of(handle))]
    assert kinds.count("DECISION") == 3 and kinds.count("NOTIFICATION") == 3  # the patched branch
    await replay_every_run(client, handle, record_as="task-approve-v14")


async def _in_flight(llm, name: str) -> bool:
    return llm.in_flight(name) > 0


async def _approval_pending(handle) -> bool:
    from morgus.contracts import TaskStatusView

    status = await handle.query("status", result_type=TaskStatusView)
    return status.pending_approval is not None
