"""Printing text a task produced (titles, steps, questions, answers, artifact names, errors) to a terminal.

All of it may come from a user, a model or sandboxed code, and a terminal obeys control characters: ESC starts
sequences that clear the screen, retitle the window, set the clipboard (OSC 52) or fake a prompt; CR and
backspace overwrite what was printed; bidi overrides make text read differently from what it is. `term_safe`
shows every such character as a visible escape (`\\x1b`, `\\r`, `\\u202e`), so the text is inert.
"""

from __future__ import annotations

import re

from rich.markup import escape as _markup_escape

# C0 and C1 controls and DEL; bidirectional formatting characters (Trojan Source, CVE-2021-42574); line and
# paragraph separators; the BOM; lone surrogates.
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def term_safe(text: object, *, newlines: bool = False, markup: bool = False) -> str:
    """`text` with every control, bidi and line-separator character shown as an escape. `newlines=True` keeps
    LF and TAB (multi-line content such as a question); `markup=True` also escapes Rich markup (`[bold]`), for
    strings printed with markup on."""
    s = "" if text is None else str(text)
    if newlines:
        s = "\n".join("\t".join(_UNSAFE_RE.sub(_visible, part) for part in line.split("\t")) for line in s.split("\n"))
    else:
        s = _UNSAFE_RE.sub(_visible, s)
    return _markup_escape(s) if markup else s
