"""How the workflow reads a user's answer to a stuck phase's question (morgus/workflows/inbound.py). No server; the
decoding of inputs and answers is covered through a running task by tests/test_hostile_input.py."""

from __future__ import annotations

import pytest

from morgus.workflows.inbound import MOVE_ON_WORDS, STOP_WORDS, starts_with


@pytest.mark.parametrize("answer", ["stop", "  Stop ", "stop, it is fine", "no. thanks", "ABORT now", "cancel"])
def test_stop_answers(answer):
    assert starts_with(answer, STOP_WORDS)


@pytest.mark.parametrize("answer", ["", "stopping", "nope", "don't stop", "notes", "please stop", "stop!"])
def test_answers_that_are_not_stop(answer):
    assert not starts_with(answer, STOP_WORDS)


@pytest.mark.parametrize("answer", ["move on", "Move on.", "next", "skip it", "next, then deploy"])
def test_move_on_answers(answer):
    assert starts_with(answer, MOVE_ON_WORDS)


def test_a_huge_answer_is_read_by_its_start():
    assert starts_with("skip " + "x" * 1_000_000, MOVE_ON_WORDS)
    assert not starts_with("x" * 1_000_000, MOVE_ON_WORDS)
