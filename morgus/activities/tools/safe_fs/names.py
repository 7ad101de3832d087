"""Names in a hostile workspace: how a relative path is split (never resolved) and how a name or a file's kind is
shown to the model (never as a forged line or a terminal escape)."""

from __future__ import annotations

import stat
from pathlib import PurePosixPath

from morgus.activities.tools.workspace import ToolError

TEMP_PREFIX = ".morgus-"
MAX_DEPTH = 64  # deeper folders are not walked (listed as skipped where it matters)
COPY_CHUNK = 1 << 20


class Missing(ToolError):
    """The name does not exist (a tool tells the model as any refusal; the API answers 404, not 400)."""


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


def wrong_kind(mode: int, shown: str, wanted: str) -> ToolError:
    """The refusal of something that is not what the tool wanted (a link is never followed to find out)."""
    if stat.S_ISLNK(mode):
        return ToolError(f"{shown!r} is a symlink; links in the workspace are never followed, refused")
    k = kind(mode)
    article = "an" if k[0] in "aeiou" else "a"
    return ToolError(f"{shown!r} is {article} {k}, not {wanted}; refused")


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


def split_file(rel: str, hint: str) -> list[str]:
    """The components of a path that must name a file; the workspace folder itself is refused with `hint`."""
    parts = split_rel(rel)
    if not parts:
        raise ToolError(f"{show(rel)!r} is the workspace folder{hint}")
    return parts
