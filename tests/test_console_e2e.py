"""The console in real headless Chromium against the real stack (API + worker + Postgres + scripted LLM).

Steers the task from the message box, answers its question, sees it complete. Needs Debian's chromium and `npm ci && npm run build` in console/ (.ci/run does both); skipped with the reason
otherwise. Screenshots of each page are written to docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.api import served

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"


async def test_console_end_to_end_in_chromium(client, store, settings, worker, llm, monkeypatch):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    if not (CONSOLE / "dist" / "index.html").exists() or not (CONSOLE / "node_modules" / "playwright-core").exists():
        pytest.skip("the console is not built (cd console && npm ci && npm run build)")
    marker = llm.add(
        "console-e2e",
        [
            {
                "content": "Researching.",
                "delay_s": 3,  # the console sends a steering message while this call is in flight
                "tool_calls": [{"name": "notify_user", "arguments": {"message": "Looking at bakery sites."}}],
            },
            {"content": "Research done."},
            {
                "content": None,
                "tool_calls": [
                    {"name": "ask_user", "arguments": {"question": "Which colour palette should the page use?"}}
                ],
            },
            {"content": "Plan: one page, blue and cream."},
            {
                "content": None,
                "delay_s": 0.5,
                "tool_calls": [
                    {
                        "name": "file_write",
                        "arguments": {"path": "dist/index.html", "content": "<h1>Crumb &amp; Co.</h1>"},
                    }
                ],
            },
            {"content": "Built."},
            {"content": None, "tool_calls": [{"name": "deploy_local", "arguments": {"directory": "dist"}}]},
            {"content": "Deployed."},
            {"content": "Done: deployed the bakery page."},
        ],
    )
    shots = ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    async with served(settings, client, store) as http:
        base = str(http.base_url).rstrip("/")
        res = await asyncio.to_thread(
            subprocess.run,
            [shutil.which("node") or "node", str(CONSOLE / "e2e" / "console.e2e.mjs"), base, marker, str(shots)],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=CONSOLE,
            env={**os.environ, "CHROMIUM": chromium},
        )
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "completed; artifact http" in res.stdout
    assert "steering message in the timeline" in res.stdout
    said = [m["content"] for m in llm.requests_for("console-e2e")[-1].body["messages"] if m["role"] == "user"]
    assert said.count("The user says: Use Tailwind instead.") == 1
    for name in ("new-task", "task-steer", "task-question", "task-detail", "dashboard-filters"):
        assert (shots / f"{name}.png").stat().st_size > 10_000


async def test_the_reply_streams_into_the_page_and_survives_a_reload(client, store, settings, worker, llm):
    """The scripted stream is held mid-reply until the page has shown it (and again after a reload); the script
    says "e2e: release" and the test lets the stream finish: no timing in either process."""
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    if not (CONSOLE / "dist" / "index.html").exists() or not (CONSOLE / "node_modules" / "playwright-core").exists():
        pytest.skip("the console is not built (cd console && npm ci && npm run build)")
    reply = (
        "Sourdough first: the page opens with the bakery's name and a sentence about the starter, kept since 1998. "
        "Then the menu, a photo of the counter, and the opening hours."
    )
    marker = llm.add("console-streaming", [{"content": reply, "stream": {"chunk_chars": 6, "pause_after_chars": 60}}])
    shots = ROOT / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    async with served(settings, client, store) as http:
        created = await http.post(
            "/api/tasks", json={"title": "Bakery page", "description": f"A bakery page. {marker}", "model": "scripted"}
        )
        assert created.status_code == 201, created.text
        proc = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node",
            str(CONSOLE / "e2e" / "streaming.e2e.mjs"),
            str(http.base_url).rstrip("/"),
            created.json()["id"],
            str(shots),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=CONSOLE,
            env={**os.environ, "CHROMIUM": chromium},
        )
        assert proc.stdout is not None
        out = []
        try:
            async with asyncio.timeout(240):
                async for line in proc.stdout:
                    out.append(line.decode(errors="replace"))
                    if line.strip() == b"e2e: release":
                        llm.release("console-streaming#1")
                await proc.wait()
        finally:
            llm.release("console-streaming#1")  # never leave the server's thread waiting
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = "".join(out)
    print(text)
    assert proc.returncode == 0, text
    assert "live reply shown before its step" in text and "survives a reload" in text
    assert "the step replaced the live reply" in text
    assert (shots / "task-streaming.png").stat().st_size > 10_000
