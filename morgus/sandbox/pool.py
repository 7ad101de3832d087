"""A warm pool of Docker sandboxes: containers started ahead of need, each over an empty slot folder; a task's
`sandbox_create` claims one by renaming its slot folder to the task's workspace (morgus/sandbox/pool_files.py).

`SandboxPool` is a SandboxBackend wrapping DockerBackend: `ensure` claims a pooled container when the task's
sandbox options are the pool's (the defaults), else, or when the pool is empty, starts a cold one as before. Every
pooled container is made by `DockerBackend.run_locked_down`, the cold recipe, so both isolate the same.

Claiming is exclusive: a pooled container leaves the ready list under a lock before anything else happens, and
the ready list belongs to one worker process (its owner id is on the container's labels). The per-task claim
record is written before the folder moves and says which container the task holds, so a retried create gets the
same container back and a crash between the steps is completed or undone. Only Docker has a pool: a bubblewrap
sandbox has no container to start (create -> first command done ~17 ms, docs/sandbox.md).

Why one module of ~350 lines: claiming, filling, reaping and the start-up clean-up all work on the ready list
under its lock and on the same labels; the file side (folders, records, moves) is pool_files.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from docker.errors import APIError, NotFound

from morgus.contracts import SandboxOptions
from morgus.sandbox.base import ExecResult, ManagedSandbox, SandboxBackend, give_to_sandbox_user, sandbox_name
from morgus.sandbox.docker_backend import DockerBackend
from morgus.sandbox.output import CappedOutput
from morgus.sandbox.pool_files import ClaimBroken, ClaimRecord, PoolFiles

if TYPE_CHECKING:
    from morgus.config import Settings

POOL_LABEL = "morgus.pool"  # value: the pool folder, so pools of other workspace roots are left alone
NAME_PREFIX = "morgus-pool-"
RETRY_AFTER_FAILURE_S = 30.0

log = structlog.get_logger()


def pooled(settings: Settings, backend: SandboxBackend) -> SandboxBackend:
    """Docker sandboxes come from a warm pool unless MORGUS_SANDBOX_POOL_SIZE is 0 (bubblewrap needs none)."""
    if settings.sandbox_pool_size > 0 and isinstance(backend, DockerBackend):
        return SandboxPool(backend, settings.workspace_root, settings.sandbox_pool_size, settings.sandbox_pool_idle_s)
    return backend


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, an identity
    that a recycled pid does not share."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()[19]


def owner_id() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{_proc_start(os.getpid())}"


def owner_alive(owner: str) -> bool:
    """Whether the worker that made a pool entry still runs. An owner on another host, or an id this code did not
    make, counts as alive: it is not ours to remove."""
    parts = owner.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != socket.gethostname():
        return True
    return _proc_start(int(parts[1])) == parts[2]


@dataclass(frozen=True)
class Slot:
    container: str
    path: Path
    dev: int
    ino: int
    created: float


class SandboxPool:
    name = "docker"

    def __init__(self, backend: DockerBackend, workspace_root: Path, size: int, idle_s: float) -> None:
        self.backend = backend
        self.files = PoolFiles(workspace_root)
        self.size = size
        self.idle_s = idle_s
        self.options = SandboxOptions()  # what a pooled container is started with: the tasks' defaults
        self.host = socket.gethostname()
        self.owner = owner_id()
        self._ready: list[Slot] = []
        self._lock = threading.Lock()
        self._last_ask = time.monotonic()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # drained for good: a container started meanwhile is removed, not pooled

    # ------------------------------------------------------------------ SandboxBackend

    def ensure(self, task_id: str, workflow_id: str, workspace: Path, options: SandboxOptions, host_queue: str) -> str:
        """The task's container: the one it already holds, else a pooled one, else a cold one."""
        self._last_ask = time.monotonic()
        try:
            self.files.prepare()
        except OSError as e:  # the pool's folder cannot be made here: sandboxes still start, cold
            log.warning("sandbox pool unusable; starting a cold sandbox", error=str(e))
            return self.backend.ensure(task_id, workflow_id, workspace, options, host_queue)
        try:
            with self.files.lock(task_id):
                rec = self.files.load(task_id)
                if rec is not None and rec.host == self.host:
                    if self.files.claimed(rec) and self.backend.alive(rec.container):
                        return rec.container  # a retried create: the same container
                    self._undo(rec)
                if self.fits(options):
                    name = self._claim(task_id, workflow_id, workspace)
                    if name is not None:
                        return name
                return self.backend.ensure(task_id, workflow_id, workspace, options, host_queue)
        finally:
            self._poke()

    def fits(self, options: SandboxOptions) -> bool:
        """A pooled container was started with the default limits; a task that asks for others gets a cold one."""
        return self.size > 0 and options.model_dump(exclude={"create_at"}) == self.options.model_dump(
            exclude={"create_at"}
        )

    def exec(self, name: str, command: str, *, timeout_s: float, env: dict[str, str], sink: CappedOutput) -> ExecResult:
        return self.backend.exec(name, command, timeout_s=timeout_s, env=env, sink=sink)

    def kill_all(self, name: str) -> None:
        self.backend.kill_all(name)

    def alive(self, name: str) -> bool:
        return self.backend.alive(name)

    def remove(self, name: str) -> bool:
        removed = self.backend.remove(name)
        for rec in self.files.records():
            if rec.container == name and rec.host == self.host:
                self.files.drop(rec.task_id)
        if not name.startswith(NAME_PREFIX) and name.startswith("morgus-"):
            self.files.drop(name.removeprefix("morgus-"))  # a cold sandbox's lock file
        return removed

    def list_managed(self) -> list[ManagedSandbox]:
        """Cold sandboxes (labelled) and claimed pooled ones (recorded): the reaper and MORGUS_MAX_SANDBOXES see both."""
        claimed = [ManagedSandbox(r.container, r.workflow_id) for r in self.files.records() if r.host == self.host]
        return self.backend.list_managed() + claimed

    # ------------------------------------------------------------------ claim

    def _claim(self, task_id: str, workflow_id: str, workspace: Path) -> str | None:
        while True:
            with self._lock:
                if not self._ready:
                    return None
                slot = self._ready.pop(0)  # from here on no other task can see this container
            running = self._running(slot.container, sandbox_name(task_id))
            if sandbox_name(task_id) in running:  # the task's cold container (an earlier worker's): keep using it
                with self._lock:
                    self._ready.insert(0, slot)
                return None
            why = self.files.tampered(slot.path, slot.dev, slot.ino)
            if why is None and slot.container not in running:
                why = "its container is not running"
            if why is not None:
                log.warning("discarding a pooled sandbox", sandbox=slot.container, reason=why)
                self._discard(slot)
                continue
            rec = ClaimRecord(
                task_id=task_id,
                workflow_id=workflow_id,
                container=slot.container,
                slot=str(slot.path),
                dev=slot.dev,
                ino=slot.ino,
                workspace=str(workspace),
                host=self.host,
                owner=self.owner,
            )
            self.files.save(rec)
            try:
                self.files.move_in(rec)
            except (ClaimBroken, OSError) as e:
                log.warning("a pooled sandbox could not be claimed", sandbox=slot.container, reason=str(e))
                self._undo(rec)
                continue
            give_to_sandbox_user(workspace)  # what the file tools wrote before, as a cold create does
            return slot.container

    def _running(self, *names: str) -> set[str]:
        """Which of these containers run, in one request (the claim's only round trip to the daemon)."""
        pattern = [f"^/{re.escape(n)}$" for n in names]
        found = self.backend.client.api.containers(filters={"name": pattern, "status": "running"})
        return {n.removeprefix("/") for c in found for n in c.get("Names") or []}

    def _undo(self, rec: ClaimRecord) -> None:
        """Put back what an incomplete claim moved, remove its container and slot folder, forget the claim."""
        self.files.move_back(rec)
        self.backend.remove(rec.container)
        self.files.remove_slot(Path(rec.slot))
        self.files.drop(rec.task_id)

    def _discard(self, slot: Slot) -> None:
        self.backend.remove(slot.container)
        self.files.remove_slot(slot.path)

    # ------------------------------------------------------------------ fill, reap, drain

    def ready(self) -> list[str]:
        with self._lock:
            return [s.container for s in self._ready]

    def add_one(self) -> Slot:
        """Start one pooled container over a new slot folder."""
        path, dev, ino = self.files.new_slot(self.owner)
        name = f"{NAME_PREFIX}{uuid.uuid4().hex[:16]}"
        labels = {
            POOL_LABEL: str(self.files.root),
            "morgus.pool.host": self.host,
            "morgus.pool.owner": self.owner,
            "morgus.pool.created": str(int(time.time())),
            "morgus.pool.slot": str(path),
            "morgus.pool.inode": f"{dev}:{ino}",
        }
        try:
            self.backend.run_locked_down(name, labels, path, self.options)
            # one command before any task's: proves the container works and takes the first exec's extra cost
            # (about 6 ms here) off the claimer's first command; nothing it does outlives it
            warmup = self.backend.exec(name, "true", timeout_s=30, env={}, sink=CappedOutput())
            if warmup.exit_code != 0:
                raise RuntimeError(f"a new pooled sandbox failed its first command (exit {warmup.exit_code})")
        except BaseException:
            with contextlib.suppress(NotFound, APIError):
                self.backend.remove(name)
            self.files.remove_slot(path)
            raise
        slot = Slot(name, path, dev, ino, time.time())
        with self._lock:
            closed = self._closed
            if not closed:
                self._ready.append(slot)
        if closed:
            self._discard(slot)
        return slot

    def fill(self) -> int:
        """Top the pool up to its size; how many were started."""
        started = 0
        while len(self.ready()) < self.size and not self._closed:
            self.add_one()
            started += 1
        return started

    def idle(self) -> bool:
        return time.monotonic() - self._last_ask > self.idle_s

    def drain(self, *, close: bool = False) -> list[str]:
        """Remove every unclaimed container (idle; or the worker stopping: `close`, no refill after)."""
        with self._lock:
            self._closed = self._closed or close
            slots, self._ready = self._ready, []
        for slot in slots:
            self._discard(slot)
        return [s.container for s in slots]

    def tick(self) -> None:
        if self.idle():
            drained = self.drain()
            if drained:
                log.info("sandbox pool idle: reaped", sandboxes=drained)
        else:
            self.fill()

    def clean_dead(self) -> list[str]:
        """At start: undo the incomplete claims and remove the unclaimed containers and slot folders of this host's
        dead workers (a crash, a SIGKILL). A claimed container whose workspace is complete is a task's sandbox:
        left to the task (its retried create gets it back) and to the reaper."""
        self.files.prepare()
        removed: list[str] = []
        records = [r for r in self.files.records() if r.host == self.host]
        by_container = {r.container: r for r in records}
        found = self.backend.labelled([f"{POOL_LABEL}={self.files.root}", f"morgus.pool.host={self.host}"])
        for c in found:
            name = c.name
            owner = c.labels.get("morgus.pool.owner", "")
            rec = by_container.get(name)
            if rec is not None:
                if owner_alive(rec.owner) or (self.files.claimed(rec) and c.running):
                    continue
                self._undo(rec)
            elif owner != self.owner and not owner_alive(owner):
                self.backend.remove(name)
                self.files.remove_slot(Path(c.labels.get("morgus.pool.slot", "")))
            else:
                continue
            removed.append(name)
        live_names = {c.name for c in found}
        for rec in records:  # claims whose container is gone: put back what they moved
            if rec.container not in live_names and not owner_alive(rec.owner):
                self.files.move_back(rec)
                self.files.drop(rec.task_id)
        held = {Path(r.slot) for r in self.files.records()}
        for owner_dir in self.files.owner_dirs():
            if owner_dir.name == self.owner or owner_alive(owner_dir.name):
                continue
            for slot in owner_dir.iterdir():
                if slot not in held:
                    self.files.remove_slot(slot)
            with contextlib.suppress(OSError):
                owner_dir.rmdir()
        if removed:
            log.info("sandbox pool: removed what dead workers left", sandboxes=removed)
        return removed

    # ------------------------------------------------------------------ the worker's background loop

    def _poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the worker is stopping
                self._loop.call_soon_threadsafe(self._wake.set)

    async def maintain(self, interval_s: float = 1.0) -> None:
        """Run by the worker: clean up after dead workers, then keep the pool full while tasks ask for sandboxes,
        and empty once they stop asking (MORGUS_SANDBOX_POOL_IDLE_S). Woken by every claim."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            await asyncio.to_thread(self.clean_dead)
        except Exception as e:  # noqa: BLE001 - housekeeping must never stop the worker
            log.warning("sandbox pool clean-up failed", error=str(e))
        while True:
            delay = interval_s
            try:
                await asyncio.to_thread(self.tick)
            except Exception as e:  # noqa: BLE001 - an image missing or dockerd busy: cold creates still work
                log.warning("sandbox pool refill failed; retrying later", error=str(e))
                delay = RETRY_AFTER_FAILURE_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
