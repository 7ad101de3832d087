"""A phase ends when its work is shown; a phase that cannot finish is bounded; cycles count as loops; tools that
cannot work on this worker are not offered (workflow.patched "phase-work-v1")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from morgus.activities.tools.workspace_state import changed, fingerprint
from morgus.contracts import Phase, TaskLimits, TaskResult
from morgus.phases import PHASES, TOOL_ORDER
from tests.conftest import start, task_id_of, wait_for, wait_task_status

WORK = TaskLimits(require_work=True)


def said_to_model(llm, marker: str) -> list[str]:
    """Every user message the model was sent, in order (from the last request, which holds the whole history)."""
    last = llm.requests_for(scenario(marker))[-1].body["messages"]
    return [m["content"] for m in last if m["role"] == "user"]


def scenario(marker: str) -> str:
    return marker.removeprefix("[scenario:").removesuffix("]")


def write(path: str, content: str = "x") -> dict:
    return {"content": None, "tool_calls": [{"name": "file_write", "arguments": {"path": path, "content": content}}]}


def shell(command: str) -> dict:
    return {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": command}}]}


async def test_build_without_a_file_is_pointed_out_once_then_the_model_writes(client, store, settings, worker, llm):
    marker = llm.add(
        "nudge",
        [
            {"content": "nothing to research"},
            {"content": "plan: write index.html"},
            {"content": "1. Write index.html. 2. Done."},  # BUILD: the plan restated, no tool call
            write("index.html", "<h1>hi</h1>"),
            {"content": "built"},
            shell("cat index.html"),
            {"content": "ran"},
            {"content": "Done: index.html"},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    assert (settings.workspace_for(task_id_of(handle)) / "index.html").read_text() == "<h1>hi</h1>"
    nudges = [m for m in said_to_model(llm, marker) if "no file exists yet" in m]
    assert len(nudges) == 1


async def test_build_that_writes_nothing_asks_the_user_and_stop_ends_in_error(client, store, settings, worker, llm):
    marker = llm.add(
        "nothing",
        [{"content": "r"}, {"content": "p"}, {"content": "I would write the files."}, {"content": "Still just words."}],
    )
    handle = await start(client, settings, marker, limits=WORK)
    row = await wait_task_status(store, task_id_of(handle), "waiting_for_input")
    assert row["pending_question"].startswith("BUILD produced no file. Continue anyway, retry, or stop?")
    await handle.execute_update("answer", {"text": "stop"}, result_type=str)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await wait_task_status(store, task_id_of(handle), "error")
    assert row["error_message"].startswith("Stopped by the user: BUILD produced no")


async def test_retry_passes_the_users_words_and_the_task_then_completes(client, store, settings, worker, llm):
    marker = llm.add(
        "retry",
        [
            {"content": "r"},
            {"content": "p"},
            {"content": "words"},
            {"content": "more words"},
            write("a.txt"),
            {"content": "built"},
            shell("cat a.txt"),
            {"content": "ran"},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    await wait_task_status(store, task_id_of(handle), "waiting_for_input")
    await handle.execute_update("answer", {"text": "write a.txt please"}, result_type=str)
    assert (await handle.result()).status == "completed"
    assert any(m.startswith("The user says: write a.txt please") for m in said_to_model(llm, marker))


async def test_a_task_that_built_nothing_never_completes_silently(client, store, settings, worker, llm):
    """The user let BUILD and EXECUTE go on without work (asked both times): only then may it complete."""
    marker = llm.add(
        "built-nothing",
        [
            {"content": "r"},
            {"content": "p"},
            {"content": "b"},
            {"content": "b"},
            {"content": "e"},
            {"content": "e"},
            {"content": "f"},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    tid = task_id_of(handle)
    for phase in ("BUILD", "EXECUTE"):

        async def asked(phase: str = phase) -> bool:
            row = await store.fetch_task(tid)
            return (
                bool(row)
                and row["status"] == "waiting_for_input"
                and (row["pending_question"] or "").startswith(f"{phase} produced no")
            )

        await wait_for(asked, what=f"the {phase} question")
        await handle.execute_update("answer", {"text": "continue"}, result_type=str)
    assert (await handle.result()).status == "completed"


async def test_execute_needs_a_run_or_a_deployment(client, store, settings, worker, llm):
    marker = llm.add(
        "exec",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt"),
            {"content": "built"},
            {"content": "It works."},
            shell("false"),
            {"content": "ran (it failed, that is a run)"},
            {"content": "It cannot be fixed here: false always fails."},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    assert (await handle.result()).status == "completed"
    said = said_to_model(llm, marker)
    assert sum(m.startswith("Nothing ran and nothing was deployed") for m in said) == 1
    # the failed run is work, but it is pointed out once (execute-failed-run-v1); the second reply ends the phase
    assert sum(m.startswith("Your last command failed and nothing is deployed") for m in said) == 1


async def test_execute_told_of_a_failed_run_then_fixes_it(client, store, settings, worker, llm):
    marker = llm.add(
        "exec-fix",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt"),
            {"content": "built"},
            shell("cat missing.txt"),
            {"content": "Ran it."},
            shell("cat a.txt"),
            {"content": "It prints x."},
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    assert (await handle.result()).status == "completed"
    said = said_to_model(llm, marker)
    assert sum(m.startswith("Your last command failed") for m in said) == 1
    # how EXECUTE ends is said after the run that worked, not after the failed one (finish-after-work-v1)
    execute_end = PHASES[Phase.EXECUTE].finish
    assert said.index(execute_end) > next(i for i, m in enumerate(said) if m.startswith("Your last command failed"))
    steps = await store.fetch_steps(task_id_of(handle))
    assert [s["phase"] for s in steps if s["type"] == "PHASE_START"][-1] == "FINALIZE"


async def test_iteration_cap_moves_research_on_and_asks_in_build(client, store, settings, worker, llm):
    reads = [
        {"content": None, "tool_calls": [{"name": "file_list", "arguments": {"path": p}}]} for p in (".", "x", "y")
    ]
    marker = llm.add("cap", [*reads, {"content": "plan"}, *reads])
    handle = await start(client, settings, marker, limits=TaskLimits(max_iterations_per_phase=3, require_work=True))
    tid = task_id_of(handle)
    row = await wait_task_status(store, tid, "waiting_for_input")
    assert row["pending_question"].startswith("Phase BUILD reached its iteration cap (3 LLM calls) without finishing")
    steps = await store.fetch_steps(tid)
    capped = [s for s in steps if s["type"] == "NOTIFICATION" and "iteration cap" in s["content"]]
    assert [s["phase"] for s in capped] == ["RESEARCH"]
    await handle.execute_update("answer", {"text": "stop"}, result_type=str)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    row = await wait_task_status(store, tid, "error")
    assert "Stopped by the user: phase BUILD reached its iteration cap" in row["error_message"]


async def test_a_repeating_cycle_is_a_loop(client, store, settings, worker, llm):
    """search -> notify -> search -> notify ... (different calls each turn, the same cycle): warned once."""
    a = {"content": None, "tool_calls": [{"name": "file_list", "arguments": {"path": "."}}]}
    b = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "still looking"}}]}
    marker = llm.add("cycle", [a, b, a, b, {"content": "ok, moving on"}])
    handle = await start(client, settings, marker)
    assert (await handle.result()).status == "completed"
    warnings = [m for m in said_to_model(llm, marker) if m.startswith("Loop detected")]
    assert len(warnings) == 1 and "the same 2 turns" in warnings[0]


async def test_a_stuck_phase_can_be_moved_on_by_the_user(client, store, settings, worker, llm):
    """The same failing command over and over (a real model did this with `pip install` offline): warned once,
    then the user is asked with choices; 'move on' ends the phase, and the task goes on with what it has."""
    stuck = shell("pip install nothing-here")
    marker = llm.add(
        "stuck",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt", "hi"),
            stuck,
            stuck,
            stuck,
            stuck,
            stuck,
            stuck,
            shell("cat a.txt"),
            {"content": "ran"},
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    row = await wait_task_status(store, task_id_of(handle), "waiting_for_input")
    assert "Answer 'move on' to go to the next phase, 'stop' to end the task" in row["pending_question"]
    assert row["phase"] == "BUILD"
    await handle.execute_update("answer", {"text": "move on"}, result_type=str)
    assert (await handle.result()).status == "completed"
    phases = [s["phase"] for s in await store.fetch_steps(task_id_of(handle)) if s["type"] == "PHASE_START"]
    assert phases == ["RESEARCH", "PLAN", "BUILD", "EXECUTE", "FINALIZE"]
    said = said_to_model(llm, marker)
    assert sum(m.startswith("Loop detected") for m in said) == 1 and not any("move on" in m for m in said)


async def test_tools_that_cannot_work_here_are_not_offered(client, store, llm, settings_with, worker_for):
    offline = settings_with(MORGUS_OFFLINE="1")
    search = {"content": None, "tool_calls": [{"name": "search_web", "arguments": {"query": "bakery"}}]}
    marker = llm.add("offline", [search, {"content": "r"}, {"content": "p"}, write("a"), {"content": "b"}])
    async with worker_for(offline):
        handle = await start(client, offline, marker)
        assert (await handle.result()).status == "completed"
    offered = [[t["function"]["name"] for t in r.body.get("tools") or []] for r in llm.requests_for(scenario(marker))]
    cannot = ("search_web", "fetch_url", "cloudflare_deploy", "git_push", "memory_search")  # no embedding server
    expected = [t for t in TOOL_ORDER if t not in cannot]
    assert offered[0] == expected
    assert all(o == offered[0] for o in offered), "the tool list changed between phases (the prefix cache)"
    results = [m["content"] for m in llm.requests_for(scenario(marker))[-1].body["messages"] if m["role"] == "tool"]
    assert "cannot work here (this worker has no network access (MORGUS_OFFLINE))" in results[0]


def test_fingerprint_sees_a_change_and_survives_hostile_trees(tmp_path: Path):
    (tmp_path / "a").write_text("1")
    before = fingerprint(tmp_path)
    assert before is not None and fingerprint(tmp_path) == before
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)  # never followed
    (tmp_path / "dangling").symlink_to("/nonexistent")
    after = fingerprint(tmp_path)
    assert after is not None and changed(before, after)
    assert not changed(after, fingerprint(tmp_path))
    for i in range(30):
        (tmp_path / f"f{i}").write_text("")
    assert fingerprint(tmp_path, max_entries=10) is None  # too large to walk: counted as changed
    assert changed(None, after)
    if os.geteuid() != 0:
        locked = tmp_path / "sub"
        locked.chmod(0)
        try:
            assert fingerprint(tmp_path) is None
        finally:
            locked.chmod(0o755)


async def test_the_summary_says_what_the_tools_did_whatever_the_model_claims(client, store, settings, worker, llm):
    """A real model ended a task with "Committed the file. Deployed the site at example.com." having done neither:
    the summary keeps its words and ends with what the tools reported (checked-summary-v1)."""
    marker = llm.add(
        "claims",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt", "hi"),
            {"content": "built"},
            shell("cat a.txt"),
            {"content": "ran"},
            {"content": "Committed the file. Deployed the site at https://example.com."},
            # told once that no tool was called (finalize-nudge-v1), it claims the same again
            {"content": "Committed the file. Deployed the site at https://example.com."},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    assert result.summary.startswith("Committed the file. Deployed the site at https://example.com.")
    assert result.summary.endswith(
        "Checked by Morgus from the tools' reports: files written or changed; a command "
        "ran; nothing deployed; nothing committed."
    )
    await wait_task_status(store, task_id_of(handle), "completed")
    ends = [s for s in await store.fetch_steps(task_id_of(handle)) if s["type"] == "TASK_END"]
    assert ends[-1]["content"] == result.summary  # the console shows the same checked summary


def test_checked_facts_names_each_tool_report():
    from morgus.workflows.summary import checked_facts

    assert checked_facts(False, []) == (
        "Checked by Morgus from the tools' reports: no file changed; no command "
        "ran; nothing deployed; nothing committed."
    )
    everything = checked_facts(True, ["shell_exec", "deploy_local", "cloudflare_deploy", "git_commit", "git_push"])
    assert "deployed with deploy_local, cloudflare_deploy" in everything and everything.endswith(
        "committed to git; pushed."
    )
    assert "file_read" not in checked_facts(True, ["file_read"])  # a read is not a fact worth the summary


async def test_finalize_that_calls_no_tool_is_told_once(client, store, settings, worker, llm):
    """finalize-nudge-v1: "Committed everything." with no tool called is pointed out once; a FINALIZE that told
    the user (notify_user) or committed ends on its reply."""
    notify = {"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "built a.txt"}}]}
    told = llm.add(
        "fin-told",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt"),
            {"content": "built"},
            shell("cat a.txt"),
            {"content": "ran"},
            notify,
            {"content": "done"},
        ],
    )
    silent = llm.add(
        "fin-silent",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt"),
            {"content": "built"},
            shell("cat a.txt"),
            {"content": "ran"},
            {"content": "Committed everything."},
            notify,
            {"content": "done"},
        ],
    )
    # a notify_user in BUILD does not excuse a silent FINALIZE (red team: it did)
    early = llm.add(
        "fin-early",
        [
            {"content": "r"},
            {"content": "p"},
            write("a.txt"),
            notify,
            {"content": "built"},
            shell("cat a.txt"),
            {"content": "ran"},
            {"content": "Committed everything."},
            {"content": "done"},
        ],
    )
    for marker, nudges in ((told, 0), (silent, 1), (early, 1)):
        handle = await start(client, settings, marker, limits=WORK)
        assert (await handle.result()).status == "completed"
        said = said_to_model(llm, marker)
        assert (
            sum(m.startswith("Nothing was committed and this phase told the user nothing") for m in said) == nudges
        ), marker


async def test_build_and_execute_are_told_how_to_end_once_their_work_is_shown(client, store, settings, worker, llm):
    """finish-after-work-v1: told the ending with the opening, a 1.5B model answered BUILD with the ending itself
    ("I wrote index.html", no call); the ending is said after the first file (BUILD) and the first run (EXECUTE)."""
    marker = llm.add(
        "finish-later",
        [
            {"content": "r"},
            {"content": "p"},
            # two calls in one turn: the ending comes after both results (between them it broke the protocol)
            {"content": None, "tool_calls": write("a.txt")["tool_calls"] + write("b.txt")["tool_calls"]},
            {"content": "wrote a.txt, b.txt"},
            shell("cat a.txt"),
            {"content": "ran"},
            {"content": "done"},
        ],
    )
    handle = await start(client, settings, marker, limits=WORK)
    assert (await handle.result()).status == "completed"
    messages = llm.requests_for(scenario(marker))[-1].body["messages"]
    users = [m["content"] for m in messages if m["role"] == "user"]
    build = next(m for m in users if m.startswith("Phase: BUILD"))
    execute = next(m for m in users if m.startswith("Phase: EXECUTE"))
    assert "end this phase" not in build and "end this phase" not in execute
    endings = [m for m in users if m.startswith("When ") and "end this phase" in m]
    assert endings == [PHASES[Phase.BUILD].finish, PHASES[Phase.EXECUTE].finish]  # once each, after the work
    # BUILD's ending follows the first file's result, not the opening
    roles = [(m["role"], m.get("content")) for m in messages]
    at = roles.index(("user", PHASES[Phase.BUILD].finish))
    assert [r for r, _ in roles[at - 3 : at]] == ["assistant", "tool", "tool"]
    # RESEARCH, PLAN and FINALIZE still open with their ending
    assert any(m.startswith("Phase: FINALIZE") and PHASES[Phase.FINALIZE].finish in m for m in users)


async def test_execute_that_names_a_url_nothing_deployed_is_told_once(client, store, settings, worker, llm):
    """execute-url-claim-v1: "the site was deployed … The URL is <https://crumbco.com>" after a run, with no
    deployment, is pointed out once; a URL a deployment returned is not."""
    deploy = {"content": None, "tool_calls": [{"name": "deploy_local", "arguments": {"directory": "site"}}]}
    claims = llm.add(
        "url-claim",
        [
            {"content": "r"},
            {"content": "p"},
            write("site/index.html", "<h1>hi</h1>"),
            {"content": "built"},
            shell("cat site/index.html"),
            {"content": "Ran it; deployed at <https://crumbco.com>."},
            deploy,
            {"content": "Deployed."},
        ],
    )
    honest = llm.add(
        "url-real",
        [
            {"content": "r"},
            {"content": "p"},
            write("site/index.html", "<h1>hi</h1>"),
            {"content": "built"},
            deploy,
            {"content": "Deployed at http://127.0.0.1:8091/x/ (the tool's URL)."},
        ],
    )
    for marker, nudges in ((claims, 1), (honest, 0)):
        handle = await start(client, settings, marker, limits=WORK)
        assert (await handle.result()).status == "completed"
        said = said_to_model(llm, marker)
        assert sum(m.startswith("Nothing was deployed: your reply called no tool") for m in said) == nudges, marker
    steps = await store.fetch_steps(task_id_of(handle))
    assert any(s["type"] == "TOOL_RESULT" and s["metadata"].get("tool") == "deploy_local" for s in steps)
