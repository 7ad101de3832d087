"""Reading a task's workspace for the API, read-only: one folder's listing, one file's text or bytes, the whole
tree as a .tar.gz stream.

The workspace is written by sandboxed, untrusted code, so everything here goes through safe_fs
(morgus/activities/tools/safe_fs): every component is opened beneath the workspace's descriptor with O_NOFOLLOW, a
file is opened O_PATH and fstat'ed before it is read (a FIFO is never opened, so it cannot block the server; a
device never runs its open), links are reported as links and never followed, and hard-linked files are refused
(another name of a file outside the workspace). Every function here blocks: the routes call them in a thread.

The workspace folder itself is never created here (safe_fs.open_root would): a task without one is a 404.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from morgus.activities.tools import safe_fs
from morgus.activities.tools.safe_fs.descriptors import LIST_DIR, PATH_DIR
from morgus.activities.tools.workspace import ToolError

MAX_LIST_ENTRIES = 1000  # entries of one folder returned (sorted), the rest reported as truncated
MAX_LIST_SCAN = 20_000  # names read from one folder before giving up on sorting them all
MAX_TEXT_BYTES = 1 << 20  # the text view of one file
MAX_DOWNLOAD_BYTES = 1 << 30  # one file's download
MAX_ARCHIVE_BYTES = 1 << 30  # the file content of the whole archive
MAX_ARCHIVE_ENTRIES = 100_000
SNIFF_BYTES = 8192  # a NUL in the first bytes marks a file binary

# .git is left out of the archive: the sandbox wrote it, and a crafted .git/config (core.fsmonitor,
# core.hooksPath) or hook runs commands on the operator's machine the moment they run `git status` in the extracted
# folder. The task's real repository is the host's, outside the workspace (settings.git_root/<id>.git, see
# morgus/activities/tools/git_safe.py), so a .git in the workspace is only ever what the sandbox planted there.
ARCHIVE_SKIP = frozenset({".git"})
# ...and every other name a file system takes for `.git` when the archive is extracted there (git refuses the same
# names in a checkout, CVE-2014-9390): macOS and Windows compare names case-insensitively (.GIT), HFS+ ignores these
# invisible characters (.g\u200cit), Windows drops trailing dots and spaces (.git.), answers to the 8.3 short name
# (git~1) and reads `.git::$INDEX_ALLOCATION` as the folder itself.
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def is_git_name(name: str) -> bool:
    """`name` is `.git` on some file system the archive may be extracted on."""
    bare = _HFS_IGNORED.sub("", name).split(":", 1)[0].rstrip(". ").casefold()
    return bare in (".git", "git~1")


class NoWorkspace(ToolError):
    """The task has no workspace folder on this host (not started yet, or the API runs on another machine)."""


class Refused(ToolError):
    pass


@dataclass
class FileEntry:
    name: str  # the real name, or its escaped form when it is not valid UTF-8 (then `escaped`)
    kind: str  # file | dir | link | other
    size: int | None
    mtime: datetime
    escaped: bool


@dataclass
class FileText:
    path: str
    size: int
    mtime: datetime
    binary: bool
    truncated: bool
    text: str | None


def _open_workspace(root: Path) -> int:
    try:
        return os.open(root, PATH_DIR & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        raise NoWorkspace("the task has no workspace on this host (yet)") from None


def _parts(rel: str) -> list[str]:
    # exactly '' or '.': a folder the sandbox named ' ' is not the top (split_rel refuses it: it cannot be named)
    return [] if rel in ("", ".") else safe_fs.split_rel(rel)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"  # FIFO, socket, device: listed, never opened


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


def _json_name(name: str) -> tuple[str, bool]:
    """A name JSON can carry: one that is not valid UTF-8 (surrogate-escaped bytes) is shown escaped instead."""
    try:
        name.encode("utf-8")
        return name, False
    except UnicodeEncodeError:
        return safe_fs.show(name), True


def list_folder(root: Path, rel: str) -> tuple[list[FileEntry], bool]:
    """One folder's entries (lstat only), folders first then by name, at most MAX_LIST_ENTRIES; True if cut."""
    parts = _parts(rel)
    shown = safe_fs.show(rel)
    with (
        safe_fs.sentences(shown),
        safe_fs.closing_fd(_open_workspace(root)) as rfd,
        safe_fs.closing_fd(safe_fs.open_dir(rfd, parts)) as pfd,
        safe_fs.closing_fd(safe_fs.reopen_dir(pfd)) as dfd,
    ):
        names: list[str] = []
        truncated = False
        with os.scandir(dfd) as it:
            for entry in it:
                if len(names) >= MAX_LIST_SCAN:
                    truncated = True
                    break
                if not entry.name.startswith(safe_fs.TEMP_PREFIX):  # a tool's write in flight
                    names.append(entry.name)
        out: list[FileEntry] = []
        for name in names:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue  # removed meanwhile
            kind = _kind(st.st_mode)
            shown_name, escaped = _json_name(name)
            out.append(FileEntry(shown_name, kind, st.st_size if kind == "file" else None, _mtime(st), escaped))
    out.sort(key=lambda e: (e.kind != "dir", e.name))
    if len(out) > MAX_LIST_ENTRIES:
        return out[:MAX_LIST_ENTRIES], True
    return out, truncated


def open_file(root: Path, rel: str) -> tuple[int, os.stat_result]:
    """A read descriptor of the regular file `rel` and its stat (the caller closes it). Links, folders, FIFOs,
    sockets, devices and hard-linked files are refused."""
    parts = safe_fs.split_rel(rel)
    shown = safe_fs.show(rel)
    if not parts:
        raise Refused("the path names the workspace folder, not a file")
    with (
        safe_fs.sentences(shown),
        safe_fs.closing_fd(_open_workspace(root)) as rfd,
        safe_fs.closing_fd(safe_fs.open_dir(rfd, parts[:-1])) as dfd,
    ):
        return safe_fs.open_regular_at(dfd, parts[-1], shown, single_link=True)


def _is_text(data: bytes, truncated: bool) -> str | None:
    if b"\x00" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        # the cap may have cut a multi-byte character in two: only an error in the last 3 bytes is forgiven
        if truncated and e.start >= len(data) - 3:
            return data[: e.start].decode("utf-8", errors="strict")
        return None


def read_text(root: Path, rel: str) -> FileText:
    fd, st = open_file(root, rel)
    with safe_fs.closing_fd(fd), safe_fs.sentences(safe_fs.show(rel)):
        data = safe_fs.read_capped(fd, MAX_TEXT_BYTES)
    truncated = len(data) > MAX_TEXT_BYTES
    data = data[:MAX_TEXT_BYTES]
    text = _is_text(data, truncated)
    return FileText(rel, st.st_size, _mtime(st), text is None, truncated, text)


def file_chunks(fd: int, limit: int) -> Iterator[bytes]:
    """The file's bytes, at most `limit` (its size when it was opened: a file that grows meanwhile is cut there);
    closes the descriptor when done or when the generator is closed (the client went away)."""
    try:
        left = limit
        while left > 0:
            chunk = os.read(fd, min(safe_fs.COPY_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the archive


@dataclass
class _Budget:
    entries: int = 0
    bytes: int = 0


def check_archive(root: Path) -> None:
    """Refuse (TooLarge) a workspace over the archive's caps before a byte is sent: once streaming, a 200 and half
    an archive are all a client could get."""
    with safe_fs.closing_fd(_open_workspace(root)):
        pass
    entries, cut = safe_fs.walk(root, ".", max_entries=MAX_ARCHIVE_ENTRIES, skip_dirs=ARCHIVE_SKIP)
    if cut:
        raise safe_fs.TooLarge(f"the workspace has more than {MAX_ARCHIVE_ENTRIES} entries; download single files")
    total = sum(e.size for e in entries if stat.S_ISREG(e.mode) and e.nlink == 1)
    if total > MAX_ARCHIVE_BYTES:
        raise safe_fs.TooLarge(
            f"the workspace holds {total} bytes, more than the archive's {MAX_ARCHIVE_BYTES}; download single files"
        )


def archive_chunks(root: Path, top: str) -> Iterator[bytes]:
    """The workspace as a gzip'd POSIX (pax) tar, member names under `top`/: folders and regular files only.
    Links, FIFOs, sockets, devices, hard-linked files, .git, and whatever is past the caps are left out; nothing is
    followed. Written by hand (headers from tarfile, content in chunks) so memory stays one chunk whatever the size."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    with safe_fs.closing_fd(_open_workspace(root)) as rfd, safe_fs.closing_fd(safe_fs.reopen_dir(rfd)) as dfd:
        first = gz.compress(_header(top, tarfile.DIRTYPE, 0o755, 0, os.fstat(dfd)))
        if first:
            yield first
        for raw in _tree(dfd, top, 0, _Budget()):
            out = gz.compress(raw)
            if out:
                yield out
    yield gz.compress(b"\0" * (2 * tarfile.BLOCKSIZE)) + gz.flush()


def _header(name: str, kind: bytes, mode: int, size: int, st: os.stat_result) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, int(st.st_mtime)
    # surrogateescape: a name that is not UTF-8 keeps its bytes; pax: any length, any character
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _tree(dfd: int, prefix: str, depth: int, budget: _Budget) -> Iterator[bytes]:
    with os.scandir(dfd) as it:
        names = []
        for entry in it:
            budget.entries += 1
            if budget.entries > MAX_ARCHIVE_ENTRIES:
                return
            names.append(entry.name)
    for name in sorted(names):
        if is_git_name(name) or name.startswith(safe_fs.TEMP_PREFIX):
            continue
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            continue
        member = f"{prefix}/{name}"
        if stat.S_ISDIR(st.st_mode):
            if depth + 1 >= safe_fs.MAX_DEPTH:
                continue
            try:
                child = os.open(name, LIST_DIR, dir_fd=dfd)  # O_NOFOLLOW|O_DIRECTORY: a swapped-in link fails
            except OSError:
                continue
            with safe_fs.closing_fd(child):
                yield _header(member, tarfile.DIRTYPE, 0o755, 0, os.fstat(child))
                yield from _tree(child, member, depth + 1, budget)
        elif stat.S_ISREG(st.st_mode):
            yield from _file(dfd, name, member, budget)


def _file(dfd: int, name: str, member: str, budget: _Budget) -> Iterator[bytes]:
    try:
        fd, st = safe_fs.open_regular_at(dfd, name, safe_fs.show(member), single_link=True)
    except (ToolError, OSError):
        return  # a link, a hard-linked file, or swapped meanwhile: left out
    with safe_fs.closing_fd(fd):
        size = st.st_size
        if budget.bytes + size > MAX_ARCHIVE_BYTES:
            return  # grew past the cap after check_archive: left out, the archive stays well-formed
        budget.bytes += size
        yield _header(member, tarfile.REGTYPE, 0o755 if st.st_mode & 0o111 else 0o644, size, st)
        left = size
        while left > 0:
            chunk = b""
            with suppress(OSError):
                chunk = os.read(fd, min(safe_fs.COPY_CHUNK, left))
            if not chunk:  # shrank meanwhile: padded with zeros so the header's size stays true
                chunk = b"\0" * min(safe_fs.COPY_CHUNK, left)
            left -= len(chunk)
            yield chunk
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
