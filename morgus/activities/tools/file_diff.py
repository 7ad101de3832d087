"""The unified diff a `file_write` made, for the console to show under its step (never for the model).

Both sides are untrusted (the old file was written by sandboxed code, the new one by the model), so the work is
bounded whatever they hold: inputs over MAX_INPUT_BYTES are not diffed, the common head and tail are trimmed in
linear time and difflib only matches what is left when that is at most MAX_MATCH_LINES on each side (else the
region is shown as removed-then-added), each shown line is cut at MAX_LINE_CHARS, and the diff stops at
MAX_DIFF_CHARS / MAX_DIFF_LINES with `truncated` set. Control and bidi characters are shown as visible escapes
(`\\x1b`, `\\u202e`): a diff viewer must show what is in the file, not let it act on a terminal or reorder text.

The result lives in the step's metadata (Postgres, the steps API and the event stream): it never crosses
Temporal, whose payloads only carry the tool's short preview.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

MAX_INPUT_BYTES = 1 << 20  # a side larger than this is not diffed (sizes and line counts are still given)
MAX_MATCH_LINES = 3000  # the changed region difflib matches line by line, per side
MAX_DIFF_CHARS = 64_000
MAX_DIFF_LINES = 2_000
MAX_LINE_CHARS = 1_000
CONTEXT = 3
SNIFF_BYTES = 8192

# C0/C1 controls but tab, DEL, and the invisible format characters that reorder or hide text (Trojan Source)
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(c: re.Match[str]) -> str:
    n = ord(c.group())
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def shown_line(line: str) -> str:
    """One line of a file as the diff shows it: its newline dropped, unsafe characters escaped, cut if long."""
    body = line[:-1] if line.endswith("\n") else line
    cut = len(body) - MAX_LINE_CHARS
    body = _UNSAFE.sub(_escape, body[:MAX_LINE_CHARS])
    return body + (f" … ({cut} more characters)" if cut > 0 else "")


def _decode(data: bytes) -> str | None:
    """The text, or None when the bytes are binary (a NUL near the start, or not UTF-8)."""
    if b"\x00" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    """Lines as git counts them: split at "\n" only (str.splitlines would also split at \r, \x0b, \x1c, U+2028…,
    turning one line of the file into several of the diff)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


class _Out:
    """The diff text under its caps: lines stop being kept once either is reached."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.chars = 0
        self.truncated = False

    def add(self, line: str) -> None:
        if self.truncated:
            return
        if len(self.lines) >= MAX_DIFF_LINES or self.chars + len(line) + 1 > MAX_DIFF_CHARS:
            self.truncated = True
            return
        self.lines.append(line)
        self.chars += len(line) + 1


def _range(start: int, length: int) -> str:
    # unified-diff ranges: 1-based, "start,length", an empty range names the line before it
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _emit(out: _Out, sign: str, line: str) -> None:
    out.add(sign + shown_line(line))
    if not line.endswith("\n"):
        out.add("\\ No newline at end of file")


def _hunks(a: list[str], b: list[str], out: _Out) -> tuple[int, int]:
    """The hunks of a → b into `out`; returns (added, removed) lines, counted in full even when the text is cut."""
    head = 0
    while head < len(a) and head < len(b) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < len(a) - head and tail < len(b) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    lo = max(0, head - CONTEXT)
    a_sub, b_sub = a[lo : len(a) - max(0, tail - CONTEXT)], b[lo : len(b) - max(0, tail - CONTEXT)]
    mid_a, mid_b = len(a) - head - tail, len(b) - head - tail
    if mid_a <= MAX_MATCH_LINES and mid_b <= MAX_MATCH_LINES:
        groups = list(difflib.SequenceMatcher(None, a_sub, b_sub).get_grouped_opcodes(CONTEXT))
    else:  # too large to match line by line in bounded time: one region, removed then added
        ctx_a = head - lo
        groups = [
            [
                ("equal", 0, ctx_a, 0, ctx_a),
                ("replace", ctx_a, ctx_a + mid_a, ctx_a, ctx_a + mid_b),
                ("equal", ctx_a + mid_a, len(a_sub), ctx_a + mid_b, len(b_sub)),
            ]
        ]
    added = removed = 0
    for group in groups:
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.add(f"@@ -{_range(lo + i1, i2 - i1)} +{_range(lo + j1, j2 - j1)} @@")
        for tag, ai1, ai2, bj1, bj2 in group:
            if tag == "equal" and not out.truncated:
                for line in a_sub[ai1:ai2]:
                    _emit(out, " ", line)
            if tag == "equal":
                continue
            removed += ai2 - ai1
            added += bj2 - bj1
            if out.truncated:
                continue  # counted, not shown: a million-line region costs no more than its count
            for line in a_sub[ai1:ai2]:
                _emit(out, "-", line)
            for line in b_sub[bj1:bj2]:
                _emit(out, "+", line)
    return added, removed


def write_diff(
    path: str, old: bytes | None, new: bytes, *, old_size: int | None = None, old_note: str | None = None
) -> dict[str, Any]:
    """What a write of `new` over `old` (None: there was no file) changed, as step metadata: `text` (the unified
    diff, or None with a `note` saying why not), `added`/`removed` line counts, `new_file`, `binary`, `truncated`.
    `old_size`: the old file's real size when `old` was read only in part (more than MAX_INPUT_BYTES)."""
    info: dict[str, Any] = {
        "path": path,
        "new_file": old is None and old_note is None,
        "binary": False,
        "truncated": False,
        "added": 0,
        "removed": 0,
        "old_bytes": len(old or b"") if old_size is None else old_size,
        "new_bytes": len(new),
        "text": None,
        "note": old_note,
    }
    if old_note is not None:  # what was there could not be read (a link, a device): the write replaced it
        old = b""
    if old is not None and old == new:
        return info | {"note": "no change: the file already had this content"}
    before = old or b""
    if len(before) > MAX_INPUT_BYTES or len(new) > MAX_INPUT_BYTES:
        return info | {
            "removed": _count_lines(before),
            "added": _count_lines(new),
            "note": f"too large to diff ({info['old_bytes']} → {len(new)} bytes)",
        }
    a_text, b_text = _decode(before), _decode(new)
    if a_text is None or b_text is None:
        return info | {"binary": True, "note": "binary file changed"}
    out = _Out()
    shown = shown_line(path)
    out.add(f"--- {'/dev/null' if old is None else 'a/' + shown}")
    out.add(f"+++ b/{shown}")
    added, removed = _hunks(_lines(a_text), _lines(b_text), out)
    return info | {"added": added, "removed": removed, "text": "\n".join(out.lines), "truncated": out.truncated}
