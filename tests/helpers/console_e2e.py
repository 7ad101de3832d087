"""Running one of console/e2e/*.e2e.mjs (real headless Chromium, console/e2e/harness.mjs) against the served app:
the skip when Chromium or the built console is missing, the screenshot folder, the node process with its time
limit, and the screenshot check. The tests keep what is theirs: the scripted task, the stack's state, the asserts."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
SHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_S = 240


def chromium_or_skip() -> str:
    """Debian's Chromium, with the console built (`npm ci && npm run build`; .ci/run does both); else a skip."""
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    if not (CONSOLE / "dist" / "index.html").exists() or not (CONSOLE / "node_modules" / "playwright-core").exists():
        pytest.skip("the console is not built (cd console && npm ci && npm run build)")
    return chromium


def screenshots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


async def run_e2e(script: str, *args: str, on_line: Callable[[str], None] | None = None) -> str:
    """`node console/e2e/<script> <args>` in Chromium; its output (stdout and stderr, printed for the test log) once
    it has exited 0 (else an AssertionError with that output). `on_line` sees each line as it comes (a test that
    lets the page go on when the script says so). Killed after TIMEOUT_S: a stuck page never holds the suite."""
    chromium = chromium_or_skip()
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(CONSOLE / "e2e" / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=CONSOLE,
        env={**os.environ, "CHROMIUM": chromium},
    )
    assert proc.stdout is not None
    out: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            async for raw in proc.stdout:
                line = raw.decode(errors="replace")
                out.append(line)
                if on_line is not None:
                    on_line(line.strip())
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "".join(out)
    print(text)
    assert proc.returncode == 0, text
    return text


def assert_screenshots(*names: str) -> None:
    """Each docs/screenshots/<name>.png is there and not blank (a blank page is ~5 KB)."""
    for name in names:
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000, name
