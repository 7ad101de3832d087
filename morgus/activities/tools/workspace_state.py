"""A cheap fingerprint of a workspace (names, sizes, modification times), to tell whether a command changed it.

The workflow needs to know whether BUILD produced anything; reading every file would be slow, so a change is
any entry added, removed, resized or touched. A workspace too large to walk cheaply counts as changed: the check
then errs towards letting the phase end, which is today's behaviour.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MAX_ENTRIES = 20_000


def fingerprint(root: Path, max_entries: int = MAX_ENTRIES) -> str | None:
    """A digest of every entry under root (never following symlinks); None when there are more than max_entries
    or root cannot be read."""
    h = hashlib.sha256()
    seen = 0
    stack = [root]
    try:
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                seen += 1
                if seen > max_entries:
                    return None
                st = e.stat(follow_symlinks=False)
                rel = os.path.relpath(e.path, root)
                h.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
    except OSError:
        return None
    return h.hexdigest()


def changed(before: str | None, after: str | None) -> bool:
    return before is None or after is None or before != after
