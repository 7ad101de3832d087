"""What every sandbox backend shares, and how one is chosen (MORGUS_SANDBOX=auto|docker|bwrap)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from morgus.contracts import SandboxOptions
from sandbox.output import CappedOutput


class SandboxUnavailable(Exception):
    """The sandbox cannot be used here; the message says what to install or start."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    timed_out: bool
    duration_s: float


@dataclass(frozen=True)
class ManagedSandbox:
    name: str
    workflow_id: str


def give_to_sandbox_user(path: Path) -> None:
    """When the worker runs as root, hand `path` and everything under it to the sandbox user, so commands in
    the sandbox can change what the worker wrote."""
    if path.exists():
        for p in [path, *path.rglob("*")]:
            chown_to_sandbox_user(p)


def chown_to_sandbox_user(path: Path) -> None:
    """The one place that decides whether (worker is root) and to whom (the image's user) files are handed."""
    if os.geteuid() != 0:
        return
    from sandbox.image import SANDBOX_UID

    os.lchown(path, SANDBOX_UID, SANDBOX_UID)


def sandbox_name(task_id: str) -> str:
    return f"morgus-{task_id}"


class SandboxBackend(Protocol):
    name: str

    def ensure(self, task_id: str, workflow_id: str, workspace: Path, options: SandboxOptions, host_queue: str) -> str: ...

    def exec(self, name: str, command: str, *, timeout_s: float, env: dict[str, str], sink: CappedOutput) -> ExecResult: ...

    def kill_all(self, name: str) -> None: ...

    def alive(self, name: str) -> bool: ...

    def remove(self, name: str) -> bool: ...

    def list_managed(self) -> list[ManagedSandbox]: ...


def select_backend(choice: str | None = None, workspace_root: Path | None = None) -> SandboxBackend:
    choice = (choice or os.environ.get("MORGUS_SANDBOX", "auto")).lower()
    if choice not in ("auto", "docker", "bwrap"):
        raise SandboxUnavailable(f"MORGUS_SANDBOX must be auto, docker or bwrap, not {choice!r}")
    if choice in ("auto", "docker"):
        from sandbox.docker_backend import DockerBackend

        try:
            return DockerBackend()
        except SandboxUnavailable:
            if choice == "docker":
                raise
    if shutil.which("bwrap"):
        from sandbox.bwrap_backend import BwrapBackend

        return BwrapBackend(workspace_root)
    raise SandboxUnavailable(
        "no sandbox available: start a Docker daemon (apt-get install docker.io) or install bubblewrap "
        "(apt-get install bubblewrap), then restart the worker"
    )
