"""Per-task Docker containers (docker SDK): locked down, labelled, reused by name, removed when done.

Isolation comes from the container: no network (by default), read-only root with tmpfs /tmp and home, only
/workspace writable (the task's workspace, bind-mounted), all capabilities dropped, no-new-privileges, a
non-root user, and CPU / memory / pids limits.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from morgus.contracts import SandboxOptions
from morgus.sandbox.base import ExecResult, ManagedSandbox, SandboxUnavailable, give_to_sandbox_user, sandbox_name
from morgus.sandbox.image import SANDBOX_UID, configured_image
from morgus.sandbox.output import CappedOutput

LABEL = "morgus.managed"
PING_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 120


def _timed_out(e: BaseException) -> bool:
    """requests' Timeout, or the docker SDK's DockerException that wraps one in its message (version lookup)."""
    import requests

    chain: BaseException | None = e
    while chain is not None:
        if isinstance(chain, (requests.exceptions.Timeout, TimeoutError)):
            return True
        chain = chain.__cause__ or chain.__context__
    return "timed out" in str(e).lower()


@dataclass(frozen=True)
class ListedContainer:
    name: str
    labels: dict[str, str]
    running: bool


class DockerBackend:
    name = "docker"

    def __init__(
        self, image: str | None = None, *, base_url: str | None = None, ping_timeout_s: float = PING_TIMEOUT_S
    ) -> None:
        """`image`: settings.sandbox_image, else the offline-built tag. `base_url`: the daemon's address, else
        DOCKER_HOST as the docker SDK reads it. The worker starts here: a daemon that accepts the connection but
        never answers (hung dockerd) costs `ping_timeout_s`, not the 120 s later calls get."""
        try:
            if base_url:
                # the stubs say int; the SDK hands it to requests, which takes seconds as a float
                self.client = docker.DockerClient(base_url=base_url, timeout=ping_timeout_s)  # type: ignore[arg-type]
            else:
                self.client = docker.from_env(timeout=ping_timeout_s)  # type: ignore[arg-type]  # asks the daemon its API version
            self.client.ping()
        except Exception as e:  # noqa: BLE001 - any failure here means "no usable daemon"
            if _timed_out(e):
                raise SandboxUnavailable(
                    f"the Docker daemon did not answer within {ping_timeout_s:g} s; check dockerd "
                    "(`docker info`) or set MORGUS_SANDBOX=bwrap"
                ) from None
            raise SandboxUnavailable(
                f"the Docker daemon does not answer ({type(e).__name__}); start dockerd or set MORGUS_SANDBOX=bwrap"
            ) from None
        self.client.api.timeout = CALL_TIMEOUT_S  # image pulls, container starts: slower than a ping
        self.image = configured_image(image)

    # ------------------------------------------------------------------ lifecycle

    def ensure(self, task_id: str, workflow_id: str, workspace: Path, options: SandboxOptions, host_queue: str) -> str:
        """Start the task's container, or reuse it if it is already running on this Docker host."""
        name = sandbox_name(task_id)
        try:
            existing = self.client.containers.get(name)
            if existing.status == "running":
                return name
            existing.remove(force=True)
        except NotFound:
            pass
        try:
            self.client.images.get(self.image)
        except NotFound:
            raise SandboxUnavailable(
                f"sandbox image {self.image} is missing; build it with `morgus sandbox build`"
            ) from None
        workspace.mkdir(parents=True, exist_ok=True)
        give_to_sandbox_user(workspace)  # what the file tools wrote before the container existed
        labels = {
            LABEL: "1",
            "morgus.task_id": task_id,
            "morgus.workflow_id": workflow_id,
            "morgus.host_queue": host_queue,
        }
        try:
            self.run_locked_down(name, labels, workspace.resolve(), options)
        except APIError as e:
            if e.status_code == 409:  # a concurrent attempt created it first
                return name
            raise
        return name

    def run_locked_down(self, name: str, labels: dict[str, str], workspace: Path, options: SandboxOptions) -> str:
        """Start a container with every limit of docs/sandbox.md, `workspace` bind-mounted at /workspace; its id.
        The one recipe for a cold sandbox and a pooled one (morgus/sandbox/pool.py), so both isolate the same."""
        network = "none" if options.network == "none" else "bridge"
        container = self.client.containers.run(
            self.image,
            ["sleep", "infinity"],
            name=name,
            detach=True,
            init=True,  # PID 1 reaps zombies and survives `kill -9 -1`
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            working_dir="/workspace",
            labels=labels,
            network_mode=network,
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={options.tmp_mb}m,mode=1777",
                "/home/morgus": f"rw,nosuid,nodev,size={options.tmp_mb}m,uid={SANDBOX_UID},gid={SANDBOX_UID}",
            },
            volumes={str(workspace): {"bind": "/workspace", "mode": "rw"}},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=f"{options.memory_mb}m",
            memswap_limit=f"{options.memory_mb}m",
            nano_cpus=int(options.cpus * 1e9),
            pids_limit=options.pids,
            environment={"HOME": "/home/morgus"},
        )
        return str(container.id)

    def alive(self, name: str) -> bool:
        try:
            return self.client.containers.get(name).status == "running"
        except NotFound:
            return False

    def remove(self, name: str) -> bool:
        try:
            self.client.containers.get(name).remove(force=True)
            return True
        except NotFound:
            return False

    def labelled(self, labels: list[str]) -> list[ListedContainer]:
        """The containers carrying every label in `labels`, from ONE list request: the SDK's containers.list
        inspects each container after listing, and one removed in between (the pool's refill and reaper remove
        containers all the time) made the whole listing fail with 404."""
        return [
            ListedContainer(
                name=((d.get("Names") or [""])[0] or "").lstrip("/") or d.get("Id", ""),
                labels=d.get("Labels") or {},
                running=d.get("State") == "running",
            )
            for d in self.client.api.containers(all=True, filters={"label": labels})
        ]

    def list_managed(self) -> list[ManagedSandbox]:
        return [ManagedSandbox(c.name, c.labels.get("morgus.workflow_id", "")) for c in self.labelled([LABEL])]

    # ------------------------------------------------------------------ commands

    def exec(self, name: str, command: str, *, timeout_s: float, env: dict[str, str], sink: CappedOutput) -> ExecResult:
        """`bash -lc <command>` as one argv element (never re-split); `timeout` kills the whole process group."""
        api = self.client.api
        argv = ["timeout", "-s", "KILL", f"{timeout_s:g}", "bash", "-lc", command]
        try:
            # by name: the daemon looks it up itself (one round trip fewer than inspecting it first)
            exec_id = api.exec_create(
                name,
                argv,
                stdout=True,
                stderr=True,
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                workdir="/workspace",
                environment=env or None,
            )["Id"]
        except NotFound:
            raise SandboxUnavailable(f"sandbox {name} is gone") from None
        started = time.monotonic()
        for out, err in api.exec_start(exec_id, stream=True, demux=True):
            if out:
                sink.feed("stdout", out)
            if err:
                sink.feed("stderr", err)
        elapsed = time.monotonic() - started
        code = api.exec_inspect(exec_id).get("ExitCode")
        code = -1 if code is None else int(code)
        timed_out = code == 137 and elapsed >= timeout_s - 0.5
        if timed_out:
            self.kill_all(name)  # anything that escaped the process group (setsid, nohup) goes too
        return ExecResult(exit_code=code, timed_out=timed_out, duration_s=elapsed)

    def kill_all(self, name: str) -> None:
        """Kill every process in the sandbox except docker's init and the keeper (`sleep infinity`, its first
        child), leaving the container up for the next command."""
        with contextlib.suppress(NotFound, APIError):
            self.client.containers.get(name).exec_run(["bash", "-c", _KILL_ALL], user=f"{SANDBOX_UID}:{SANDBOX_UID}")


_KILL_ALL = r"""
keeper=$(ps -eo pid=,ppid=,args= --sort=pid | awk '$2==1 && $3=="sleep" && $4=="infinity" {print $1; exit}')
for pid in $(ps -eo pid=); do
  [ "$pid" -gt 1 ] && [ "$pid" != "$keeper" ] && [ "$pid" != "$$" ] && kill -9 "$pid" 2>/dev/null
done
true
"""
