"""What every sandbox backend shares, and how one is chosen (MORGUS_SANDBOX=auto|docker|bwrap)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from morgus.contracts import SandboxOptions
from morgus.sandbox.output import CappedOutput

if TYPE_CHECKING:
    from morgus.config import Settings


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


def sandbox_owner() -> int | None:
    """The one place that decides whether (the worker is root) and to whom (the image's user) files are handed."""
    if os.geteuid() != 0:
        return None
    from morgus.sandbox.image import SANDBOX_UID

    return SANDBOX_UID


def chown_at(dir_fd: int, name: str) -> None:
    """Hand `name` in the folder `dir_fd` to the sandbox user without following it if it is a link."""
    uid = sandbox_owner()
    if uid is not None:
        os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)


def chown_fd(fd: int) -> None:
    uid = sandbox_owner()
    if uid is not None:
        os.fchown(fd, uid, uid)


_WALK_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_DEPTH = 64


def give_to_sandbox_user(path: Path) -> None:
    """When the worker runs as root, hand what the worker wrote (root-owned entries) at and under `path` to the
    sandbox user, so commands in the sandbox can change it. The sandbox may have planted links and swapped folders
    for links: the walk holds each folder by descriptor, opens children O_NOFOLLOW and chowns by (folder fd, name)
    without following, so it never reaches, let alone chowns, anything outside `path`."""
    uid = sandbox_owner()
    if uid is None:
        return
    me = os.geteuid()
    try:
        parent = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the operator's folder
    except FileNotFoundError:
        return
    try:
        try:
            st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if st.st_uid == me and (stat.S_ISDIR(st.st_mode) or st.st_nlink == 1):
            os.chown(path.name, uid, uid, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            return
        try:
            top = os.open(path.name, _WALK_DIR, dir_fd=parent)
        except OSError:
            return  # swapped for a link or a file meanwhile: nothing to walk
    finally:
        os.close(parent)
    with _closing(top):
        _give_dir(top, 0, uid, me)


def _give_dir(fd: int, depth: int, uid: int, me: int) -> None:
    """Depth first, one descriptor per level (a folder of 100,000 subfolders costs no more descriptors)."""
    with os.scandir(fd) as it:
        entries = list(it)
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            # a hard-linked file may be another name of a file outside: never handed over
            if st.st_uid == me and (is_dir or st.st_nlink == 1):
                os.chown(entry.name, uid, uid, dir_fd=fd, follow_symlinks=False)
            if is_dir and depth + 1 < _MAX_DEPTH:
                child = os.open(entry.name, _WALK_DIR, dir_fd=fd)
            else:
                continue
        except OSError:
            continue  # removed or swapped meanwhile
        with _closing(child):
            _give_dir(child, depth + 1, uid, me)


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def sandbox_name(task_id: str) -> str:
    return f"morgus-{task_id}"


class SandboxBackend(Protocol):
    name: str

    def ensure(
        self, task_id: str, workflow_id: str, workspace: Path, options: SandboxOptions, host_queue: str
    ) -> str: ...

    def exec(
        self, name: str, command: str, *, timeout_s: float, env: dict[str, str], sink: CappedOutput
    ) -> ExecResult: ...

    def kill_all(self, name: str) -> None: ...

    def alive(self, name: str) -> bool: ...

    def remove(self, name: str) -> bool: ...

    def list_managed(self) -> list[ManagedSandbox]: ...


def select_backend(settings: Settings, workspace_root: Path | None = None) -> SandboxBackend:
    """The backend MORGUS_SANDBOX (settings.sandbox, validated) asks for; `auto` tries Docker, then bubblewrap."""
    choice = settings.sandbox
    if choice in ("auto", "docker"):
        from morgus.sandbox.docker_backend import DockerBackend

        try:
            return DockerBackend(settings.sandbox_image)
        except SandboxUnavailable:
            if choice == "docker":
                raise
    if shutil.which("bwrap"):
        from morgus.sandbox.bwrap_backend import BwrapBackend

        return BwrapBackend(workspace_root)
    raise SandboxUnavailable(
        "no sandbox available: start a Docker daemon (apt-get install docker.io) or install bubblewrap "
        "(apt-get install bubblewrap), then restart the worker"
    )
