"""What real models emit, through a real task: calls written into the text in every shape, wrong argument
wrappers, an empty reply, a cut-off burst, and the stop setting (real Temporal, Postgres, worker, HTTP server)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import start, task_id_of, wait_for

PAGE = {"path": "index.html", "content": "<h1>Crumb & Co.</h1>\n"}
FENCED = "```json\n" + json.dumps({"name": "file_write", "arguments": PAGE}) + "\n```"

SHAPES = {
    "fenced": {"content": FENCED},
    "tagged": {"content": "<tool_call>\n" + json.dumps({"name": "file_write", "arguments": PAGE}) + "\n</tool_call>"},
    "bare": {"content": json.dumps({"name": "file_write", "arguments": PAGE})},
    "parameters": {"content": json.dumps({"name": "file_write", "parameters": PAGE})},
    "string-arguments": {"content": FENCED.replace(json.dumps(PAGE), json.dumps(json.dumps(PAGE)))},
    "answer-and-call": {"content": "The plan says one page; writing it now.\n\n" + FENCED},
    "native-wrapped": {"content": None, "tool_calls": [{"name": "file_write", "arguments": {"arguments": PAGE}}]},
    "cut-off-burst": {
        "content": FENCED + "\n\n" + FENCED.replace("index.html", "guess.html") + '\n\n```json\n{"name": "file_',
        "finish_reason": "length",
    },
}


def shape_script(build_turn: dict) -> list[dict]:
    return [{"content": "research done"}, {"content": "plan: one page, index.html"}, build_turn, {"content": "built"}]


async def written_step(store, task_id: str) -> dict:
    async def check():
        steps = await store.fetch_steps(task_id)
        return next(
            (s for s in steps if s["type"] == "TOOL_RESULT" and s["metadata"].get("tool") == "file_write"), None
        )

    return await wait_for(check, timeout=60, what="the file_write result")


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_a_call_written_in_any_shape_runs(client, store, settings, worker, llm, shape):
    marker = llm.add(f"shape-{shape}", shape_script(SHAPES[shape]))
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    result = await written_step(store, task_id)
    ws = settings.workspace_for(task_id)
    assert (ws / "index.html").read_text() == PAGE["content"], result["content"]
    assert not (ws / "guess.html").exists()  # a burst's later calls were guesses: not run
    steps = await store.fetch_steps(task_id)
    llm_step = next(s for s in steps if s["type"] == "LLM_RESPONSE" and s["metadata"].get("tool_calls"))
    if shape != "native-wrapped":
        assert llm_step["metadata"]["recovered_calls"] == 1
        assert "file_write" not in llm_step["content"]  # the call left the text; the prose stays
    if shape == "answer-and-call":
        assert llm_step["content"] == "The plan says one page; writing it now."
    if shape == "cut-off-burst":
        assert llm_step["metadata"]["dropped_calls"] == 1
    # the next request carries the call in the protocol's shape, answered by a tool message
    follow_up = await wait_for(lambda: _request(llm, f"shape-{shape}", 3), what="the request after the call")
    sent = [m for m in follow_up.body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert json.loads(sent[-1]["tool_calls"][0]["function"]["arguments"]) == PAGE
    await _stop(handle)


async def _stop(handle) -> None:
    """Cancel the task unless its short script already let it finish."""
    from temporalio.service import RPCError

    try:
        await handle.signal("cancel")
    except RPCError as e:
        if "already completed" not in str(e):
            raise
    await handle.result()


async def _request(llm, name: str, index: int):
    return next((r for r in llm.requests_for(name) if r.index == index and r.status == 200), None)


async def test_json_that_is_not_a_call_stays_text(client, store, settings, worker, llm):
    text = 'The manifest will be:\n```json\n{"name": "crumb-site", "version": "1.0.0"}\n```'
    marker = llm.add("not-a-call", [{"content": text}])
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)

    async def research_ended():
        steps = await store.fetch_steps(task_id)
        return (
            [s for s in steps if s["type"] == "LLM_RESPONSE"]
            if any(s["type"] == "PHASE_START" and s["phase"] == "PLAN" for s in steps)
            else None
        )

    responses = await wait_for(research_ended, what="RESEARCH to end")
    assert responses[0]["content"] == text and responses[0]["metadata"]["tool_calls"] == 0
    await _stop(handle)


async def test_an_empty_reply_is_asked_again_once(client, store, settings, worker, llm):
    marker = llm.add("empty", [{"content": ""}, {"content": "plan"}])
    handle = await start(client, settings, marker)
    await wait_for(lambda: _request(llm, "empty", 1), what="the PLAN request")
    first = [r for r in llm.requests_for("empty") if r.index == 0]
    assert len(first) == 2 and first[0].body == first[1].body  # the same request, once more; then let through
    await _stop(handle)


async def test_stop_sequences_and_max_tokens_are_sent_only_when_set(
    client, store, llm, settings_with, worker_for, settings, worker
):
    marker = llm.add("no-stop", [{"content": "research done"}])
    handle = await start(client, settings, marker)
    plain = await wait_for(lambda: _request(llm, "no-stop", 0), what="a request")
    assert "stop" not in plain.body and "max_tokens" not in plain.body
    await _stop(handle)

    stop = ["```\n\n```json"]
    with_stop = settings_with(MORGUS_LLM_STOP=json.dumps(stop), MORGUS_LLM_MAX_TOKENS="1536")
    async with worker_for(with_stop):
        marker = llm.add("with-stop", [{"content": "research done"}])
        handle = await start(client, with_stop, marker)
        req = await wait_for(lambda: _request(llm, "with-stop", 0), what="a request")
        assert req.body["stop"] == stop and req.body["max_tokens"] == 1536
        await _stop(handle)


async def test_text_written_for_another_phase_is_dropped_and_an_echo_is_asked_again(
    client, store, settings, worker, llm
):
    """A 1.5B model wrote "**Phase: PLAN** …" sections into RESEARCH and then copied them as later replies
    (morgus/reply_text.py): the conversation keeps what it said as itself; PLAN keeps its sections (the plan)."""
    research = "Research done: one page.\n\n**Phase: PLAN**\nDecide the files.\n\n**Phase: BUILD**\nWrite them."
    plan = "Plan: index.html.\n\n**Phase: BUILD**\nWrite index.html."
    echo = "**Phase: BUILD**\nImplement the plan by calling tools."
    marker = llm.add("other-phase", [{"content": research}, {"content": plan}, {"content": echo}])
    handle = await start(client, settings, marker)
    build = await wait_for(lambda: _request(llm, "other-phase", 2), what="the BUILD request")
    said = [m["content"] for m in build.body["messages"] if m["role"] == "assistant"]
    assert said == ["Research done: one page.", plan]

    async def asked_again():
        return [r for r in llm.requests_for("other-phase") if r.index == 2][1:] or None

    echoes = await wait_for(asked_again, what="the echo asked again")
    assert echoes[0].body == build.body  # the same request once more
    steps = await store.fetch_steps(task_id_of(handle))
    replies = [s for s in steps if s["type"] == "LLM_RESPONSE"]
    assert replies[0]["content"] == "Research done: one page."
    assert replies[0]["metadata"]["dropped_phase_text"] == len(research) - len("Research done: one page.")
    assert replies[1]["content"] == plan and "dropped_phase_text" not in replies[1]["metadata"]

    async def echo_step():  # the echo, asked again, is echoed again: the step says both were dropped
        steps = await store.fetch_steps(task_id_of(handle))
        return [s for s in steps if s["type"] == "LLM_RESPONSE"][2:] or None

    (echoed,) = (await wait_for(echo_step, what="the echo's step"))[:1]
    assert echoed["metadata"]["asked_again"] is True
    assert echoed["metadata"]["first_reply"] == {"dropped_phase_text": len(echo)}
    assert echoed["metadata"]["dropped_phase_text"] == len(echo)
    await _stop(handle)
