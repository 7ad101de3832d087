"""Pause, resume and approve in the real console (headless Chromium) against the real stack (API, worker, Postgres,
scripted LLM, git). console/e2e/hitl.e2e.mjs pauses the task while its first LLM call is in flight, resumes it, and
approves the git_push FINALIZE waits on; nothing is pushed before. Needs Debian's chromium and a built console
(.ci/run does both); skipped otherwise. Screenshots: docs/screenshots/task-paused.png, task-approval.png.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from morgus.contracts import ApprovalPolicy
from tests.conftest import start, task_id_of, wait_for
from tests.helpers.api import served
from tests.helpers.console_e2e import assert_screenshots, chromium_or_skip, run_e2e, screenshots
from tests.helpers.gitrepos import bare_repo


def pushed(bare: Path) -> bool:
    return subprocess.run(["git", "-C", str(bare), "rev-parse", "--verify", "-q", "main"]).returncode == 0


async def test_pause_resume_and_approve_in_chromium(client, store, settings, worker, llm, tmp_path):
    chromium_or_skip()
    bare = bare_repo(tmp_path / "site.git")
    marker = llm.add(
        "console-hitl",
        [
            {
                "content": "Researching.",
                "delay_s": 4,  # the console pauses the task while this call is in flight
                "tool_calls": [{"name": "notify_user", "arguments": {"message": "Looking at bakery sites."}}],
            },
            {"content": "Research done."},
            {"content": "Plan: one page."},
            {
                "content": None,
                "tool_calls": [
                    {"name": "file_write", "arguments": {"path": "index.html", "content": "<h1>Crumb &amp; Co.</h1>"}},
                    {"name": "git_init", "arguments": {}},
                    {"name": "git_add", "arguments": {}},
                    {"name": "git_commit", "arguments": {"message": "The bakery page"}},
                ],
            },
            {"content": "Built."},
            {"content": "Executed."},
            {
                "content": None,
                "tool_calls": [{"name": "git_push", "arguments": {"remote": "origin", "branch": "main"}}],
            },
            {"content": "Pushed the page."},
        ],
    )
    handle = await start(
        client, settings, marker, title="Bakery page, pushed", repo_url=str(bare), approvals=ApprovalPolicy()
    )
    tid = task_id_of(handle)
    await wait_for(lambda: asyncio.sleep(0, llm.in_flight("console-hitl") > 0), what="the first LLM call")
    async with served(settings, client, store) as http:
        out = await run_e2e("hitl.e2e.mjs", str(http.base_url).rstrip("/"), tid, str(screenshots()))
    assert 'approval shown: git_push({"remote": "origin", "branch": "main"})' in out
    assert (await handle.result()).status == "completed" and pushed(bare)
    steps = await store.fetch_steps(tid)
    kinds = [s["type"] for s in steps]
    assert kinds.count("PAUSED") == kinds.count("RESUMED") == kinds.count("APPROVAL") == kinds.count("DECISION") == 1
    assert len(llm.requests_for("console-hitl")) == 8  # nothing re-run, nothing skipped
    assert_screenshots("task-paused", "task-approval")
