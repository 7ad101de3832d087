"""Loop detection on its own (morgus/workflows/loops.py): repeats, cycles of 2..MAX_CYCLE turns, what breaks them, the
reset after a detection and the warn-then-ask escalation. No server: the detector is pure; tests/test_phase_work.py
and the recorded loop history cover it inside a running task."""

from __future__ import annotations

import pytest

from morgus.contracts import ResumeState
from morgus.workflows.loops import MAX_CYCLE, Loop, LoopDetector, text_mark, tool_mark


def feed(detector: LoopDetector, marks: list[str], text: str | None = None) -> list[Loop | None]:
    return [detector.observe(m, text) for m in marks]


def test_the_same_call_n_times_is_a_loop_and_n_minus_one_is_not():
    state = ResumeState()
    d = LoopDetector(state, loop_repeats=3, cycles=True)
    assert feed(d, ["a", "a"]) == [None, None]
    assert d.observe("a", None) == Loop("tool", 1, 3)


@pytest.mark.parametrize("n", [2, 5, 100])
def test_loop_repeats_is_honoured(n):
    d = LoopDetector(ResumeState(), loop_repeats=n, cycles=True)
    results = feed(d, ["same"] * n)
    assert results[:-1] == [None] * (n - 1)
    assert results[-1] == Loop("tool", 1, n)


@pytest.mark.parametrize("period", range(2, MAX_CYCLE + 1))
def test_a_cycle_repeated_twice_is_a_loop(period):
    d = LoopDetector(ResumeState(), loop_repeats=3, cycles=True)
    cycle = [f"call{i}" for i in range(period)]
    results = feed(d, cycle * 2)
    assert results[:-1] == [None] * (2 * period - 1)
    assert results[-1] == Loop("tool", period, 2)


def test_a_cycle_longer_than_max_cycle_is_not_a_loop():
    d = LoopDetector(ResumeState(), loop_repeats=3, cycles=True)
    cycle = [f"call{i}" for i in range(MAX_CYCLE + 1)]
    assert feed(d, cycle * 3) == [None] * (3 * (MAX_CYCLE + 1))


def test_cycles_need_phase_work():
    """Without PHASE_WORK_PATCH (old histories) only identical repeats count, over a history of loop_repeats."""
    state = ResumeState()
    d = LoopDetector(state, loop_repeats=3, cycles=False)
    assert feed(d, ["a", "b"] * 4) == [None] * 8
    assert state.repeats["tool"] == ["b", "a", "b"]


@pytest.mark.parametrize("period", range(2, MAX_CYCLE + 1))
def test_one_different_call_breaks_a_cycle(period):
    d = LoopDetector(ResumeState(), loop_repeats=3, cycles=True)
    cycle = [f"call{i}" for i in range(period)]
    almost = cycle * 2
    almost[period] = "something else"  # the second round starts differently
    assert feed(d, almost) == [None] * (2 * period)


def test_one_different_call_breaks_a_repeat():
    d = LoopDetector(ResumeState(), loop_repeats=3, cycles=True)
    assert feed(d, ["a", "a", "b", "a", "a"]) == [None] * 5
    assert d.observe("a", None) == Loop("tool", 1, 3)


def test_a_longer_loop_repeats_count_asks_for_more_cycle_rounds():
    d = LoopDetector(ResumeState(), loop_repeats=5, cycles=True)  # a cycle must show 4 times
    results = feed(d, ["a", "b"] * 4)
    assert results[:-1] == [None] * 7
    assert results[-1] == Loop("tool", 2, 4)


def test_the_history_is_bounded_by_the_longest_cycle_it_must_see():
    state = ResumeState()
    d = LoopDetector(state, loop_repeats=3, cycles=True)
    feed(d, [f"c{i}" for i in range(1000)])
    assert len(state.repeats["tool"]) == 2 * MAX_CYCLE
    assert state.repeats["tool"][-1] == "c999"


def test_a_detection_clears_every_history_and_counting_starts_afresh():
    state = ResumeState()
    d = LoopDetector(state, loop_repeats=3, cycles=True)
    feed(d, ["a", "a"], text="reply")
    assert state.repeats["text"] == ["reply", "reply"]
    assert d.observe("a", "reply") == Loop("tool", 1, 3)
    assert state.repeats == {"tool": [], "text": []}  # the text was not recorded for the detected turn
    assert feed(d, ["a", "a"]) == [None, None]  # two more are not yet a loop again
    assert d.observe("a", None) == Loop("tool", 1, 3)


def test_the_same_reply_is_a_loop_and_a_blank_reply_breaks_it():
    d = LoopDetector(ResumeState(), loop_repeats=3, cycles=True)
    same = text_mark("I will now write the file.")
    assert [d.observe(f"t{i}", same) for i in range(2)] == [None, None]
    assert d.observe("t2", text_mark("   \n")) is None  # blank: no mark, the run of replies is broken
    assert [d.observe(f"t{i}", same) for i in range(3, 5)] == [None, None]
    assert d.observe("t5", same) == Loop("text", 1, 3)


def test_text_cycles_are_not_loops():
    d = LoopDetector(ResumeState(), loop_repeats=3, cycles=True)
    replies = [text_mark("one"), text_mark("two")] * 4
    assert [d.observe(f"t{i}", r) for i, r in enumerate(replies)] == [None] * 8


def test_marks():
    assert tool_mark(["read:1:2", "write:3:4"]) == "read:1:2|write:3:4"
    assert text_mark(None) is None and text_mark("") is None and text_mark("\t ") is None
    assert text_mark("x") == text_mark("x") != text_mark("y")
    assert len(text_mark("x" * 1_000_000) or "") == 16  # a huge reply is kept as a short digest


def test_the_history_survives_continue_as_new():
    """The detector keeps nothing itself: a run resumed from the carried state goes on counting."""
    state = ResumeState()
    feed(LoopDetector(state, loop_repeats=3, cycles=True), ["a", "b", "a"])
    carried = ResumeState.model_validate_json(state.model_dump_json())
    assert LoopDetector(carried, loop_repeats=3, cycles=True).observe("b", None) == Loop("tool", 2, 2)


def test_the_model_is_warned_first_then_the_user_is_asked_then_it_starts_over():
    state = ResumeState()
    d = LoopDetector(state, loop_repeats=3, cycles=True)
    assert d.should_ask_user() is False and state.loop_warned is True
    assert d.should_ask_user() is True and state.loop_warned is False
    assert d.should_ask_user() is False


@pytest.mark.parametrize(
    ("loop", "words"),
    [
        (Loop("tool", 1, 3), "called read_file, shell_exec with the same arguments and got the same result"),
        (Loop("text", 1, 3), "given the same reply"),
        (Loop("tool", 3, 2), "repeated the same 3 turns (the same calls with the same results)"),
    ],
)
def test_what_the_agent_did(loop, words):
    assert loop.what(["read_file", "shell_exec"]) == words
