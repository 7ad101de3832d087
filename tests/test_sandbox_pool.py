"""The warm Docker sandbox pool (morgus/sandbox/pool.py), with real containers: claim, refill, idle reap, a retried
and an interrupted claim, two claims at once, a tampered slot folder, and a worker SIGKILLed with a full pool.
The isolation of a claimed sandbox is checked by tests/test_sandbox.py and tests/test_traps.py (`docker-pool`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from morgus.contracts import SandboxOptions, TaskResult
from morgus.sandbox.output import CappedOutput
from morgus.sandbox.pool import POOL_LABEL, SandboxPool
from morgus.sandbox.pool_files import ClaimRecord
from tests.conftest import settings_env, start, task_id_of, wait_for
from tests.helpers.backends import docker_or_skip


@pytest.fixture
def root():
    # pytest's tmp_path sits under a 0700 directory; a workspace root under /tmp is what a host has
    d = Path(tempfile.mkdtemp(prefix="morgus-pool-"))
    d.chmod(0o755)
    yield d / "workspaces"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pool(root):
    p = SandboxPool(docker_or_skip(), root, size=2, idle_s=3600)
    p.files.prepare()
    yield p
    p.drain(close=True)
    for rec in p.files.records():
        p.remove(rec.container)


def pool_containers(backend, root: Path) -> dict[str, str]:
    """name -> owner of every container of this pool folder, claimed or not, running or not."""
    found = backend.labelled([f"{POOL_LABEL}={root / '.morgus-pool'}"])
    return {c.name: c.labels["morgus.pool.owner"] for c in found}


def sh(pool, name: str, command: str) -> str:
    sink = CappedOutput()
    result = pool.exec(name, command, timeout_s=20, env={}, sink=sink)
    assert result.exit_code == 0, sink.stderr()
    return sink.stdout()


def claim(pool, root: Path, task_id: str, options: SandboxOptions | None = None) -> str:
    return pool.ensure(task_id, f"task-{task_id}", root / task_id, options or SandboxOptions(), "q")


def test_claim_refill_retry_and_release(pool, root):
    pool.fill()
    warm = pool.ready()
    assert len(warm) == 2
    ws = root / "t1"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "before.txt").write_text("written before the sandbox\n")
    name = claim(pool, root, "t1")
    assert name == warm[0] and pool.ready() == warm[1:]
    # the container's /workspace is now the task's workspace, with what was there before, both ways
    assert sh(pool, name, "cat notes/before.txt; id -u; echo inside > made.txt") == "written before the sandbox\n1000\n"
    assert (ws / "made.txt").read_text() == "inside\n" and (ws / "notes" / "before.txt").stat().st_uid == 1000
    # a retried create gets the same container back; the reaper and MORGUS_MAX_SANDBOXES see it with its workflow
    assert claim(pool, root, "t1") == name
    assert ("task-t1", name) in [(m.workflow_id, m.name) for m in pool.list_managed()]
    pool.fill()
    assert len(pool.ready()) == 2 and name not in pool.ready()
    # other limits than the pool's: a cold container, the pool untouched
    cold = claim(pool, root, "t2", SandboxOptions(memory_mb=512))
    assert cold == "morgus-t2" and len(pool.ready()) == 2
    # a task whose cold container runs (an earlier worker's) keeps it: its workspace is bound there
    assert claim(pool, root, "t2") == cold and len(pool.ready()) == 2
    assert pool.remove(name) and pool.remove(cold)
    assert os.listdir(pool.files.claims) == [] and set(pool_containers(pool.backend, root)) == set(pool.ready())


def test_two_claims_at_once_get_different_containers_then_the_pool_runs_dry(pool, root):
    pool.fill()
    with ThreadPoolExecutor(3) as ex:
        names = list(ex.map(lambda t: claim(pool, root, t), ["a", "b", "c"]))
    assert len(set(names)) == 3 and pool.ready() == []
    assert sorted(n.startswith("morgus-pool-") for n in names) == [False, True, True]  # the third: cold
    for task, name in zip(["a", "b", "c"], names, strict=True):
        sh(pool, name, f"echo {task} > mine.txt")
    for task in ("a", "b", "c"):
        assert os.listdir(root / task) == ["mine.txt"] and (root / task / "mine.txt").read_text() == f"{task}\n"
    for name in names:
        pool.remove(name)


def test_an_interrupted_claim_is_undone_and_nothing_of_the_workspace_is_lost(pool, root):
    """The worker died after writing the claim record and moving one entry into the slot folder."""
    pool.fill()
    slot = pool._ready.pop(0)
    ws = root / "t3"
    ws.mkdir()
    (ws / "a.txt").write_text("a")
    (ws / "b.txt").write_text("b")
    rec = ClaimRecord(
        task_id="t3",
        workflow_id="task-t3",
        container=slot.container,
        slot=str(slot.path),
        dev=slot.dev,
        ino=slot.ino,
        workspace=str(ws),
        host=pool.host,
        owner=pool.owner,
    )
    pool.files.save(rec)
    os.rename(ws / "a.txt", slot.path / "a.txt")
    name = claim(pool, root, "t3")  # the retried create
    assert name != slot.container and not pool.alive(slot.container) and not slot.path.exists()
    assert sh(pool, name, "cat a.txt b.txt") == "ab"
    assert pool.files.load("t3").container == name


def test_a_tampered_slot_folder_is_discarded_not_claimed(pool, root):
    pool.fill()
    first, second = list(pool._ready)
    host_dir = Path(tempfile.mkdtemp(prefix="morgus-host-"))
    (host_dir / "secret.txt").write_text("host only")
    os.rename(first.path, first.path.with_name("moved-away"))
    os.symlink(host_dir, first.path)  # the slot's name now leads to a host folder
    (second.path / "planted.txt").write_text("x")
    try:
        name = claim(pool, root, "t4")
        assert name == "morgus-t4"  # both refused: a cold sandbox
        assert not pool.alive(first.container) and not pool.alive(second.container)
        assert sh(pool, name, "ls -A /workspace") == "" and not (root / "t4").is_symlink()
        assert os.listdir(host_dir) == ["secret.txt"]
        pool.remove(name)
    finally:
        shutil.rmtree(host_dir)


def test_an_idle_pool_is_reaped_and_refilled_at_the_next_ask(pool, root):
    pool.fill()
    assert len(pool_containers(pool.backend, root)) == 2
    pool.idle_s = 0.0  # nobody asked for a sandbox for longer than that
    pool.tick()
    assert pool.ready() == [] and pool_containers(pool.backend, root) == {}
    pool.idle_s = 3600
    name = claim(pool, root, "t5")  # the ask that ends the idle time gets a cold sandbox
    assert name == "morgus-t5"
    pool.tick()
    assert len(pool.ready()) == 2
    pool.remove(name)


async def test_a_sigkilled_worker_with_a_full_pool_leaks_nothing(client, store, settings, llm):
    """A worker dies with a full pool; the next one removes what it left, refills, serves a task from the pool,
    and takes its pool with it when it stops. Containers are counted by label before and after."""
    from morgus.app.stack import start_worker_process, terminate

    backend = docker_or_skip()
    root = Path(tempfile.mkdtemp(prefix="morgus-pool-"))
    root.chmod(0o755)
    settings = settings.model_copy(update={"workspaces": root / "workspaces", "sandbox_pool_size": 2})
    env = settings_env(settings)
    first = start_worker_process(env)
    second = None
    try:

        async def pool_of(n: int, not_owned_by: str | None = None) -> dict[str, str]:
            async def full() -> bool:
                found = pool_containers(backend, settings.workspace_root)
                return len(found) == n and not_owned_by not in found.values()

            await wait_for(full, timeout=60, what=f"a pool of {n}")
            return pool_containers(backend, settings.workspace_root)

        old = await pool_of(2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert pool_containers(backend, settings.workspace_root) == old  # the dead worker's pool outlives it
        second = start_worker_process(env)
        new = await pool_of(2, not_owned_by=next(iter(old.values())))
        assert not set(new) & set(old)
        ids = {backend.client.containers.get(n).id[:12] for n in new}
        marker = llm.add(
            "pool-restart",
            [
                {"content": "research done"},
                {"content": "plan done"},
                {"content": None, "tool_calls": [{"name": "shell_exec", "arguments": {"command": "hostname"}}]},
                {"content": "build done"},
            ],
        )
        handle = await start(client, settings, marker)
        result: TaskResult = await asyncio.wait_for(handle.result(), 120)
        assert result.status == "completed"
        tool = [m["content"] for m in llm.requests_for("pool-restart")[-1].body["messages"] if m["role"] == "tool"]
        assert any(i in tool[0] for i in ids), tool[0]  # the command ran in one of the warm containers
        task_ws = settings.workspace_for(task_id_of(handle))
        assert not [r for r in os.listdir(settings.workspace_root / ".morgus-pool" / "claims") if r.endswith(".json")]
        refilled = await pool_of(2)
        assert not set(refilled) & set(old) and len(set(refilled) - set(new)) == 1  # the claimed one was removed
        assert task_ws.is_dir()
        terminate(second)  # SIGTERM: a clean stop removes the pool
        second = None
        await pool_of(0)
    finally:
        terminate(first)
        if second is not None:
            terminate(second)
        for name in pool_containers(backend, settings.workspace_root):
            backend.remove(name)
        shutil.rmtree(root, ignore_errors=True)
