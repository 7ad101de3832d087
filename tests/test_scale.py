"""Many workers: work spreads, a dead worker takes no task with it, rolling restarts, and the deploy artifacts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from morgus.app.stack import start_worker_process, terminate, wait_for_port
from morgus.contracts import TaskLimits
from tests.conftest import assert_steps_contiguous, free_port, settings_env, start, task_id_of, wait_for

ROOT = Path(__file__).resolve().parent.parent


def steady_script(steps: int, delay_s: float) -> list[dict]:
    return [
        {
            "content": f"step {i}",
            "delay_s": delay_s,
            "tool_calls": [{"name": "notify_user", "arguments": {"message": f"step {i}"}}],
        }
        for i in range(steps)
    ]


async def activity_workers(client, workflow_id: str) -> set[str]:
    """Identities of the workers that ran this task's activities, over all its runs."""
    seen = set()
    async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=wf.run_id).fetch_history()
        for e in history.events:
            if e.HasField("activity_task_started_event_attributes"):
                seen.add(e.activity_task_started_event_attributes.identity)
    return seen


async def assert_clean(store, task_id: str, steps: int) -> None:
    rows = await store.fetch_steps(task_id)
    assert_steps_contiguous(rows)
    results = Counter(r["metadata"]["tool_call_id"] for r in rows if r["type"] == "TOOL_RESULT")
    assert len(results) == steps and set(results.values()) == {1}
    assert sum(1 for r in rows if r["type"] == "NOTIFICATION") == steps


async def _polling(client, task_queue: str, pids: set[str]) -> bool:
    """Every worker in `pids` polls the task queue for activities (identities are "<pid>@<host>")."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return pids <= {p.identity.split("@")[0] for p in resp.pollers}


async def test_two_workers_share_twenty_tasks_and_one_dies(client, store, settings, llm):
    env = settings_env(settings) | {"MORGUS_LOG_LEVEL": "warning"}
    workers = [start_worker_process(env), start_worker_process(env)]
    steps = 6
    marker = llm.add("scale-kill", steady_script(steps, 0.3))
    try:
        # both workers polling before the tasks start (a fixed sleep was shorter than a worker's start-up under load)
        pids = {str(w.pid) for w in workers}
        await wait_for(lambda: _polling(client, settings.task_queue, pids), timeout=120, what="both workers to poll")
        handles = [
            await start(client, settings, marker, limits=TaskLimits(loop_repeats=50, require_work=False))
            for _ in range(20)
        ]
        await asyncio.sleep(3)
        os.killpg(workers[0].pid, signal.SIGKILL)  # mid-run, no goodbye
        workers[0].wait()
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 240)
    finally:
        for w in workers:
            terminate(w)
    assert [r.status for r in results] == ["completed"] * 20
    identities = set()
    for h in handles:
        identities |= await activity_workers(client, h.id)
        await assert_clean(store, task_id_of(h), steps)
    pids = {str(w.pid) for w in workers}
    assert {i.split("@")[0] for i in identities} == pids, identities  # both workers ran activities


async def test_rolling_restart_while_tasks_run(client, store, settings, llm):
    env = settings_env(settings) | {"MORGUS_LOG_LEVEL": "warning", "MORGUS_SHUTDOWN_GRACE_S": "10"}
    workers = [start_worker_process(env), start_worker_process(env)]
    steps = 8
    marker = llm.add("scale-rolling", steady_script(steps, 0.3))
    try:
        await asyncio.sleep(2)
        handles = [
            await start(client, settings, marker, limits=TaskLimits(loop_repeats=50, require_work=False))
            for _ in range(8)
        ]
        for i in range(2):  # one by one, as a deploy would
            await asyncio.sleep(2)
            old = workers[i]
            old.send_signal(signal.SIGTERM)
            await asyncio.to_thread(old.wait, 30)
            assert old.returncode == 0
            workers[i] = start_worker_process(env)
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 240)
    finally:
        for w in workers:
            terminate(w)
    assert [r.status for r in results] == ["completed"] * 8
    for h in handles:
        await assert_clean(store, task_id_of(h), steps)


def test_compose_file_is_valid_and_pins_every_image():
    path = ROOT / "docker-compose.temporal.yml"
    spec = yaml.safe_load(path.read_text())
    services = spec["services"]
    assert {"temporal", "temporal-db", "temporal-admin", "temporal-ui", "projection-db", "worker", "api"} <= set(
        services
    )
    for name, svc in services.items():
        image = svc.get("image", "")
        if svc.get("build"):
            assert image == "morgus:local", name  # built from this repository's Dockerfile
            continue
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", image), f"{name}: image {image!r} is not pinned to a version"
        assert not image.endswith(":latest")
    admin = " ".join(services["temporal-admin"]["command"])
    assert "MorgusStatus" in admin and "MorgusPhase" in admin
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["worker"]["volumes"]
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed; the YAML checks above ran")
    res = subprocess.run(
        [compose, "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OPENAI_API_KEY": ""},
    )
    assert res.returncode == 0, res.stderr


async def test_healthz_and_worker_metrics(settings):
    env = settings_env(settings) | {"MORGUS_LOG_LEVEL": "warning"}
    api_port, metrics_port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "morgus", "api", "--port", str(api_port)], env=env)
    worker = start_worker_process(env | {"MORGUS_METRICS_ADDR": f"127.0.0.1:{metrics_port}"})
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", api_port, 30, "the API", api)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", metrics_port, 30, "the metrics endpoint", worker)
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{api_port}/healthz")
            metrics = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        terminate(api)
        terminate(worker)
    assert health.status_code == 200 and health.json() == {"status": "ok", "temporal": True, "database": True}
    assert metrics.status_code == 200 and "temporal_" in metrics.text


def test_dockerfile_installs_the_package():
    """The image copies every package and module pyproject ships, installs the package itself (no dev or test
    extra: the embedded servers and the test tools stay out of production) and runs the worker."""
    text = (ROOT / "Dockerfile").read_text()
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.split(".")[0] for p in shipped["packages"]["find"]["include"]}
    assert packages == {"morgus"}, packages  # one namespace: nothing else lands in site-packages
    for package in packages:
        assert re.search(rf"^COPY {package}/? {package}/?$", text, re.M), f"the image does not copy {package}/"
    assert "py-modules" not in shipped
    installs = re.findall(r"^RUN pip install (.*)$", text, re.M)
    assert len(installs) == 1 and installs[0].split()[-1] == ".", installs
    assert 'CMD ["python", "-m", "morgus.worker"]' in text


async def test_connection_settings_come_from_the_sdk_environment_configuration(temporal_server, tmp_path, monkeypatch):
    """A profile in the SDK's TOML file (how Temporal Cloud credentials are usually kept) is honoured."""
    from morgus.app.client import connect_temporal
    from morgus.config import Settings

    config = tmp_path / "temporal.toml"
    config.write_text(f'[profile.bench]\naddress = "{temporal_server.address}"\nnamespace = "default"\n')
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    monkeypatch.setenv("TEMPORAL_PROFILE", "bench")
    client = await connect_temporal(Settings())  # defaults: the profile names the server
    assert client.service_client.config.target_host == temporal_server.address
    assert await client.service_client.check_health()
