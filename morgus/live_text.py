"""Live text (a reply being generated, a command's output as it runs) made safe to store and to stream, in pieces.

Pure functions and small classes with no I/O: the live writer (morgus/activities/live.py) feeds them, the store
writes what they produce (morgus/db/store.py `live_append`), the API streams it (morgus/app/event_stream.py).

- Offsets are in UTF-16 code units, the unit a browser's string length counts, so the console can place a piece
  at `offset` without converting (an emoji is two units here and there).
- A command's bytes arrive in arbitrary pieces: `TerminalText` decodes each stream incrementally (a UTF-8 sequence
  split across two reads is still one character; invalid bytes become U+FFFD) and drops terminal control: escape
  sequences (colours, cursor moves, window titles; one split across reads is held back until it is complete, up
  to 256 characters), C0/C1 controls but tab and newline, and a carriage return becomes a newline. NUL and lone
  surrogates never survive (morgus/text.py).
- A NOTIFY payload must stay under Postgres's 8,000 bytes: `notices` cuts a piece into slices of at most
  NOTICE_CHARS characters, each at most 6 bytes as JSON (`\\u001b`), so a slice is under 6.2 KB whatever it holds.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field

from morgus.text import clean_text

NOTICE_CHARS = 1000
HOLD_MAX = 256  # an unfinished escape sequence longer than this is not one: its text is let through

# complete sequences: CSI, OSC (ended by BEL or ST), DCS/SOS/PM/APC strings, other escapes (ESC, intermediates, a
# final that does not open one of those); C1 controls
_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[ -/]*[0-OQ-WYZ\\`-~]|[\x80-\x9f]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # what is left of them, ESC included; tab and newline stay


def utf16_len(text: str) -> int:
    """The length a browser's `string.length` gives `text`."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def terminal_clean(text: str) -> str:
    """`text` without terminal control (see the module docstring), for a complete piece."""
    text = _SEQUENCE.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return clean_text(_CONTROLS.sub("", text))


class TerminalText:
    """One command's output streams, decoded and cleaned piece by piece (see the module docstring)."""

    def __init__(self) -> None:
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
        self._held = {"stdout": "", "stderr": ""}

    def feed(self, stream: str, data: bytes) -> str:
        text = self._held[stream] + self._decoders[stream].decode(data)
        self._held[stream] = ""
        cut = _unfinished_tail(text)
        if cut is not None:
            text, self._held[stream] = text[:cut], text[cut:]
        return terminal_clean(text)


def _unfinished_tail(text: str) -> int | None:
    """Where an escape sequence (or a CR that may be half of a CRLF) that the next read may finish starts."""
    if text.endswith("\r"):
        return len(text) - 1
    esc = text.rfind("\x1b", max(0, len(text) - HOLD_MAX))
    if esc < 0 or "\n" in text[esc:] or _SEQUENCE.match(text, esc):
        return None
    return esc


@dataclass
class LiveWrite:
    """One write of a call's live text: the row's new piece, and the NOTIFY payloads announcing it."""

    task_id: str
    seq: int
    kind: str
    phase: str | None
    run: int
    attempt: int
    text: str
    replace: bool
    notices: list[str] = field(default_factory=list)


def notices(head: dict[str, object], text: str, offset: int) -> list[str]:
    """NOTIFY payloads for `text` placed at `offset` (UTF-16 units), each under Postgres's payload limit."""
    out = []
    for i in range(0, len(text), NOTICE_CHARS):
        piece = text[i : i + NOTICE_CHARS]
        out.append(json.dumps({**head, "offset": offset, "text": piece}, ensure_ascii=False))
        offset += utf16_len(piece)
    return out
