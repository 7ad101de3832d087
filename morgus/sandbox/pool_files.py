"""The warm pool's files: slot folders (each bind-mounted at /workspace of one pooled container) and claim records,
all under `<workspaces>/.morgus-pool`, so a slot folder can become a task's workspace by one rename(2) on the same
filesystem.

A bind mount holds the folder's inode, not its path: once a slot folder is renamed to `<workspaces>/<task id>`, the
pooled container sees the task's workspace (docs/sandbox.md, "Warm pool", has the evidence). Every move here is a
rename on one filesystem, never a copy; each step can be repeated, so a claim that a crash or a retry interrupted
is completed (`move_in`) or undone (`move_back`) from its record alone.

Nothing here is reachable from a sandbox: `.morgus-pool` is 0700 and owned by the worker, and a container binds only
its own slot folder. A task id cannot name it (task ids are uuids; the record names are hashes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from morgus.sandbox.base import chown_at, sandbox_owner

POOL_DIR = ".morgus-pool"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ClaimBroken(Exception):
    """The claim cannot be completed (its slot folder is gone or was replaced); it must be undone."""


class ClaimRecord(BaseModel):
    """Which pooled container a task claimed, written before anything moves (so a crash can be undone) and kept
    while the container lives (the reaper learns its workflow from it: a container's labels cannot change)."""

    task_id: str
    workflow_id: str
    container: str
    slot: str  # the slot folder's path while it was pooled
    dev: int
    ino: int
    workspace: str
    host: str  # the Docker host (hostname) the container runs on: the workspaces may be shared storage
    owner: str  # the worker process that claimed it (pool owner id)


def _is(path: Path, dev: int, ino: int) -> bool:
    """`path` is, without following a link, the folder (dev, ino)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == (dev, ino)


def _move_entries(src: Path, dst: Path) -> None:
    """Rename every entry of `src` into `dst` (same filesystem), by folder descriptor, following no link: what the
    sandbox planted (links, FIFOs) moves as itself."""
    s = os.open(src, _DIR)
    try:
        d = os.open(dst, _DIR)
        try:
            for name in os.listdir(s):
                os.rename(name, name, src_dir_fd=s, dst_dir_fd=d)
        finally:
            os.close(d)
    finally:
        os.close(s)


class PoolFiles:
    def __init__(self, workspace_root: Path) -> None:
        self.workspace_root = workspace_root
        self.root = workspace_root / POOL_DIR
        self.slots = self.root / "slots"
        self.claims = self.root / "claims"

    def prepare(self) -> None:
        self.workspace_root.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700, follow_symlinks=False)
        self.slots.mkdir(exist_ok=True)
        self.claims.mkdir(exist_ok=True)

    # ------------------------------------------------------------------ slot folders

    def new_slot(self, owner: str) -> tuple[Path, int, int]:
        """An empty folder for one pooled container, owned by the sandbox user; its path, device and inode."""
        parent = self.slots / owner
        parent.mkdir(exist_ok=True)
        path = parent / uuid.uuid4().hex
        path.mkdir(mode=0o755)
        fd = os.open(parent, _DIR)
        try:
            chown_at(fd, path.name)
        finally:
            os.close(fd)
        st = os.lstat(path)
        return path, st.st_dev, st.st_ino

    def tampered(self, path: Path, dev: int, ino: int) -> str | None:
        """Why the slot folder may not be handed to a task (None: it is the empty folder the pool made)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "its folder is gone"
        if stat.S_ISLNK(st.st_mode):
            return "its folder was replaced by a symlink"
        if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != (dev, ino):
            return "its folder was replaced"
        if st.st_uid != (sandbox_owner() or os.geteuid()) or st.st_mode & 0o022:
            return "its folder's owner or mode changed"
        with os.scandir(path) as it:
            if next(it, None) is not None:
                return "its folder is not empty"
        return None

    def remove_slot(self, path: Path) -> None:
        """Remove a slot folder of this pool (never through a link: rmtree refuses one, which is then unlinked)."""
        if path.parent.parent != self.slots:
            return  # a label pointing elsewhere is not ours to remove
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def owner_dirs(self) -> list[Path]:
        try:
            return [p for p in self.slots.iterdir() if p.is_dir() and not p.is_symlink()]
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------------ claim records

    def _stem(self, task_id: str) -> str:
        return hashlib.sha256(task_id.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def lock(self, task_id: str) -> Iterator[None]:
        """One claim or create per task at a time on this host, across worker processes (flock)."""
        fd = os.open(self.claims / f"{self._stem(task_id)}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save(self, rec: ClaimRecord) -> None:
        path = self.claims / f"{self._stem(rec.task_id)}.json"
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(rec.model_dump_json())
        os.replace(tmp, path)

    def load(self, task_id: str) -> ClaimRecord | None:
        return self._read(self.claims / f"{self._stem(task_id)}.json")

    def _read(self, path: Path) -> ClaimRecord | None:
        try:
            return ClaimRecord.model_validate_json(path.read_bytes())
        except (FileNotFoundError, ValidationError):
            return None

    def records(self) -> list[ClaimRecord]:
        try:
            paths = sorted(self.claims.glob("*.json"))
        except FileNotFoundError:
            return []
        return [rec for rec in map(self._read, paths) if rec is not None]

    def drop(self, task_id: str) -> None:
        stem = self._stem(task_id)
        for suffix in (".json", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                (self.claims / f"{stem}{suffix}").unlink()

    # ------------------------------------------------------------------ the claim's moves

    def claimed(self, rec: ClaimRecord) -> bool:
        """The claim is complete: the task's workspace is the slot folder."""
        return _is(Path(rec.workspace), rec.dev, rec.ino)

    def move_in(self, rec: ClaimRecord) -> None:
        """Make the slot folder the task's workspace, carrying over what the workspace already holds (the file
        tools may have written before the sandbox existed). Idempotent; ClaimBroken if it cannot be done."""
        ws, slot = Path(rec.workspace), Path(rec.slot)
        for _ in range(5):
            if self.claimed(rec):
                return
            if not _is(slot, rec.dev, rec.ino):
                raise ClaimBroken("the slot folder is gone or was replaced")
            try:
                st = os.lstat(ws)
            except FileNotFoundError:
                st = None
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise ClaimBroken("the workspace is not a folder")
                _move_entries(ws, slot)
            try:
                os.rename(slot, ws)  # replaces the (now empty) workspace folder atomically
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # a file landed in the workspace meanwhile: move it too, then rename again
        if not self.claimed(rec):
            raise ClaimBroken("the workspace kept changing during the claim")

    def move_back(self, rec: ClaimRecord) -> None:
        """Undo an incomplete claim: whatever moved into the slot folder goes back to the workspace. A complete
        claim needs nothing: the workspace is that folder and stays when the container goes."""
        ws, slot = Path(rec.workspace), Path(rec.slot)
        if self.claimed(rec) or not _is(slot, rec.dev, rec.ino):
            return
        ws.mkdir(parents=True, exist_ok=True)
        _move_entries(slot, ws)
