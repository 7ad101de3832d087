"""Hostile bytes and sizes (issue 11, item 2), against the real stack.

NUL, lone surrogates, control characters and megabyte strings from every source (the API, the `answer` signal
and update, model replies and tool-call arguments, tool output, file content, task fields) never wedge a task:
it goes on, completes, and the store shows U+FFFD where the bytes could not be kept. Input the workflow cannot
accept fails it at once with `TaskInputInvalid`; an answer nobody is waiting for is refused to its sender.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from morgus.app.tasks import TaskOpError, answer_task
from morgus.context import Condensation
from morgus.contracts import (
    ArtifactRecord,
    ChatMessage,
    Phase,
    ProjectionBatch,
    StepRecord,
    StepType,
    TaskResult,
    TaskRowUpdate,
    TokenUsage,
    ToolCall,
)
from morgus.text import REPLACEMENT, clean_json, clean_text
from tests.conftest import ask, start, task_id_of, wait_for, wait_task_status
from tests.helpers.api import served
from tests.helpers.temporal import temporal_cli

R = REPLACEMENT
HOSTILE = "a\x00b\ud800c\x1b[31m\x07d"  # NUL, lone surrogate, an ANSI escape, BEL
HOSTILE_CLEAN = f"a{R}b{R}c\x1b[31m\x07d"  # control characters are valid text and stay; the printing layer escapes them


def no_bad_text(value: Any) -> bool:
    """True if no string anywhere in `value` (keys included) holds a NUL or a lone surrogate."""
    if isinstance(value, str):
        return clean_text(value) == value
    if isinstance(value, dict):
        return all(no_bad_text(k) and no_bad_text(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(no_bad_text(v) for v in value)
    return True


# ---------------------------------------------------------------- the sanitiser itself


def test_clean_text_replaces_only_what_cannot_be_stored():
    assert clean_text(HOSTILE) == HOSTILE_CLEAN
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a split surrogate pair is joined, not destroyed
    assert clean_text("\udcff\udcfe") == R + R  # os.fsdecode of undecodable bytes
    assert clean_text("plain ü €") == "plain ü €"
    big = "x" * 1_000_000 + "\x00"
    assert clean_text(big) == "x" * 1_000_000 + R
    assert clean_json({"k\x00": ["v\ud800", 1, float("nan"), {"n": None}]}) == {
        f"k{R}": [f"v{R}", 1, None, {"n": None}]
    }


# ---------------------------------------------------------------- every write through the store


async def test_every_store_write_and_search_survives_hostile_text(store):
    task_id = str(uuid.uuid4())
    await store.insert_pending(task_id, f"task-{task_id}", "t" + HOSTILE, "d" + HOSTILE, "m\x00")
    await store.apply_projection(
        ProjectionBatch(
            task_id=task_id,
            workflow_id=f"task-{task_id}",
            title="ignored",
            description="ignored",
            model=None,
            update=TaskRowUpdate(
                status="waiting_for_input",
                pending_question="q" + HOSTILE,
                usage=TokenUsage(prompt_tokens=10**30, total_tokens=10**30, cost_usd=float("inf")),
            ),
            steps=[
                StepRecord(
                    seq=0,
                    phase=Phase.RESEARCH,
                    type=StepType.QUESTION,
                    content="s" + HOSTILE,
                    metadata={"k" + HOSTILE: ["v" + HOSTILE, {"deep\x00": "\ud800"}]},
                )
            ],
        )
    )
    call = ToolCall(id="c\x00", name="file_write", arguments='{"path": "p\x00", "content": "\ud800"}', digest="d")
    await store.save_llm_turn(
        task_id,
        [
            ChatMessage(seq=0, role="user", content="u" + HOSTILE),
            ChatMessage(seq=1, role="assistant", content="r" + HOSTILE, tool_calls=[call]),
        ],
        [StepRecord(seq=1, phase=Phase.RESEARCH, type=StepType.LLM_RESPONSE, content="r" + HOSTILE)],
        TokenUsage(prompt_tokens=10**30, total_tokens=10**30, cost_usd=float("nan")),  # absurd provider usage
    )
    await store.save_tool_result(
        task_id,
        ChatMessage(seq=2, role="tool", tool_call_id="c\x00", content="o" + HOSTILE, meta={"\x00": "\ud800"}),
        [StepRecord(seq=2, phase=Phase.RESEARCH, type=StepType.TOOL_RESULT, content="o" + HOSTILE)],
        [ArtifactRecord(type="file", name="n" + HOSTILE, path="/p\x00", metadata={"m\ud800": "x\x00"})],
    )
    await store.save_condensation(task_id, Condensation(upto_seq=1, summary="sum" + HOSTILE, turns=1))
    # the knowledge table (no writer yet): any statement on a store connection goes through the same dumpers
    async with store.pool.connection() as conn:
        await conn.execute(
            "insert into knowledge (content, metadata) values (%s, %s)",
            ("k" + HOSTILE + task_id, Jsonb({"task": task_id, "x\x00": "\ud800"})),
        )

    row = await store.fetch_task(task_id)
    assert row["title"] == "t" + HOSTILE_CLEAN and row["description"] == "d" + HOSTILE_CLEAN
    assert row["pending_question"] == "q" + HOSTILE_CLEAN and row["model"] == f"m{R}"
    assert row["prompt_tokens"] == 2**63 - 1 and float(row["cost_usd"]) == 99_999_999.0
    steps = await store.fetch_steps(task_id)
    assert [s["content"] for s in steps] == ["s" + HOSTILE_CLEAN, "r" + HOSTILE_CLEAN, "o" + HOSTILE_CLEAN]
    assert steps[0]["metadata"] == {"k" + HOSTILE_CLEAN: ["v" + HOSTILE_CLEAN, {f"deep{R}": R}]}
    messages = await store.load_messages(task_id, 3)
    assert messages[1].content == "r" + HOSTILE_CLEAN and messages[1].tool_calls[0].id == f"c{R}"
    assert messages[1].tool_calls[0].arguments == f'{{"path": "p{R}", "content": "{R}"}}'
    assert messages[2].meta == {R: R}
    artifacts = await store.fetch_artifacts(task_id)
    assert artifacts[0]["name"] == "n" + HOSTILE_CLEAN and artifacts[0]["metadata"] == {f"m{R}": f"x{R}"}
    assert (await store.latest_condensation(task_id)).summary == "sum" + HOSTILE_CLEAN
    events = await store.events_after(0, task_id=task_id)
    assert events and all(no_bad_text(e["payload"]) for e in events)
    async with store.pool.connection() as conn:
        knowledge = await (
            await conn.execute("select content, metadata from knowledge where metadata->>'task' = %s", (task_id,))
        ).fetchone()
    assert knowledge == ("k" + HOSTILE_CLEAN + task_id, {"task": task_id, f"x{R}": R})

    # reads with user text: a NUL or surrogate in `q` finds the row by its cleaned text instead of raising
    rows, _ = await store.search_tasks(status=None, phase=None, q="t" + HOSTILE, limit=10, cursor=None)
    assert [r["id"] for r in rows] == [uuid.UUID(task_id)]


# ---------------------------------------------------------------- a whole task fed hostile text


def hostile_script() -> list[dict]:
    return [
        # RESEARCH: a model reply with NUL, a lone surrogate and escapes; tool-call arguments with escaped NULs
        # and with a raw NUL in the arguments text itself
        {
            "content": "reply " + HOSTILE,
            "tool_calls": [
                {"name": "notify_user", "arguments": {"message": "note " + HOSTILE}},
                {"name": "notify_user", "arguments": '{"message": "raw\x00nul"}'},
            ],
        },
        ask("question " + HOSTILE),
        {"content": "research done"},
        {"content": "plan done"},
        # BUILD: tool output with NUL and undecodable bytes, a file holding NULs, an undecodable file name
        {
            "content": "build",
            "tool_calls": [
                {
                    "name": "shell_exec",
                    "arguments": {
                        "command": "printf 'out\\000put\\377\\n'; printf 'f\\000i\\000le' > nul.bin; "
                        "touch \"$(printf 'bad\\377name')\""
                    },
                },
            ],
        },
        {
            "content": "read",
            "tool_calls": [
                {"name": "file_read", "arguments": {"path": "nul.bin"}},
                {"name": "file_write", "arguments": {"path": "w.txt", "content": "wr\x00ite\ud800"}},
                {"name": "file_list", "arguments": {}},
                {"name": "file_read", "arguments": {"path": "w.txt"}},
            ],
        },
        {"content": "build done"},
    ]


async def test_a_task_fed_hostile_text_everywhere_completes(client, store, settings, worker, llm):
    marker = llm.add("hostile", hostile_script())
    handle = await start(client, settings, marker, title="title\x00\x1b]0;pwned\x07")
    task_id = task_id_of(handle)
    row = await wait_task_status(store, task_id, "waiting_for_input", timeout=120)
    assert row["pending_question"] == "question " + HOSTILE_CLEAN
    assert row["title"] == f"title{R}\x1b]0;pwned\x07"

    answered = await answer_task(client, task_id, "answer " + HOSTILE)  # the update, as the CLI and API send it
    assert answered == "question " + HOSTILE_CLEAN
    result: TaskResult = await handle.result()
    assert result.status == "completed", result.error_message

    steps = await store.fetch_steps(task_id)
    assert all(no_bad_text(s["content"]) and no_bad_text(s["metadata"]) for s in steps)
    contents = [s["content"] for s in steps]
    assert "reply " + HOSTILE_CLEAN in contents
    assert any(c == "note " + HOSTILE_CLEAN for c in contents)  # the notification, its surrogate replaced
    assert f"raw{R}nul" in contents  # a raw NUL inside the arguments text
    assert any(f"out{R}put" in c for c in contents)  # shell output: NUL replaced, \377 decoded as U+FFFD
    assert f"f{R}i{R}le" in contents  # file_read of a file holding NULs
    assert f"wr{R}ite{R}" in contents  # file_write's content was cleaned before it was written
    # an undecodable file name in file_list is shown escaped (it cannot forge a line or reach the store raw)
    assert any("bad\\xffname" in c for c in contents)
    assert "answer " + HOSTILE_CLEAN in contents
    workspace = Path(settings.workspace_root) / task_id
    assert (workspace / "w.txt").read_text() == f"wr{R}ite{R}"
    messages = await store.load_messages(task_id, 10_000)
    assert all(no_bad_text(m.model_dump(mode="json")) for m in messages)
    events = await store.events_after(0, task_id=task_id, limit=10_000)
    assert events and all(no_bad_text(e["payload"]) for e in events)


# ---------------------------------------------------------------- answers: API, signal, update


async def test_api_answer_with_hostile_text_and_answers_nobody_waits_for(client, store, settings, worker, llm):
    marker = llm.add("api-hostile", [ask("Colour?"), {"content": "research done", "delay_s": 2}])
    async with served(settings, client, store) as http:
        created = (
            await http.post("/api/tasks", json={"description": f"Paint it {marker}", "model": "scripted"})
        ).json()
        task_id = created["id"]
        await wait_task_status(store, task_id, "waiting_for_input")
        # JSON escapes "\ud800" and "\u0000": pydantic refuses a lone surrogate with a 4xx sentence (the task
        # keeps waiting); a NUL and control characters are taken and stored with U+FFFD
        bad = await http.post(
            f"/api/tasks/{task_id}/answer",
            content=json.dumps({"text": "blue\ud800"}),
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 422 and "valid string" in bad.json()["error"]
        assert (await store.fetch_task(task_id))["status"] == "waiting_for_input"
        r = await http.post(
            f"/api/tasks/{task_id}/answer",
            content=json.dumps({"text": "blue" + HOSTILE.replace("\ud800", "")}),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        # the task is running again (the model is slow): a second answer is refused to the sender, not dropped
        late = await http.post(f"/api/tasks/{task_id}/answer", json={"text": "green"})
        assert late.status_code == 409 and f"task {task_id} is not waiting for an answer" in late.json()["error"]
        # searching with a NUL or a lone surrogate is a one-sentence refusal, not a 500 (the store's own
        # search sanitises its parameter too: test_every_store_write_and_search_survives_hostile_text)
        found = await http.get("/api/tasks?q=Paint%00%ED%A0%80")  # NUL, then a UTF-8-encoded lone surrogate
        assert found.status_code == 422 and found.json()["error"].startswith("q:"), found.text
        await wait_task_status(store, task_id, "completed")
    answers = [s["content"] for s in await store.fetch_steps(task_id) if s["type"] == "ANSWER"]
    assert answers == [f"bluea{R}bc\x1b[31m\x07d"]


async def test_answer_signal_and_update_with_hostile_payloads(client, store, settings, worker, llm):
    marker = llm.add("sig-hostile", [ask("First?"), ask("Second?"), {"content": "research done"}])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_task_status(store, task_id, "waiting_for_input")

    async def update_cli(payload: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(
            temporal_cli,
            settings,
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            handle.id,
            "--name",
            "answer",
            "--input",
            payload,
        )

    # the update refuses what it cannot use, with a sentence, and the task keeps waiting
    for bad in ('{"text": "\\ud800"}', '{"text": "   "}', '"just a string"', json.dumps({"text": "x" * 100_000})):
        res = await update_cli(bad)
        assert res.returncode != 0, bad[:40]
        assert "the answer" in (res.stderr + res.stdout), (bad[:40], res.stderr)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("answer", {"text": "y" * 20_001}, result_type=str)
    assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == "InvalidAnswer"

    # a signal cannot be refused: an undecodable one is dropped (logged), a NUL one is taken and stored cleaned
    sig = await asyncio.to_thread(
        temporal_cli,
        settings,
        "workflow",
        "signal",
        "--workflow-id",
        handle.id,
        "--name",
        "answer",
        "--input",
        '{"text": "\\ud800"}',
    )
    assert sig.returncode == 0, sig.stderr
    assert (await store.fetch_task(task_id))["status"] == "waiting_for_input"
    sig = await asyncio.to_thread(
        temporal_cli,
        settings,
        "workflow",
        "signal",
        "--workflow-id",
        handle.id,
        "--name",
        "answer",
        "--input",
        '{"text": "sig\\u0000nal\\u001b[2J"}',
    )
    assert sig.returncode == 0, sig.stderr

    async def second_question() -> bool:
        row = await store.fetch_task(task_id)
        return row["pending_question"] == "Second?"

    await wait_for(second_question, what="the second question")
    res = await update_cli('{"text": "up\\u0000date"}')
    assert res.returncode == 0, res.stderr
    assert (await handle.result()).status == "completed"
    answers = [s["content"] for s in await store.fetch_steps(task_id) if s["type"] == "ANSWER"]
    assert answers == [f"sig{R}nal\x1b[2J", f"up{R}date"]

    # the task has ended: the update is refused by the API layer with a sentence
    with pytest.raises(TaskOpError, match="has ended"):
        await answer_task(client, task_id, "late")


async def test_answer_update_refused_while_the_task_is_running(client, store, settings, worker, llm):
    marker = llm.add(
        "busy-update", [{"content": "slow", "delay_s": 3, "tool_calls": [{"name": "file_list", "arguments": {}}]}]
    )
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    await wait_task_status(store, task_id, "running")
    with pytest.raises(TaskOpError, match=f"task {task_id} is not waiting for an answer"):
        await answer_task(client, task_id, "hello")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("answer", {"text": "hello"}, result_type=str)
    assert refused.value.cause.type == "NotWaitingForAnswer"
    await handle.signal("cancel")
    assert (await handle.result()).status == "cancelled"


# ---------------------------------------------------------------- invalid workflow input


INVALID_INPUTS: dict[str, str | None] = {
    "description of 1 MB": json.dumps({"title": "Huge", "description": "x" * 1_000_000}),
    "iteration cap 0": json.dumps({"description": "d", "limits": {"max_iterations_per_phase": 0}}),
    "wrong types": json.dumps({"description": 5, "budget": "lots"}),
    "not an object": json.dumps(["a", "list"]),
    "a string": json.dumps("describe me"),
    "lone surrogate": '{"description": "bad \\ud800 text"}',
    "NUL in title, missing description": '{"title": "nul\\u0000title"}',
    "no input": None,
}


@pytest.mark.parametrize("case", INVALID_INPUTS, ids=list(INVALID_INPUTS))
async def test_invalid_workflow_input_fails_at_once_with_task_input_invalid(
    case, client, store, settings, worker, tmp_path
):
    task_id = str(uuid.uuid4())
    args = [
        "workflow",
        "start",
        "--type",
        "TaskWorkflow",
        "--task-queue",
        settings.task_queue,
        "--workflow-id",
        f"task-{task_id}",
    ]
    payload = INVALID_INPUTS[case]
    if payload is not None:  # through a file: a 1 MB command-line argument is more than execve allows
        (tmp_path / "input.json").write_text(payload)
        args += ["--input-file", str(tmp_path / "input.json")]
    started = await asyncio.to_thread(temporal_cli, settings, *args)
    assert started.returncode == 0, started.stderr

    handle = client.get_workflow_handle(f"task-{task_id}")
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TaskInputInvalid" and cause.non_retryable
    assert cause.message.startswith(("the task input", "no input was given"))
    assert "\n" not in cause.message and len(cause.message) < 1200
    assert (await handle.describe()).status.name == "FAILED"

    row = await wait_task_status(store, task_id, "error")
    assert row["error_message"] == cause.message and row["completed_at"] is not None
    if case == "description of 1 MB":
        assert row["title"] == "Huge" and len(row["description"]) == 2000
    if case == "NUL in title, missing description":
        assert row["title"] == f"nul{R}title"


async def test_valid_input_through_the_temporal_cli_still_runs(client, store, settings, worker, llm):
    marker = llm.add("cli-valid", [{"content": "research done"}])
    task_id = str(uuid.uuid4())
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
        "--input",
        json.dumps(
            {
                "title": "Bakery",
                "description": f"A page {marker}",
                "model": "scripted",
                "limits": {"require_work": False},
            }
        ),
    )
    assert started.returncode == 0, started.stderr
    result = await client.get_workflow_handle(f"task-{task_id}", result_type=TaskResult).result()
    assert result.status == "completed"
    assert (await store.fetch_task(task_id))["title"] == "Bakery"
