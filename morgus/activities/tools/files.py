"""file_read, file_write, file_list: the task's workspace, never outside it.

The workspace is written by sandboxed code, so these open it through safe_fs (no link followed, no FIFO opened,
nothing but regular files read) and run off the event loop."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

from pydantic import Field

from morgus.activities.tools import file_diff, safe_fs
from morgus.activities.tools.registry import ToolArgs, ToolContext, ToolOutput, tool
from morgus.activities.tools.workspace import ToolError
from morgus.sandbox.base import chown_at, chown_fd

MAX_READ_BYTES = 200_000
MAX_WRITE_BYTES = 5_000_000
MAX_LIST_ENTRIES = 500
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv"})


class FileReadArgs(ToolArgs):
    path: str = Field(description="File path relative to the workspace.")


class FileWriteArgs(ToolArgs):
    path: str = Field(description="File path relative to the workspace; parent folders are created.")
    content: str = Field(description="The complete new content of the file.")


class FileListArgs(ToolArgs):
    path: str = Field(default=".", description="Folder relative to the workspace.")


def _text(data: bytes) -> str:
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    if len(data) > MAX_READ_BYTES:
        text += f"\n[... truncated: file is larger than {MAX_READ_BYTES} bytes]"
    return text


@tool("file_read", FileReadArgs, "Read a text file from the task workspace.")
async def file_read(ctx: ToolContext, args: FileReadArgs) -> str:
    root = ctx.settings.workspace_for(ctx.task_id)
    data = await asyncio.to_thread(safe_fs.read_file, root, args.path, MAX_READ_BYTES)
    # A few NULs in a text file are shown as U+FFFD (the store would replace them anyway); a file that is
    # mostly NULs (a sparse or binary blob) is refused rather than fed to the model as 200 KB of noise.
    if len(data) >= 1024 and data.count(b"\x00") * 8 > len(data):
        raise ToolError(
            f"{safe_fs.show(args.path)!r} is a binary file (it holds NUL bytes); file_read reads text, "
            "inspect it with shell_exec (e.g. `file`, `xxd | head`)"
        )
    return _text(data)


def _write_with_diff(root: Path, rel: str, data: bytes) -> dict[str, Any]:
    """Write `data` to `rel` and return the diff against what was there (the console shows it under the step).
    The old file is read the way file_read reads (no link followed, no FIFO opened) and only its first
    MAX_INPUT_BYTES: whatever the sandbox left there costs bounded time."""
    old: bytes | None = None
    old_size: int | None = None
    note: str | None = None
    try:
        fd, st = safe_fs.open_regular(root, rel)
        with safe_fs.closing_fd(fd):
            old, old_size = safe_fs.read_capped(fd, file_diff.MAX_INPUT_BYTES), st.st_size
    except safe_fs.Missing:
        pass  # a new file
    except (ToolError, OSError):
        note = "what was at this path before was not a regular file that could be read; the write replaced it"
    safe_fs.write_file(root, rel, data, chown_at=chown_at, chown_fd=chown_fd)
    return file_diff.write_diff(safe_fs.show(rel), old, data, old_size=old_size, old_note=note)


@tool("file_write", FileWriteArgs, "Create or overwrite a text file in the task workspace.")
async def file_write(ctx: ToolContext, args: FileWriteArgs) -> ToolOutput:
    data = args.content.encode("utf-8", errors="replace")
    if len(data) > MAX_WRITE_BYTES:
        raise ToolError(
            f"content is {len(data)} bytes; file_write takes at most {MAX_WRITE_BYTES} bytes "
            "(write a large file in parts with shell_exec, or generate it there)"
        )
    root = ctx.settings.workspace_for(ctx.task_id)
    # the written file and the folders made for it go to the sandbox user (when the worker is root), each by
    # descriptor or (folder fd, name): never through a name the sandbox could have turned into a link
    diff = await asyncio.to_thread(_write_with_diff, root, args.path, data)
    return ToolOutput(content=f"Wrote {len(data)} bytes to {safe_fs.show(args.path)}", metadata={"diff": diff})


def _line(e: safe_fs.Entry) -> str:
    if stat.S_ISDIR(e.mode):
        return e.rel + "/"
    if stat.S_ISREG(e.mode):
        links = f", {e.nlink} hard links" if e.nlink > 1 else ""
        return f"{e.rel} ({e.size} bytes{links})"
    if stat.S_ISLNK(e.mode):
        return f"{e.rel} -> (link, not followed)"
    return f"{e.rel} ({safe_fs.kind(e.mode)}, not a regular file)"


@tool("file_list", FileListArgs, "List files and folders (recursively) in the task workspace.")
async def file_list(ctx: ToolContext, args: FileListArgs) -> str:
    root = ctx.settings.workspace_for(ctx.task_id)
    entries, cut = await asyncio.to_thread(
        safe_fs.walk, root, args.path, max_entries=MAX_LIST_ENTRIES, skip_dirs=SKIP_DIRS
    )
    if not entries:
        return "(empty)"
    more = f"\n[... more entries not shown: the listing stops at {MAX_LIST_ENTRIES}]" if cut else ""
    return "\n".join(sorted(_line(e) for e in entries)) + more
