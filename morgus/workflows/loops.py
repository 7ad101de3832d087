"""Loop detection: has the agent repeated itself often enough to count as stuck?

One job: keep the fingerprints of the latest turns per kind ("tool": the turn's calls with their arguments and
results; "text": the reply) and say when they show a loop — the same turn `loop_repeats` times in a row, or (with
phase work on) a cycle of 2..MAX_CYCLE different turns repeated `loop_repeats - 1` times (at least twice). It also
keeps the warn-then-ask escalation: the first loop is told to the model, the next one is put to the user.

It is pure (no Temporal call) so the workflow stays deterministic and the rules are tested without a server. Its
state is the `repeats` and `loop_warned` fields of `ResumeState`, mutated in place, so continue-as-new carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from morgus.contracts import ResumeState
from morgus.ids import digest

# The longest cycle detected: 2..MAX_CYCLE turns repeated with the same calls and results.
MAX_CYCLE = 4
KINDS = ("tool", "text")  # checked in this order; the first kind that loops is the one reported


@dataclass(frozen=True)
class Loop:
    """A detected loop: which kind of fingerprint repeated, with which period, and how many times."""

    kind: str  # "tool" or "text"
    period: int  # 1: the same turn again; 2..MAX_CYCLE: a cycle of that many turns
    times: int  # how many times in a row it was seen (loop_repeats, or the cycle's repetitions)

    def what(self, tool_names: Sequence[str]) -> str:
        """What the agent did, as words completing 'you have … N times in a row'."""
        if self.period > 1:
            return f"repeated the same {self.period} turns (the same calls with the same results)"
        if self.kind == "tool":
            return f"called {', '.join(tool_names)} with the same arguments and got the same result"
        return "given the same reply"


def tool_mark(fingerprints: Sequence[str]) -> str:
    """One turn's tool fingerprint: its calls' fingerprints (tool, arguments, result), in order."""
    return "|".join(fingerprints)


def text_mark(content: str | None) -> str | None:
    """One turn's reply fingerprint; None for an empty or blank reply, which breaks a run of replies."""
    return digest(content or "") if (content or "").strip() else None


class LoopDetector:
    """Watches turns for loops, over the fingerprint history kept in a `ResumeState`."""

    def __init__(self, state: ResumeState, loop_repeats: int, cycles: bool) -> None:
        self._state = state
        self._n = loop_repeats
        self._cycles = cycles  # PHASE_WORK_PATCH: cycles count, and the history is kept long enough to see them
        self._reps = max(2, loop_repeats - 1)  # a cycle repeated this often is a loop (2 at the default of 3)
        self._keep = max(loop_repeats, self._reps * MAX_CYCLE) if cycles else loop_repeats

    def observe(self, tool: str, text: str | None) -> Loop | None:
        """Record one turn's marks (see `tool_mark`, `text_mark`); returns the loop they complete, if any. A
        detection clears every history: one loop, however it showed, and counting starts afresh. Kinds after the
        detected one are not recorded for that turn."""
        for kind, mark in zip(KINDS, (tool, text), strict=True):
            history = self._state.repeats[kind]
            if mark is None:
                history.clear()
                continue
            history.append(mark)
            del history[: -self._keep]
            loop = self._loop_in(kind, history)
            if loop is not None:
                for h in self._state.repeats.values():
                    h.clear()
                return loop
        return None

    def _loop_in(self, kind: str, history: list[str]) -> Loop | None:
        n = self._n
        if len(history) >= n and len(set(history[-n:])) == 1:
            return Loop(kind, 1, n)
        if not (self._cycles and kind == "tool"):
            return None
        reps = self._reps
        for p in range(2, MAX_CYCLE + 1):
            if len(history) >= reps * p and history[-reps * p :] == history[-p:] * reps and len(set(history[-p:])) > 1:
                return Loop(kind, p, reps)
        return None

    def should_ask_user(self) -> bool:
        """Called on a detection: False the first time (tell the model, and remember it was told), True the next
        (ask the user, and start over: the loop after that is told to the model again)."""
        if not self._state.loop_warned:
            self._state.loop_warned = True
            return False
        self._state.loop_warned = False
        return True
