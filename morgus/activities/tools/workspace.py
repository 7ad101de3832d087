"""The per-task workspace on the worker host, and the guard that keeps every path inside it."""

from __future__ import annotations

import os
from pathlib import Path


class ToolError(Exception):
    """A problem the model caused and can fix; returned to it as the tool result, never a crash."""


def resolve_in_workspace(root: Path, rel: str) -> Path:
    """Resolve `rel` under `root`, refusing absolute paths, `..` and symlinks that lead outside.

    A check only, racy by nature (the sandbox can swap a name right after it): never open what it returns on the
    host. File I/O goes through morgus.activities.tools.safe_fs, which opens beneath the workspace without following."""
    from morgus.activities.tools.safe_fs import split_rel  # safe_fs imports ToolError from here

    parts = split_rel(rel)  # the same syntactic rules as every file tool: no absolute path, `~`, `..` or NUL
    root = root.resolve()
    candidate = root.joinpath(*parts)
    # resolve() follows every symlink on the way, including dangling ones, so a link out is caught here
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise ToolError(f"path {rel!r} resolves outside the workspace (symlink); refused")
    return resolved
