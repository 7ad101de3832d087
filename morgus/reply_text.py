"""Text in a reply that a model wrote in Morgus's voice, not its own: a header such as "**Phase: EXECUTE**" that
opens a section for a phase it is not in, or repeats the current phase's opening.

A 1.5B model given openings that start "Phase: BUILD" answered RESEARCH with a summary followed by invented
"**Phase: PLAN** … **Phase: BUILD** …" sections; once those were in the conversation it copied them as its later
replies (BUILD said "Wrote index.html, styles.css" — none written — then "**Phase: EXECUTE** Test the website…",
and EXECUTE answered a failed command with the opening of EXECUTE itself), and each such reply ended a phase.
The text from the first such header on is dropped from the reply before it is stored, so the conversation keeps
only what the model said as itself; a reply left empty is asked again like an empty one (morgus/activities/llm.py).
PLAN keeps its sections for later phases (they are the plan) and loses only a repeat of its own opening.
FINALIZE's reply is the task's summary for the user, and no phase comes after it: a recap by phase ("**Phase:
BUILD** wrote index.html") is kept, and so is its own header as a title; only a repeat of its opening is dropped.
A header is a line of its own, as in Morgus's openings, or a name closed by its markdown ("**Phase: EXECUTE** Test
…"): "**Phase: BUILD complete.** Wrote index.html" is the model's own one-line report, and a header inside a
fenced code block (a config file shown to the user) is the block's text.
Pure functions, unit-tested without a server.
"""

from __future__ import annotations

import re

from morgus.contracts import Phase
from morgus.phases import PHASES

# a line that opens with a phase header the way Morgus's openings do ("Phase: BUILD"), with any markdown around it,
# and ends there (a colon or a full stop may follow) or closes its markdown right after the name
# Possessive loops: the blank runs on either side of the markdown cannot trade characters (backtracking between
# them cost 5 s of CPU on 1,000 lines of "phase:" and 1,000 blanks).
_PHASE_HEADER = re.compile(
    r"^[ \t>#*_`]*+(?i:phase)[*_`]*+[ \t]*+[:\-–—][ \t]*+[*_`]*+[ \t]*+"
    r"(RESEARCH|PLAN|BUILD|EXECUTE|FINALIZE)\b(?:[:.]?+[*_`]*+[ \t]*+$|[*_`]++)",
    re.MULTILINE,
)
_FENCE = "```"
_BACKWARDS_FROM_PLAN = {Phase.RESEARCH.value, Phase.PLAN.value}
_ECHO_CHARS = 24  # how much of a phase's purpose, right after its header, makes the header an echo of the opening
_MARKUP = re.compile(r"[\s*_`>#]*+")


def _echoes_opening(content: str, header_end: int, phase: Phase) -> bool:
    start = _MARKUP.match(content, header_end).end()  # type: ignore[union-attr]  # matches the empty string too
    said = content[start : start + _ECHO_CHARS].lower()
    return len(said) == _ECHO_CHARS and PHASES[phase].purpose.lower().startswith(said)


def _starts_section(content: str, m: re.Match[str], phase: Phase) -> bool:
    named = m.group(1)
    if phase is Phase.PLAN:
        return named in _BACKWARDS_FROM_PLAN
    if phase is Phase.FINALIZE:
        return named == phase.value and _echoes_opening(content, m.end(), phase)
    return True


def drop_other_phase_text(content: str | None, phase: Phase) -> tuple[str | None, int]:
    """(the reply up to its first phase header, how many characters were dropped). PLAN drops only from a header
    naming PLAN or RESEARCH, FINALIZE only from a repeat of its own opening; a header in a code block stays."""
    if not content:
        return content, 0
    fences, counted = 0, 0  # fences before the header, counted once over the whole reply (headers come in order)
    for m in _PHASE_HEADER.finditer(content):
        fences += content.count(_FENCE, counted, m.start())
        counted = m.start()
        if fences % 2 == 0 and _starts_section(content, m, phase):
            kept = content[: m.start()].rstrip()
            return kept or None, len(content) - len(kept)
    return content, 0


def after_leading_header(content: str | None) -> str | None:
    """The reply after a phase header on its first line, None when it has none: a call written under a copied
    header ("**Phase: BUILD**\nfile_write: a.txt, \"hi\"") is read from there, since the forms that must be
    the whole reply (`name: values`, a lone arguments object) never are with the header in front."""
    text = (content or "").lstrip()
    m = _PHASE_HEADER.match(text)
    return text[m.end() :] if m is not None else None
