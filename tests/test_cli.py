"""The `morgus` CLI and `python -m morgus.worker` against the real stack: output, and one-line errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.conftest import settings_env, wait_task_status


async def run(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, args, env=env, capture_output=True, text=True, timeout=timeout)


def morgus(*args: str) -> list[str]:
    return [sys.executable, "-m", "morgus", *args]


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


async def test_bad_config_is_one_clear_line(settings):
    env = settings_env(settings) | {"TEMPORAL_ADDRESS": "no-port-here"}
    res = await run(morgus("task", "list"), env)
    assert res.returncode == 2 and one_line(res.stderr)
    assert "TEMPORAL_ADDRESS" in res.stderr and "host:port" in res.stderr
    res = await run([sys.executable, "-m", "morgus.worker"], settings_env(settings) | {"DATABASE_URL": "mysql://x"})
    assert res.returncode == 2 and one_line(res.stderr) and "DATABASE_URL" in res.stderr


async def test_unreachable_services_are_one_clear_line(settings):
    env = settings_env(settings) | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}
    res = await run(morgus("task", "start", "build a thing"), env)
    assert res.returncode == 2 and one_line(res.stderr)
    assert "cannot reach Temporal at 127.0.0.1:1" in res.stderr and "morgus up" in res.stderr
    env = settings_env(settings) | {"DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/db"}
    res = await run(morgus("task", "list"), env)
    assert res.returncode == 2 and one_line(res.stderr)
    assert "cannot reach Postgres at 127.0.0.1:1/db" in res.stderr and "hunter2" not in res.stderr


async def test_invalid_input_and_unknown_ids(settings):
    env = settings_env(settings)
    res = await run(morgus("task", "start", ""), env)
    assert res.returncode == 2 and one_line(res.stderr) and "description" in res.stderr
    res = await run(morgus("task", "show", "not-a-uuid"), env)
    assert res.returncode == 2 and "is not a task id" in res.stderr
    res = await run(morgus("task", "show", "11111111-1111-1111-1111-111111111111"), env)
    assert res.returncode == 2 and "no task with id" in res.stderr
    res = await run(morgus("task", "cancel", "11111111-1111-1111-1111-111111111111"), env)
    assert res.returncode == 2 and "no task with id" in res.stderr


async def test_start_wait_show_and_list(settings, store, worker, llm):
    marker = llm.add(
        "cli",
        [
            {
                "content": "noted",
                "tool_calls": [{"name": "notify_user", "arguments": {"message": "hello from the agent"}}],
            }
        ],
    )
    env = settings_env(settings)
    res = await run(morgus("task", "start", f"Say hello {marker}", "--title", "CLI [bold]task[/bold]", "--wait"), env)
    assert res.returncode == 0, res.stderr
    task_id = res.stdout.splitlines()[0].strip()
    assert "hello from the agent" in res.stdout and f"task {task_id}: completed" in res.stdout
    await wait_task_status(store, task_id, "completed")

    show = await run(morgus("task", "show", f"task-{task_id}"), env)
    assert show.returncode == 0, show.stderr
    assert "CLI [bold]task[/bold]" in show.stdout  # user text is never rich markup
    assert "status completed" in show.stdout and "NOTIFICATION" in show.stdout
    listing = await run(morgus("task", "list", "--status", "completed", "--limit", "500"), env)
    assert listing.returncode == 0 and task_id in listing.stdout


async def test_worker_stops_gracefully_on_sigterm(settings):
    import signal

    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "morgus.worker"],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await asyncio.sleep(3)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        output = proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, output
    assert "worker started" in output and "worker stopped" in output
    assert "test-key" not in output  # the API key is never logged
    assert os.environ.get("OPENAI_API_KEY", "unset") not in output or not os.environ.get("OPENAI_API_KEY")
