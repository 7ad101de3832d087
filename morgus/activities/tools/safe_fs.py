"""Opening workspace paths on the host without following, or blocking on, anything the sandbox planted.

The workspace is written by model-run code, so every name in it is hostile: a symlink (to a host file, to `/`,
dangling, or swapped in between a check and a use), a hardlink, a FIFO whose open blocks, a socket, a device, a
10 GB sparse file, a name with a newline in it. Nothing here resolves a path string. Each component is opened
relative to its parent's descriptor with O_NOFOLLOW, so a link anywhere on the way fails the open itself (there is
no check-then-use window), and a file is first opened O_PATH (which neither blocks nor runs a device's open),
checked with fstat, and only then reopened for reading through that same descriptor, so the bytes read are those of
the inode that was checked.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from morgus.activities.tools.workspace import ToolError

_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# a directory we list: O_DIRECTORY fails (ENOTDIR) on anything else without opening it, so never blocks
_LIST_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
TEMP_PREFIX = ".morgus-"
MAX_DEPTH = 64  # deeper folders are not walked (listed as skipped where it matters)
COPY_CHUNK = 1 << 20


# ---------------------------------------------------------------- names and kinds


def show(name: str) -> str:
    """A name as text that cannot forge a line or a terminal escape: control characters and undecodable bytes
    are written as escapes."""
    if name.isprintable():
        return name
    out = []
    for ch in name:
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _article(k: str) -> str:
    return "an" if k[0] in "aeiou" else "a"


def split_rel(rel: str) -> list[str]:
    """The components of a workspace-relative path; absolute paths, `~`, `..` and NUL are refused."""
    if not isinstance(rel, str) or rel.strip() == "":
        raise ToolError("path must be a non-empty relative path")
    if "\x00" in rel:
        raise ToolError("path contains a NUL byte")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~"):
        raise ToolError(f"path {show(rel)!r} is absolute; use a path relative to the workspace")
    if ".." in pure.parts:
        raise ToolError(f"path {show(rel)!r} contains '..'; paths may not leave the workspace")
    return [p for p in pure.parts if p != "."]


# ---------------------------------------------------------------- descriptors


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
    return os.open(root, _PATH_DIR & ~os.O_NOFOLLOW)


def _refusal(dir_fd: int, name: str, shown: str, wanted: str) -> ToolError:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ToolError(f"{shown!r} changed while it was being opened; refused")
    k = kind(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ToolError(f"{shown!r} is a symlink; links in the workspace are never followed, refused")
    return ToolError(f"{shown!r} is {_article(k)} {k}, not {wanted}; refused")


def open_dir(root_fd: int, parts: Sequence[str], *, create: bool = False,
             on_create: Callable[[int, str], None] | None = None) -> int:
    """An O_PATH descriptor of the folder `parts` beneath `root_fd`, no component followed if it is a link.
    With `create`, missing folders are made (mkdirat) and `on_create(parent_fd, name)` is called for each."""
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            shown = show("/".join(parts[: i + 1]))
            try:
                child = os.open(name, _PATH_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise ToolError(f"folder {shown!r} does not exist; use file_list to see what is there") from None
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    if on_create is not None:
                        on_create(fd, name)
                except FileExistsError:
                    pass  # raced with the sandbox: whatever is there now is opened without following below
                try:
                    child = os.open(name, _PATH_DIR, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                        raise _refusal(fd, name, shown, "a folder") from None
                    raise
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refusal(fd, name, shown, "a folder") from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def reopen_dir(path_fd: int) -> int:
    """A listable descriptor of the very folder an O_PATH descriptor holds (the /proc magic link names the inode,
    not a path, so it is followed on purpose)."""
    return os.open(f"/proc/self/fd/{path_fd}", _LIST_DIR & ~os.O_NOFOLLOW)


def open_regular_at(dir_fd: int, name: str, shown: str, *, single_link: bool = True) -> tuple[int, os.stat_result]:
    """A read descriptor of the regular file `name` in `dir_fd`, and its stat. Links, FIFOs, sockets, devices and
    folders are refused; with `single_link`, so is a file with more than one hard link (it may be another name of
    a file outside the workspace, and what leaves the sandbox must be the sandbox's own)."""
    try:
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ToolError(f"file {shown!r} does not exist; use file_list to see what is there") from None
    with closing_fd(pfd):
        st = os.fstat(pfd)
        if stat.S_ISLNK(st.st_mode):
            raise ToolError(f"{shown!r} is a symlink; links in the workspace are never followed, refused")
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{shown!r} is a folder, not a regular file")
        if not stat.S_ISREG(st.st_mode):
            k = kind(st.st_mode)
            raise ToolError(f"{shown!r} is {_article(k)} {k}, not a regular file; refused")
        if single_link and st.st_nlink > 1:
            raise ToolError(f"{shown!r} has {st.st_nlink} hard links; a hard-linked file may be another name of a file "
                            "outside the workspace, so it is refused (copy it with cp to make a file of its own)")
        # reopen the very inode just checked (not the name, which the sandbox may have swapped meanwhile)
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    return fd, st


def open_regular(root: Path, rel: str, *, single_link: bool = True) -> tuple[int, os.stat_result]:
    parts = split_rel(rel)
    if not parts:
        raise ToolError(f"{show(rel)!r} is the workspace folder, not a file; use file_list")
    with closing_fd(open_root(root)) as rfd, closing_fd(open_dir(rfd, parts[:-1])) as dfd:
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


# ---------------------------------------------------------------- writing


def write_file(root: Path, rel: str, data: bytes, *, chown_at: Callable[[int, str], None] | None = None,
               chown_fd: Callable[[int], None] | None = None) -> None:
    """Write `data` to `rel` beneath `root`: parents made with mkdirat (a planted link to a folder outside is
    refused, not followed), content written to a temp file in the parent folder and renamed over the name in that
    same folder, so a link or FIFO planted at the name is replaced, never written through."""
    parts = split_rel(rel)
    if not parts:
        raise ToolError(f"{show(rel)!r} is the workspace folder; give a file path")
    shown = show(rel)
    with sentences(shown), closing_fd(open_root(root)) as rfd, closing_fd(open_dir(rfd, parts[:-1], create=True, on_create=chown_at)) as dfd:
        name = parts[-1]
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                raise ToolError(f"{shown!r} is a folder; give a file path")
        except FileNotFoundError:
            pass
        tmp = f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
        try:
            with closing_fd(fd):
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view[:COPY_CHUNK]):]
                if chown_fd is not None:
                    chown_fd(fd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException as e:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if isinstance(e, IsADirectoryError):
                raise ToolError(f"{shown!r} is a folder; give a file path") from None
            raise


# ---------------------------------------------------------------- walking


@dataclass
class Entry:
    rel: str  # shown (escaped) path relative to the workspace
    mode: int
    size: int
    nlink: int


def walk(root: Path, rel: str, *, max_entries: int, skip_dirs: frozenset[str] = frozenset()) -> tuple[list[Entry], bool]:
    """Every entry beneath `rel` (lstat only, links never descended), at most `max_entries`; True if cut short."""
    parts = split_rel(rel) if rel.strip() not in ("", ".") else []
    out: list[Entry] = []
    scanned = 0
    with sentences(show(rel)), closing_fd(open_root(root)) as rfd, closing_fd(open_dir(rfd, parts)) as base:
        prefix = "/".join(show(p) for p in parts)
        try:
            start = reopen_dir(base)
        except OSError as e:
            raise ToolError(f"cannot list {show(rel)!r} ({e.strerror})") from None
        # breadth first: the top of the tree is listed before the cap is reached; at most max_entries folders wait
        queue: deque[tuple[int, str, int]] = deque([(start, prefix, 0)])
        try:
            while queue:
                dfd, shown_dir, depth = queue.popleft()
                with closing_fd(dfd), os.scandir(dfd) as it:
                    for entry in it:
                        scanned += 1
                        if len(out) >= max_entries or scanned > 10 * max_entries:
                            return out, True
                        if entry.name.startswith(TEMP_PREFIX):
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue  # removed meanwhile
                        shown = f"{shown_dir}/{show(entry.name)}" if shown_dir else show(entry.name)
                        out.append(Entry(shown, st.st_mode, st.st_size, st.st_nlink))
                        if stat.S_ISDIR(st.st_mode) and entry.name not in skip_dirs and depth + 1 < MAX_DEPTH:
                            # OSError: swapped for something else meanwhile, so not descended
                            with suppress(OSError):
                                queue.append((os.open(entry.name, _LIST_DIR, dir_fd=dfd), shown, depth + 1))
        finally:
            for dfd, _, _ in queue:
                os.close(dfd)
    return out, False


# ---------------------------------------------------------------- publishing


class TooLarge(ToolError):
    pass


@dataclass
class CopyReport:
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def copy_regular_tree(src_dir: int, dst_dir: int, *, max_files: int, max_bytes: int,
                      skip_dirs: frozenset[str] = frozenset()) -> CopyReport:
    """Copy the regular files and folders under `src_dir` (an O_PATH descriptor) into `dst_dir` (a folder the host
    owns); everything else (links, FIFOs, sockets, devices, hard-linked files, folders nested deeper than
    MAX_DEPTH) is skipped and named in the report. Raises TooLarge beyond `max_files` or `max_bytes`.
    Depth first, one descriptor pair per level, so a folder with 100,000 subfolders costs no more descriptors."""
    report = CopyReport()
    budget = _Budget(max_files, max_bytes, 2 * max_files + 1000)
    with closing_fd(reopen_dir(src_dir)) as src:
        _copy_dir(src, dst_dir, "", 0, report, budget, skip_dirs)
    report.skipped.sort()
    return report


@dataclass
class _Budget:
    max_files: int
    max_bytes: int
    max_scanned: int  # names the sandbox made by the million are not even sorted
    scanned: int = 0


def _copy_dir(sfd: int, dfd: int, shown_dir: str, depth: int, report: CopyReport, budget: _Budget,
              skip_dirs: frozenset[str]) -> None:
    entries = []
    with os.scandir(sfd) as it:
        for entry in it:
            budget.scanned += 1
            if budget.scanned > budget.max_scanned:
                raise TooLarge(f"the folder has more than {budget.max_files} files; publish a smaller folder")
            entries.append(entry)
    for entry in sorted(entries, key=lambda e: e.name):
        shown = f"{shown_dir}/{show(entry.name)}" if shown_dir else show(entry.name)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if entry.name in skip_dirs:
                continue
            if depth + 1 >= MAX_DEPTH:
                report.skipped.append(f"{shown} (nested deeper than {MAX_DEPTH} folders)")
                continue
            try:
                child = os.open(entry.name, _LIST_DIR, dir_fd=sfd)
            except OSError:
                report.skipped.append(f"{shown} (changed while publishing)")
                continue
            with closing_fd(child):
                os.mkdir(entry.name, 0o755, dir_fd=dfd)
                with closing_fd(os.open(entry.name, _PATH_DIR, dir_fd=dfd)) as child_dst:
                    _copy_dir(child, child_dst, shown, depth + 1, report, budget, skip_dirs)
            continue
        if not stat.S_ISREG(st.st_mode):
            report.skipped.append(f"{shown} ({kind(st.st_mode)})")
            continue
        try:
            fd, st = open_regular_at(sfd, entry.name, shown, single_link=True)
        except ToolError as e:
            report.skipped.append(f"{shown} ({_reason(str(e), st)})")
            continue
        with closing_fd(fd):
            if report.files + 1 > budget.max_files:
                raise TooLarge(f"the folder has more than {budget.max_files} files; publish a smaller folder")
            if report.bytes + st.st_size > budget.max_bytes:
                raise TooLarge(f"the folder holds more than {budget.max_bytes // 1_000_000} MB (at {shown}, "
                               f"{st.st_size} bytes); publish a smaller folder")
            report.bytes += _copy_file(fd, dfd, entry.name, budget.max_bytes - report.bytes, shown, budget.max_bytes)
            report.files += 1


def _reason(message: str, st: os.stat_result) -> str:
    if "hard links" in message:
        return f"{st.st_nlink} hard links"
    if "symlink" in message:
        return "symlink"
    return "changed while publishing"


def _copy_file(src: int, dst_dir: int, name: str, budget: int, shown: str, max_bytes: int) -> int:
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dst_dir)
    copied = 0
    with closing_fd(out):
        while True:
            chunk = os.read(src, min(COPY_CHUNK, budget + 1 - copied))
            if not chunk:
                return copied
            copied += len(chunk)
            if copied > budget:  # the file grew while it was copied
                raise TooLarge(f"the folder holds more than {max_bytes // 1_000_000} MB (at {shown}); publish a smaller folder")
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
