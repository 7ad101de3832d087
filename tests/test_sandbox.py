"""Real containers: isolation, limits, quoting, and the sandbox lifecycle inside a task.

Needs a Docker daemon and the sandbox image (`morgus sandbox build`); skipped, with the reason, where absent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from morgus.contracts import SandboxOptions, TaskResult
from morgus.sandbox.output import CappedOutput
from tests.conftest import settings_env, start, task_id_of, wait_for
from tests.helpers.backends import bwrap_or_skip, docker_or_skip, pooled_sandbox


@pytest.fixture(scope="module")
def docker_backend():
    return docker_or_skip()


@pytest.fixture(params=["docker", "bwrap"])
def box(request, tmp_path):
    backend = docker_or_skip() if request.param.startswith("docker") else bwrap_or_skip()
    task_id = f"t{uuid.uuid4().hex[:12]}"
    # pytest's tmp_path sits under a 0700 directory the unprivileged sandbox user cannot enter
    ws = Path(tempfile.mkdtemp(prefix="morgus-ws-"))
    ws.chmod(0o755)
    if request.param == "docker-pool":  # a warm container claimed from the pool, its workspace renamed into place
        backend, name = pooled_sandbox(backend, ws, task_id)
        ws = ws / task_id
    else:
        name = backend.ensure(task_id, f"task-{task_id}", ws, SandboxOptions(), "test-queue")
    yield backend, name, ws
    backend.remove(name)
    if request.param == "docker-pool":
        backend.drain(close=True)
        ws = ws.parent
    shutil.rmtree(ws, ignore_errors=True)


# The isolation and limit checks also run on a pooled sandbox: it must be exactly as locked down as a cold one.
WITH_POOL = pytest.mark.parametrize("box", ["docker", "docker-pool", "bwrap"], indirect=True)


def run(box, command: str, timeout_s: float = 20) -> tuple[int, bool, str, str, CappedOutput]:
    backend, name, _ = box
    sink = CappedOutput()
    result = backend.exec(name, command, timeout_s=timeout_s, env={}, sink=sink)
    return result.exit_code, result.timed_out, sink.stdout(), sink.stderr(), sink


# ---------------------------------------------------------------- isolation


@WITH_POOL
def test_no_network_not_even_the_hosts_loopback(box, postgres):
    code, _, out, err, _ = run(
        box, f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {postgres.port}), timeout=3)\""
    )
    assert code != 0 and "Connection refused" in err
    code, _, out, err, _ = run(box, "python3 -c \"import socket; socket.getaddrinfo('pypi.org', 443)\"")
    assert code != 0


@WITH_POOL
def test_host_files_and_worker_environment_are_invisible(box, tmp_path):
    host_dir = Path(tempfile.mkdtemp(prefix="morgus-host-"))
    host_dir.chmod(0o755)  # readable by anyone on the host: only the sandbox may hide it
    secret = host_dir / "host-secret.txt"
    secret.write_text("host only")
    secret.chmod(0o644)
    os.environ["MORGUS_TEST_SECRET"] = "sk-must-not-leak"
    try:
        code, _, out, err, _ = run(box, f"cat {secret}; env; ls /root")
    finally:
        del os.environ["MORGUS_TEST_SECRET"]
    assert "host only" not in out and "No such file" in err
    assert "sk-must-not-leak" not in out and "OPENAI_API_KEY" not in out and "DATABASE_URL" not in out


@WITH_POOL
def test_only_workspace_and_tmp_are_writable_and_root_is_read_only(box):
    code, _, out, err, _ = run(
        box,
        "echo hi > /workspace/ok.txt && echo hi > /tmp/ok && echo hi > ~/ok && cat /workspace/ok.txt; "
        "touch /etc/x; touch /usr/x; touch /x",
    )
    assert out == "hi\n"
    assert err.count("Read-only file system") == 3
    assert (box[2] / "ok.txt").read_text() == "hi\n"  # the workspace is the host's task workspace


@WITH_POOL
def test_not_root_and_no_capabilities(box):
    code, _, out, err, _ = run(
        box,
        "id -u; grep CapEff /proc/self/status; mount -t tmpfs none /tmp && echo MOUNTED; "
        "chown 0:0 /workspace && echo CHOWNED; true",
    )
    lines = out.splitlines()
    assert lines[0] == "1000"
    assert lines[1].split()[1] == "0000000000000000"
    assert "MOUNTED" not in out and "CHOWNED" not in out and err


# ---------------------------------------------------------------- limits


@WITH_POOL
def test_fork_bomb_is_contained_by_the_pids_limit(box):
    code, timed_out, *_ = run(
        box, "python3 -c 'import os\nwhile True:\n  try: os.fork()\n  except OSError: pass'", timeout_s=5
    )
    assert timed_out
    code, _, out, *_ = run(box, "echo still alive; ps -e --no-headers | wc -l")
    assert out.splitlines()[0] == "still alive" and int(out.splitlines()[1]) < 10


@WITH_POOL
def test_memory_bomb_is_stopped(box):
    code, timed_out, out, err, _ = run(box, "python3 -c 'a = bytearray(3 * 1024**3); print(len(a))'", timeout_s=60)
    assert code != 0 and not timed_out and str(3 * 1024**3) not in out
    # docker: the cgroup OOM killer (137); bwrap: RLIMIT_AS makes the allocation fail (MemoryError)
    assert code == 137 or "MemoryError" in err


@WITH_POOL
@pytest.mark.parametrize("command", ["while :; do :; done", "sleep 1000", "setsid sleep 1000 & sleep 1000"])
def test_runaway_commands_are_killed_at_the_timeout(box, command):
    started = time.monotonic()
    code, timed_out, *_ = run(box, command, timeout_s=2)
    assert timed_out and code == 137
    assert time.monotonic() - started < 30
    code, _, out, *_ = run(box, "ps -eo args --no-headers | grep -c '^sleep 1000$' || true")
    assert out.strip() == "0"  # nothing that escaped the process group survives


def test_a_one_gigabyte_flood_is_truncated_without_growing_the_worker(box):
    rss_before = psutil.Process().memory_info().rss
    code, _, out, _, sink = run(box, "head -c 1000000000 /dev/zero | tr '\\0' a", timeout_s=300)
    assert code == 0 and sink.total_bytes == 1_000_000_000 and sink.truncated
    assert len(out) < 17_000 and "bytes omitted" in out
    assert psutil.Process().memory_info().rss - rss_before < 50 * 1024 * 1024


# ---------------------------------------------------------------- quoting

QUOTING = [
    ("printf '%s\\n' 'two words' \"it's\"", "two words\nit's\n"),
    ("cat <<'EOF'\n$HOME and $(date) stay literal\n  indented\nEOF", "$HOME and $(date) stay literal\n  indented\n"),
    ("X=inner; echo \"value: $X\" '$X'", "value: inner $X\n"),
    ('echo "$(echo nested $(echo deeper))"', "nested deeper\n"),
    ("echo 'héllo ✓ 日本語 🚀'", "héllo ✓ 日本語 🚀\n"),
    ("python -c 'print(6 * 7)'", "42\n"),  # `python` is python3, as models expect
    (
        "git init -q repo && cd repo && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m 'two words \"quoted\"' && git log -1 --format=%s",
        'two words "quoted"\n',
    ),
]


@pytest.mark.parametrize("command,expected", QUOTING)
def test_commands_run_exactly_as_written(box, command, expected):
    code, _, out, err, _ = run(box, command)
    assert (code, out) == (0, expected), err


# ---------------------------------------------------------------- inside a task


def shell_script(commands: list[str]) -> list[dict]:
    return [
        {"content": "research done"},
        {"content": "plan done"},
        *(
            {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": c, "timeout_s": 20}}]}
            for c in commands
        ),
        {"content": "build done"},
    ]


async def test_shell_exec_in_a_task_and_the_container_is_removed_at_the_end(
    client, store, settings, worker, llm, docker_backend
):
    script = shell_script(
        [
            "echo 'hello from' \"$(whoami)\" > out.txt && cat out.txt",
            "rm -rf /",
            "exit 3",
            "echo appended >> notes/n.txt && cat notes/n.txt",
        ]
    )
    # a file the worker writes after the container exists stays writable from inside it
    script.insert(
        3,
        {
            "content": None,
            "tool_calls": [{"name": "file_write", "arguments": {"path": "notes/n.txt", "content": "first\n"}}],
        },
    )
    marker = llm.add("shell", script)
    handle = await start(client, settings, marker)
    task_id = task_id_of(handle)
    result: TaskResult = await handle.result()
    assert result.status == "completed"
    tool_msgs = [m["content"] for m in llm.requests_for("shell")[-1].body["messages"] if m["role"] == "tool"]
    assert tool_msgs[0].startswith("exit code 0") and "hello from morgus" in tool_msgs[0]
    assert tool_msgs[1].startswith("Wrote")
    assert "refused by policy rule 'rm-root'" in tool_msgs[2]
    assert tool_msgs[3].startswith("exit code 3")
    assert tool_msgs[4].startswith("exit code 0") and "first\nappended" in tool_msgs[4]
    assert (settings.workspace_for(task_id) / "out.txt").read_text() == "hello from morgus\n"
    assert not docker_backend.alive(f"morgus-{task_id}")
    artifacts = await store.fetch_artifacts(task_id)
    assert [a["type"] for a in artifacts] == ["log", "log", "log"] and Path(artifacts[0]["path"]).exists()


async def test_worker_sigkill_with_a_running_container(client, store, settings, llm, docker_backend):
    """The worker dies mid-command; a new worker finishes the task over the same workspace; no container is left."""
    from morgus.app.stack import start_worker_process, terminate

    marker = llm.add(
        "sandbox-crash", shell_script(["echo one > one.txt", "sleep 4; echo two > two.txt", "cat one.txt two.txt"])
    )
    env = settings_env(settings)
    first = start_worker_process(env)
    second = None
    try:
        handle = await start(client, settings, marker)
        task_id = task_id_of(handle)
        name = f"morgus-{task_id}"

        async def sleeping() -> bool:
            steps = await store.fetch_steps(task_id)
            return any("sleep 4" in s["content"] for s in steps if s["type"] == "TOOL_CALL")

        await wait_for(sleeping, timeout=60, what="the slow command")
        await asyncio.sleep(1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert docker_backend.alive(name)  # the container outlives its worker
        second = start_worker_process(env)
        result: TaskResult = await asyncio.wait_for(handle.result(), 180)
    finally:
        terminate(first)
        if second is not None:
            terminate(second)
    assert result.status == "completed"
    last = [m["content"] for m in llm.requests_for("sandbox-crash")[-1].body["messages"] if m["role"] == "tool"]
    assert "one\ntwo" in last[-1]
    assert not docker_backend.alive(name)
    assert name not in [c.name for c in docker_backend.list_managed()]


async def test_reaper_removes_orphans_of_closed_workflows(client, docker_backend, tmp_path):
    from morgus.activities.sandbox import reap_orphans

    orphan = f"orphan{uuid.uuid4().hex[:8]}"
    name = docker_backend.ensure(orphan, f"task-{uuid.uuid4()}", tmp_path / "ws", SandboxOptions(), "gone-queue")
    assert docker_backend.alive(name)
    removed = await reap_orphans(client, docker_backend)
    assert name in removed and not docker_backend.alive(name)
