"""Opening one folder or file beneath the workspace by descriptor, component by component, and reading or writing
it through the descriptor that was checked."""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from morgus.activities.tools.safe_fs.names import COPY_CHUNK, TEMP_PREFIX, Missing, show, split_file, wrong_kind
from morgus.activities.tools.workspace import ToolError

PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# a directory we list: O_DIRECTORY fails (ENOTDIR) on anything else without opening it, so never blocks
LIST_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# a file we create: never an existing name, never through a link planted at the name
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def sentences(shown: str) -> Iterator[None]:
    """An OSError here almost always means the sandbox changed the tree under us (a folder removed mid-write): say
    so to the model in one sentence instead of crashing the activity."""
    try:
        yield
    except ToolError:
        raise
    except OSError as e:
        raise ToolError(f"{shown!r}: {e.strerror or e} (the workspace changed while it was used); try again") from None


@contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_root(root: Path) -> int:
    """The workspace folder itself: the operator's path, created by the worker, not reachable by the sandbox."""
    root.mkdir(parents=True, exist_ok=True)
    return os.open(root, PATH_DIR & ~os.O_NOFOLLOW)


def _refusal(dir_fd: int, name: str, shown: str, wanted: str) -> ToolError:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ToolError(f"{shown!r} changed while it was being opened; refused")
    return wrong_kind(st.st_mode, shown, wanted)


def _child_dir(dir_fd: int, name: str, shown: str, *, missing_ok: bool) -> int | None:
    """An O_PATH descriptor of the folder `name` in `dir_fd`; None if it is missing and `missing_ok`; a refusal
    if it is a link or not a folder (or, not `missing_ok`, gone again: swapped by the sandbox)."""
    try:
        return os.open(name, PATH_DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise _refusal(dir_fd, name, shown, "a folder") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refusal(dir_fd, name, shown, "a folder") from None
        raise


def open_dir(
    root_fd: int, parts: Sequence[str], *, create: bool = False, on_create: Callable[[int, str], None] | None = None
) -> int:
    """An O_PATH descriptor of the folder `parts` beneath `root_fd`, no component followed if it is a link.
    With `create`, missing folders are made (mkdirat) and `on_create(parent_fd, name)` is called for each."""
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            shown = show("/".join(parts[: i + 1]))
            child = _child_dir(fd, name, shown, missing_ok=True)
            if child is None:
                if not create:
                    raise Missing(f"folder {shown!r} does not exist; use file_list to see what is there")
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    if on_create is not None:
                        on_create(fd, name)
                except FileExistsError:
                    pass  # raced with the sandbox: whatever is there now is opened without following below
                child = _child_dir(fd, name, shown, missing_ok=False)
            assert child is not None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_folder(
    root: Path, parts: Sequence[str], *, create: bool = False, on_create: Callable[[int, str], None] | None = None
) -> int:
    """`open_dir` beneath the workspace folder `root` (the caller closes the descriptor)."""
    with closing_fd(open_root(root)) as rfd:
        return open_dir(rfd, parts, create=create, on_create=on_create)


def reopen_dir(path_fd: int) -> int:
    """A listable descriptor of the very folder an O_PATH descriptor holds (the /proc magic link names the inode,
    not a path, so it is followed on purpose)."""
    return os.open(f"/proc/self/fd/{path_fd}", LIST_DIR & ~os.O_NOFOLLOW)


def open_regular_at(dir_fd: int, name: str, shown: str, *, single_link: bool = True) -> tuple[int, os.stat_result]:
    """A read descriptor of the regular file `name` in `dir_fd`, and its stat. Links, FIFOs, sockets, devices and
    folders are refused; with `single_link`, so is a file with more than one hard link (it may be another name of
    a file outside the workspace, and what leaves the sandbox must be the sandbox's own)."""
    try:
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Missing(f"file {shown!r} does not exist; use file_list to see what is there") from None
    with closing_fd(pfd):
        st = os.fstat(pfd)
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{shown!r} is a folder, not a regular file")
        if not stat.S_ISREG(st.st_mode):
            raise wrong_kind(st.st_mode, shown, "a regular file")
        if single_link and st.st_nlink > 1:
            raise ToolError(
                f"{shown!r} has {st.st_nlink} hard links; a hard-linked file may be another name of a file "
                "outside the workspace, so it is refused (copy it with cp to make a file of its own)"
            )
        # reopen the very inode just checked (not the name, which the sandbox may have swapped meanwhile)
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    return fd, st


def open_regular(root: Path, rel: str, *, single_link: bool = True) -> tuple[int, os.stat_result]:
    parts = split_file(rel, ", not a file; use file_list")
    with closing_fd(open_folder(root, parts[:-1])) as dfd:
        return open_regular_at(dfd, parts[-1], show(rel), single_link=single_link)


def read_capped(fd: int, limit: int) -> bytes:
    """At most `limit` + 1 bytes (the extra byte tells the caller there was more)."""
    chunks, got = [], 0
    while got <= limit:
        chunk = os.read(fd, min(COPY_CHUNK, limit + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_file(root: Path, rel: str, limit: int) -> bytes:
    with sentences(show(rel)):
        fd, _ = open_regular(root, rel)
        with closing_fd(fd):
            return read_capped(fd, limit)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:COPY_CHUNK]) :]


def write_file(
    root: Path,
    rel: str,
    data: bytes,
    *,
    chown_at: Callable[[int, str], None] | None = None,
    chown_fd: Callable[[int], None] | None = None,
) -> None:
    """Write `data` to `rel` beneath `root`: parents made with mkdirat (a planted link to a folder outside is
    refused, not followed), content written to a temp file in the parent folder and renamed over the name in that
    same folder, so a link or FIFO planted at the name is replaced, never written through."""
    parts = split_file(rel, "; give a file path")
    shown = show(rel)
    with sentences(shown), closing_fd(open_folder(root, parts[:-1], create=True, on_create=chown_at)) as dfd:
        name = parts[-1]
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                raise ToolError(f"{shown!r} is a folder; give a file path")
        except FileNotFoundError:
            pass
        tmp = f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}"
        fd = os.open(tmp, NEW_FILE, 0o644, dir_fd=dfd)
        try:
            with closing_fd(fd):
                write_all(fd, data)
                if chown_fd is not None:
                    chown_fd(fd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException as e:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if isinstance(e, IsADirectoryError):
                raise ToolError(f"{shown!r} is a folder; give a file path") from None
            raise
