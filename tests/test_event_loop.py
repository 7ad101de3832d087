"""Item 7 of issue 11: nothing a tool does may starve a sandbox supervisor's heartbeat.

The slow-push half (an asyncio subprocess, never the loop or a pool thread) is in test_git_traps.py; this file
covers the shared thread pool: long tool calls (each shell command holds a pool thread for its whole run) must
not queue a supervisor's liveness probe behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

from morgus.activities.sandbox import SandboxActivities
from morgus.contracts import SandboxOptions, SandboxRef
from tests.conftest import wait_for


async def test_supervisor_heartbeats_while_every_shared_pool_thread_is_busy(settings):
    from tests.helpers.backends import bwrap_or_skip

    backend = bwrap_or_skip()  # alive() is a real check of the sandbox's workspace
    ws = Path(tempfile.mkdtemp(prefix="morgus-probe-"))
    ws.chmod(0o755)
    name = backend.ensure("probe", "task-probe", ws, SandboxOptions(), "q")
    acts = SandboxActivities(settings, backend, "q")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=1.5))
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    loop = asyncio.get_running_loop()
    release = threading.Event()
    # far more long-running "tool calls" than the default pool has threads (min(32, cpus + 4))
    hogs = [loop.run_in_executor(None, release.wait, 120) for _ in range(40)]
    supervising = asyncio.ensure_future(env.run(acts.supervise, SandboxRef(name=name, host_queue="q", backend="bwrap")))
    try:

        async def beating() -> bool:
            return len(beats) >= 3

        await wait_for(beating, timeout=30, what="supervisor heartbeats while the shared pool is saturated")
    finally:
        release.set()
        env.cancel()
        with contextlib.suppress(asyncio.CancelledError, CancelledError):
            await supervising
        await asyncio.gather(*hogs)
