"""A whole folder of the workspace: listing it (`walk`, for file_list) and copying its regular files out
(`copy_regular_tree`, for deploy_local), breadth- or depth-first by descriptor, bounded in entries, bytes and depth."""

from __future__ import annotations

import os
import stat
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from morgus.activities.tools.safe_fs.descriptors import (
    LIST_DIR,
    NEW_FILE,
    PATH_DIR,
    closing_fd,
    open_folder,
    open_regular_at,
    reopen_dir,
    sentences,
    write_all,
)
from morgus.activities.tools.safe_fs.names import COPY_CHUNK, MAX_DEPTH, TEMP_PREFIX, kind, show, split_rel
from morgus.activities.tools.workspace import ToolError

# ---------------------------------------------------------------- walking


@dataclass
class Entry:
    rel: str  # shown (escaped) path relative to the workspace
    mode: int
    size: int
    nlink: int


def walk(
    root: Path, rel: str, *, max_entries: int, skip_dirs: frozenset[str] = frozenset()
) -> tuple[list[Entry], bool]:
    """Every entry beneath `rel` (lstat only, links never descended), at most `max_entries`; True if cut short."""
    parts = split_rel(rel) if rel.strip() not in ("", ".") else []
    out: list[Entry] = []
    scanned = 0
    with sentences(show(rel)), closing_fd(open_folder(root, parts)) as base:
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
                                queue.append((os.open(entry.name, LIST_DIR, dir_fd=dfd), shown, depth + 1))
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


def copy_regular_tree(
    src_dir: int, dst_dir: int, *, max_files: int, max_bytes: int, skip_dirs: frozenset[str] = frozenset()
) -> CopyReport:
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


def _copy_dir(
    sfd: int, dfd: int, shown_dir: str, depth: int, report: CopyReport, budget: _Budget, skip_dirs: frozenset[str]
) -> None:
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
                child = os.open(entry.name, LIST_DIR, dir_fd=sfd)
            except OSError:
                report.skipped.append(f"{shown} (changed while publishing)")
                continue
            with closing_fd(child):
                os.mkdir(entry.name, 0o755, dir_fd=dfd)
                with closing_fd(os.open(entry.name, PATH_DIR, dir_fd=dfd)) as child_dst:
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
                raise TooLarge(
                    f"the folder holds more than {budget.max_bytes // 1_000_000} MB (at {shown}, "
                    f"{st.st_size} bytes); publish a smaller folder"
                )
            report.bytes += _copy_file(fd, dfd, entry.name, budget.max_bytes - report.bytes, shown, budget.max_bytes)
            report.files += 1


def _reason(message: str, st: os.stat_result) -> str:
    if "hard links" in message:
        return f"{st.st_nlink} hard links"
    if "symlink" in message:
        return "symlink"
    return "changed while publishing"


def _copy_file(src: int, dst_dir: int, name: str, budget: int, shown: str, max_bytes: int) -> int:
    out = os.open(name, NEW_FILE, 0o644, dir_fd=dst_dir)
    copied = 0
    with closing_fd(out):
        while True:
            chunk = os.read(src, min(COPY_CHUNK, budget + 1 - copied))
            if not chunk:
                return copied
            copied += len(chunk)
            if copied > budget:  # the file grew while it was copied
                raise TooLarge(
                    f"the folder holds more than {max_bytes // 1_000_000} MB (at {shown}); publish a smaller folder"
                )
            write_all(out, chunk)
