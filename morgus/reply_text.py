"""Text in a reply that a model wrote in Morgus's voice, not its own: a header such as "**Phase: EXECUTE**" that
opens a section for a phase it is not in, or repeats the current phase's opening.

A 1.5B model given openings that start "Phase: BUILD" answered RESEARCH with a summary followed by invented
"**Phase: PLAN** … **Phase: BUILD** …" sections; once those were in the conversation it copied them as its later
replies (BUILD said "Wrote index.html, styles.css" — none written — then "**Phase: EXECUTE** Test the website…",
and EXECUTE answered a failed command with the opening of EXECUTE itself), and each such reply ended a phase.
The text from the first such header on is dropped from the reply before it is stored, so the conversation keeps
only what the model said as itself; a reply left empty is asked again like an empty one (morgus/activities/llm.py).
PLAN keeps its sections for later phases (they are the plan) and loses only a repeat of its own opening.
Pure functions, unit-tested without a server.
"""

from __future__ import annotations

import re

from morgus.contracts import Phase

# a line that opens with a phase header the way Morgus's openings do ("Phase: BUILD"), with any markdown around it
# Possessive loops: the blank runs on either side of the markdown cannot trade characters (backtracking between
# them cost 5 s of CPU on 1,000 lines of "phase:" and 1,000 blanks).
_PHASE_HEADER = re.compile(
    r"^[ \t>#*_`]*+(?i:phase)[*_`]*+[ \t]*+[:\-–—][ \t]*+[*_`]*+[ \t]*+"
    r"(RESEARCH|PLAN|BUILD|EXECUTE|FINALIZE)\b",
    re.MULTILINE,
)
_BACKWARDS_FROM_PLAN = {Phase.RESEARCH.value, Phase.PLAN.value}


def drop_other_phase_text(content: str | None, phase: Phase) -> tuple[str | None, int]:
    """(the reply up to its first phase header, how many characters were dropped). PLAN drops only from a header
    naming PLAN or RESEARCH."""
    if not content:
        return content, 0
    for m in _PHASE_HEADER.finditer(content):
        if phase is not Phase.PLAN or m.group(1) in _BACKWARDS_FROM_PLAN:
            kept = content[: m.start()].rstrip()
            return kept or None, len(content) - len(kept)
    return content, 0
