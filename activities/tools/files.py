"""file_read, file_write, file_list: the task's workspace, never outside it."""

from __future__ import annotations

import os
import tempfile

from pydantic import BaseModel, ConfigDict, Field

from activities.tools.registry import ToolContext, tool
from activities.tools.workspace import ToolError, hand_to_sandbox, resolve_in_workspace

MAX_READ_BYTES = 200_000
MAX_LIST_ENTRIES = 500
SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv"}


class FileReadArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="File path relative to the workspace.")


class FileWriteArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="File path relative to the workspace; parent folders are created.")
    content: str = Field(description="The complete new content of the file.")


class FileListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(default=".", description="Folder relative to the workspace.")


@tool("file_read", FileReadArgs, "Read a text file from the task workspace.")
async def file_read(ctx: ToolContext, args: FileReadArgs) -> str:
    target = resolve_in_workspace(ctx.workspace, args.path)
    if not target.exists():
        raise ToolError(f"file {args.path!r} does not exist; use file_list to see what is there")
    if target.is_dir():
        raise ToolError(f"{args.path!r} is a folder; use file_list")
    with target.open("rb") as f:
        data = f.read(MAX_READ_BYTES + 1)
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_READ_BYTES:
        text += f"\n[... truncated: file is larger than {MAX_READ_BYTES} bytes]"
    return text


@tool("file_write", FileWriteArgs, "Create or overwrite a text file in the task workspace.")
async def file_write(ctx: ToolContext, args: FileWriteArgs) -> str:
    target = resolve_in_workspace(ctx.workspace, args.path)
    if target == ctx.workspace.resolve() or target.is_dir():
        raise ToolError(f"{args.path!r} is a folder; give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = args.content.encode("utf-8")
    # write-then-rename: a retried activity or a crash never leaves a half-written file
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".morgus-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        hand_to_sandbox(ctx.workspace, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return f"Wrote {len(data)} bytes to {args.path}"


@tool("file_list", FileListArgs, "List files and folders (recursively) in the task workspace.")
async def file_list(ctx: ToolContext, args: FileListArgs) -> str:
    base = resolve_in_workspace(ctx.workspace, args.path)
    if not base.exists():
        raise ToolError(f"folder {args.path!r} does not exist")
    if not base.is_dir():
        raise ToolError(f"{args.path!r} is a file; use file_read")
    root = ctx.workspace.resolve()
    entries: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            entries.append(os.path.normpath(os.path.join(rel_dir, d)) + "/")
        for name in sorted(filenames):
            if name.startswith(".morgus-"):
                continue
            full = os.path.join(dirpath, name)
            size = os.lstat(full).st_size
            entries.append(f"{os.path.normpath(os.path.join(rel_dir, name))} ({size} bytes)")
        if len(entries) > MAX_LIST_ENTRIES:
            break
    if not entries:
        return "(empty)"
    shown = sorted(entries)[:MAX_LIST_ENTRIES]
    more = f"\n[... {len(entries) - MAX_LIST_ENTRIES} more]" if len(entries) > MAX_LIST_ENTRIES else ""
    return "\n".join(shown) + more
