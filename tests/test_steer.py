"""Steering: a message sent to a running task (`say`: the update, the signal, `morgus task say`, the API) reaches
the model at its next turn, once and in order; a task waiting for an answer takes it as the answer; a task that
has ended refuses it with one sentence. Real Temporal, Postgres and the scripted LLM."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from morgus.contracts import ResumeState, SayResult, TaskLimits, TaskResult, TaskStatusView
from morgus.workflows.inbound import MAX_INBOX, MAX_INBOX_CHARS, inbox_problem
from morgus.workflows.task import USER_SAYS
from tests.conftest import ask, assert_steps_contiguous, start, task_id_of, wait_for, wait_task_status
from tests.helpers.api import is_error, served
from tests.helpers.temporal import temporal_cli
from tests.test_human import morgus_cli


def note(message: str, delay_s: float = 0) -> dict:
    reply: dict = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": message}}]}
    if delay_s:
        reply["delay_s"] = delay_s
    return reply


def said(request) -> list[str]:
    """The user messages of one recorded request, in order."""
    return [m["content"] for m in request.body["messages"] if m["role"] == "user"]


async def in_flight(llm, name: str) -> bool:
    return llm.in_flight(name) > 0


# ---------------------------------------------------------------- without a server


def test_the_inbox_is_bounded_by_count_and_by_characters() -> None:
    assert inbox_problem([], "x" * 20_000) is None
    assert "already waiting" in (inbox_problem(["m"] * MAX_INBOX, "one more") or "")
    assert inbox_problem(["m"] * (MAX_INBOX - 1), "one more") is None
    full = ["x" * 20_000] * (MAX_INBOX_CHARS // 20_000)
    assert "would exceed" in (inbox_problem(full, "y") or "")
    assert inbox_problem(full[:-1], "y" * 20_000) is None
    # the carried inbox stays far under Temporal's 2 MB payload limit, whatever the characters (\u00XX is 6 bytes)
    worst = ResumeState(inbox=["\x01" * (MAX_INBOX_CHARS // MAX_INBOX)] * MAX_INBOX)
    assert len(worst.model_dump_json()) < 1_000_000


def test_a_resume_state_from_before_steering_still_decodes() -> None:
    old = ResumeState().model_dump(mode="json")
    del old["inbox"]
    assert ResumeState.model_validate(old).inbox == []
    assert TaskStatusView.model_validate(
        {"task_id": "t", "status": "running", "phase": None, "pending_question": None, "step_count": 0,
         "iteration": 0, "usage": {}}
    ).messages_waiting == 0  # fmt: skip


# ---------------------------------------------------------------- the real workflow


async def test_messages_sent_mid_build_reach_the_next_request_once_and_in_order(client, store, settings, worker, llm):
    marker = llm.add(
        "steer-build",
        [
            {"content": "research done"},
            {"content": "plan done"},
            note("building", delay_s=5),  # BUILD's first turn: the messages are sent while it is in flight
            {"content": "build done"},
            {"content": "executed"},
            {"content": "finalized"},
        ],
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_for(lambda: in_flight(llm, "steer-build"), what="BUILD's LLM call to start")
    first = await handle.execute_update("say", {"text": "use Tailwind instead"}, result_type=SayResult)
    second = await handle.execute_update("say", {"text": "and skip the tests"}, result_type=SayResult)
    assert not first.answered and first.waiting == 1
    assert not second.answered and second.waiting == 2
    status = await handle.query("status", result_type=TaskStatusView)
    assert status.messages_waiting == 2 and status.phase == "BUILD"

    result: TaskResult = await handle.result()
    assert result.status == "completed"
    requests = llm.requests_for("steer-build")
    assert [r.index for r in requests] == [0, 1, 2, 3, 4, 5]  # a message adds no turn when the phase goes on
    words = [f"{USER_SAYS}use Tailwind instead", f"{USER_SAYS}and skip the tests"]
    for r in requests[:3]:  # sent while request 2 was in flight: not in it, nor before it
        assert not set(words) & set(said(r)), r.index
    for r in requests[3:]:  # the next request has them, after BUILD's opening, in the order sent, each once
        user = said(r)
        assert [u for u in user if u in words] == words, r.index
    assert said(requests[3])[-2:] == words  # they are the newest thing the model reads at that turn

    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    messages = [s for s in steps if s["type"] == "USER_MESSAGE"]
    assert [s["content"] for s in messages] == ["use Tailwind instead", "and skip the tests"]
    assert all(s["phase"] == "BUILD" and s["metadata"] == {"kind": "steer"} for s in messages)
    # recorded in the timeline before the reply the model gave to them
    reply = next(s for s in steps if s["type"] == "LLM_RESPONSE" and s["content"] == "build done")
    assert messages[-1]["seq"] < reply["seq"]
    assert (await handle.query("status", result_type=TaskStatusView)).messages_waiting == 0


async def test_a_message_during_the_last_turn_is_heard_before_the_phase_ends(client, store, settings, worker, llm):
    """FINALIZE's last reply calls no tool: with a message sent during it, the model gets one more turn."""
    marker = llm.add(
        "steer-last",
        [
            {"content": "r"},
            {"content": "p"},
            {"content": "b"},
            {"content": "e"},
            {"content": "finalized", "delay_s": 5},
            {"content": "noted: the README says so"},
        ],
    )
    handle = await start(client, settings, marker)
    await wait_for(lambda: in_flight(llm, "steer-last"), what="FINALIZE's LLM call to start")
    await handle.execute_update("say", {"text": "mention the licence in the README"}, result_type=SayResult)
    result: TaskResult = await handle.result()
    assert result.status == "completed" and result.summary.startswith("noted: the README says so")
    requests = llm.requests_for("steer-last")
    assert len(requests) == 6
    assert said(requests[-1])[-1] == f"{USER_SAYS}mention the licence in the README"


async def test_a_message_to_a_waiting_task_is_the_answer_and_an_ended_task_refuses_one(
    client, store, settings, worker, llm
):
    marker = llm.add("steer-answer", [ask("Which CSS framework?"), {"content": "research done"}])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_task_status(store, task_id, "waiting_for_input")
    async with served(settings, client, store) as http:
        r = await http.post(f"/api/tasks/{task_id}/messages", json={"text": "Tailwind, please"})
        assert r.status_code == 202, r.text
        assert r.json() == {"answered": True, "question": "Which CSS framework?", "waiting": 0}
        result: TaskResult = await handle.result()
        assert result.status == "completed"
        tool_answers = [
            m["content"] for m in llm.requests_for("steer-answer")[-1].body["messages"] if m["role"] == "tool"
        ]
        assert tool_answers == ["Tailwind, please"]  # the answer, not also a steering message
        steps = await store.fetch_steps(task_id)
        assert [s["content"] for s in steps if s["type"] in ("QUESTION", "ANSWER", "USER_MESSAGE")] == [
            "Which CSS framework?",
            "Tailwind, please",
        ]

        # the task has ended: the API, the CLI, the update and the `temporal` CLI each refuse with a sentence
        error = is_error(await http.post(f"/api/tasks/{task_id}/messages", json={"text": "too late"}), 409)
        assert error == f"task {task_id} has ended (completed); a message can only be sent to a running task"
    late = await morgus_cli(settings, "task", "say", task_id, "too late")
    assert late.returncode == 2
    assert (
        late.stderr.strip()
        == f"morgus: task {task_id} has ended (completed); a message can only be sent to a running task"
    )
    with pytest.raises(RPCError, match="already completed"):
        await handle.execute_update("say", {"text": "too late"}, result_type=SayResult)
    cli = await asyncio.to_thread(
        temporal_cli,
        settings,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        handle.id,
        "--name",
        "say",
        "--input",
        json.dumps({"text": "too late"}),
    )
    assert cli.returncode != 0 and "already completed" in (cli.stderr + cli.stdout)


async def test_a_message_never_answers_a_question_of_morguss_own(client, store, settings, worker, llm):
    """A steering message sent while the task waits on one of Morgus's questions (here: BUILD showed no work) is
    not its answer: those answers are commands, and 'no, …' would stop the task, 'continue …' waive the phase's
    work. The message waits in the inbox, the sender is told which question must be answered first."""
    marker = llm.add(
        "steer-no-work",
        [{"content": "r"}, {"content": "p"}, {"content": "I would write the files."}, {"content": "Still words."}],
    )
    handle = await start(client, settings, marker, limits=TaskLimits(require_work=True))
    task_id = task_id_of(handle)
    row = await wait_task_status(store, task_id, "waiting_for_input")
    question = row["pending_question"]
    assert question.startswith("BUILD produced no file")
    sent = await handle.execute_update("say", {"text": "no, make the header blue"}, result_type=SayResult)
    assert sent == SayResult(answered=False, question=question, waiting=1)
    async with served(settings, client, store) as http:
        r = await http.post(f"/api/tasks/{task_id}/messages", json={"text": "continue with a red footer"})
        assert r.status_code == 202, r.text
        assert r.json() == {"answered": False, "question": question, "waiting": 2}
    cli = await morgus_cli(settings, "task", "say", task_id, "next, add a logo")
    assert cli.returncode == 0, cli.stderr
    assert "it first waits for an answer (`morgus task answer`) to: BUILD produced no file" in cli.stdout
    status = await handle.query("status", result_type=TaskStatusView)
    assert status.status == "waiting_for_input" and status.pending_question == question
    assert status.messages_waiting == 3

    await handle.execute_update("answer", {"text": "stop"}, result_type=str)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await wait_task_status(store, task_id, "error")
    assert row["error_message"].startswith("Stopped by the user: BUILD produced no")
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert [s["content"] for s in steps if s["type"] == "ANSWER"] == ["stop"]
    kept = [s for s in steps if s["type"] == "USER_MESSAGE"]
    assert [s["content"] for s in kept] == [
        "no, make the header blue",
        "continue with a red footer",
        "next, add a logo",
    ]
    assert all(s["metadata"] == {"kind": "steer", "delivered": False} for s in kept)


async def test_the_temporal_cli_update_and_signal_and_morgus_task_say(client, store, settings, worker, llm):
    marker = llm.add(
        "steer-cli",
        [note("looking", delay_s=15), ask("Anything else?"), {"content": "research done"}],
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_for(lambda: in_flight(llm, "steer-cli"), what="the LLM call to start")

    def temporal(*args: str):
        return asyncio.to_thread(temporal_cli, settings, "workflow", *args, "--workflow-id", handle.id)

    update = await temporal("update", "execute", "--name", "say", "--input", json.dumps({"text": "one"}))
    assert update.returncode == 0, update.stderr
    assert "answered" in update.stdout  # the update's result, SayResult
    signal = await temporal("signal", "--name", "say", "--input", json.dumps({"text": "two"}))
    assert signal.returncode == 0, signal.stderr
    cli = await morgus_cli(settings, "task", "say", task_id, "three")
    assert cli.returncode == 0, cli.stderr
    assert "the agent reads it at its next turn (3 waiting)" in cli.stdout

    await wait_task_status(store, task_id, "waiting_for_input")
    # the validator refuses what it cannot take, to the sender, even as an answer
    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 20_001}, {"words": "hi"}, ["hi"]):
        refused = await temporal("update", "execute", "--name", "say", "--input", json.dumps(bad))
        assert refused.returncode != 0 and "the message " in refused.stderr + refused.stdout, bad
        # a signal cannot be refused: the workflow drops it (with a warning) and keeps waiting
        dropped = await temporal("signal", "--name", "say", "--input", json.dumps(bad))
        assert dropped.returncode == 0, dropped.stderr
    status = await handle.query("status", result_type=TaskStatusView)
    assert status.status == "waiting_for_input" and status.pending_question == "Anything else?"
    blank = await morgus_cli(settings, "task", "say", task_id, "  ")
    assert blank.returncode == 2 and "the message is empty" in blank.stderr
    answered = await morgus_cli(settings, "task", "say", task_id, "no, that is all")
    assert answered.returncode == 0, answered.stderr
    assert f"task {task_id} took it as the answer to: Anything else?" in answered.stdout

    result: TaskResult = await handle.result()
    assert result.status == "completed"
    requests = llm.requests_for("steer-cli")
    assert said(requests[1])[-3:] == [f"{USER_SAYS}one", f"{USER_SAYS}two", f"{USER_SAYS}three"]
    assert sum(u.startswith(USER_SAYS) for u in said(requests[-1])) == 3  # once each, refused ones never
    assert [m["content"] for m in requests[-1].body["messages"] if m["role"] == "tool"][-1] == "no, that is all"


async def test_a_full_inbox_refuses_and_a_cancelled_task_still_records_its_messages(
    client, store, settings, worker, llm
):
    marker = llm.add("steer-full", [{"content": "thinking", "delay_s": 30}])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_for(lambda: in_flight(llm, "steer-full"), what="the LLM call to start")
    for i in range(MAX_INBOX):
        await handle.execute_update("say", {"text": f"message {i}"}, result_type=SayResult)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("say", {"text": "one too many"}, result_type=SayResult)
    assert "already waiting" in str(refused.value.cause)
    async with served(settings, client, store) as http:
        error = is_error(await http.post(f"/api/tasks/{task_id}/messages", json={"text": "one too many"}), 409)
        assert error.startswith(f"{MAX_INBOX} messages are already waiting")
        # hostile text is refused at the edge (422), before it reaches the workflow
        is_error(await http.post(f"/api/tasks/{task_id}/messages", json={"text": "x" * 20_001}), 422)
        is_error(await http.post(f"/api/tasks/{task_id}/messages", content=b'{"text": "\\ud800"}',
                                 headers={"Content-Type": "application/json"}), 422)  # fmt: skip
        is_error(await http.post(f"/api/tasks/{task_id}/messages", json={"text": ""}), 422)
    await handle.signal("cancel")
    assert (await handle.result()).status == "cancelled"
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    kept = [s for s in steps if s["type"] == "USER_MESSAGE"]
    assert [s["content"] for s in kept] == [f"message {i}" for i in range(MAX_INBOX)]
    assert all(s["metadata"] == {"kind": "steer", "delivered": False} for s in kept)
    assert steps[-1]["type"] == "TASK_END"


async def test_a_message_waiting_at_continue_as_new_is_carried_to_the_next_run(client, store, settings, worker, llm):
    """The dev server suggests continue-as-new at 50 events: the message is sent during a turn late enough in its
    run that the check after it continues as new, so the inbox must travel in ResumeState."""
    turns = 8
    marker = llm.add("steer-can", [*[note(f"look {i}", delay_s=2) for i in range(turns)], {"content": "done"}])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    seen = 0
    while True:  # each turn in flight: is its run long enough that the check after it continues as new?
        await wait_for(lambda seen=seen: _later_turn_in_flight(llm, "steer-can", seen), what="the next turn")
        seen = len(llm.requests_for("steer-can"))
        desc = await handle.describe()
        if desc.raw_description.workflow_execution_info.history_length >= 40:
            break
        assert seen < turns - 1, "no turn came late enough in its run"
    sent = await handle.execute_update("say", {"text": "carried over"}, result_type=SayResult)
    assert not sent.answered
    result: TaskResult = await handle.result()
    assert result.status == "completed"

    carried = []
    async for wf in client.list_workflows(f"WorkflowId = '{handle.id}'"):
        history = await client.get_workflow_handle(handle.id, run_id=wf.run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        resume = json.loads(started.input.payloads[0].data).get("resume") or {}
        carried += resume.get("inbox", [])
    assert carried == ["carried over"]  # the next run started with it waiting
    last = said(llm.requests_for("steer-can")[-1])
    assert last.count(f"{USER_SAYS}carried over") == 1
    steps = await store.fetch_steps(task_id)
    assert_steps_contiguous(steps)
    assert [s["content"] for s in steps if s["type"] == "USER_MESSAGE"] == ["carried over"]


async def _later_turn_in_flight(llm, name: str, seen: int) -> bool:
    return llm.in_flight(name) > 0 and len(llm.requests_for(name)) >= seen + (seen > 0)
