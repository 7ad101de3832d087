"""The ledger on its own (morgus/workflows/ledger.py): who gets which message slot and step number, what a turn
moves on, and what continue-as-new carries. No server: the activities' writes are simulated by the numbers they
are given and the counts they report (what llm_call and the tool activities write; see morgus/activities/)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from morgus.contracts import Phase, ResumeState, StepRecord, StepType, TaskInput
from morgus.workflows.ledger import UNNUMBERED, Ledger

HISTORIES = Path(__file__).parent / "histories"


class Written:
    """What the database would hold: every step number and message slot written, in the order written."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.messages: list[int] = []

    def llm_turn(self, ledger: Ledger, own_steps: int) -> int:
        """llm_call: stores the queued messages and its reply, the deferred steps and `own_steps` of its own."""
        slots = ledger.llm_slots()
        self.messages += [m.seq for m in slots.append] + [slots.message_count]
        self.steps += [s.seq for s in slots.pending_steps] + list(range(slots.step_seq, slots.step_seq + own_steps))
        ledger.llm_turn_stored(slots, slots.message_count, own_steps)
        return slots.message_count

    def tool_turn(self, ledger: Ledger, own_steps: int) -> None:
        slots = ledger.tool_slots()
        self.messages.append(slots.result_seq)
        self.steps += list(range(slots.step_seq, slots.step_seq + own_steps))
        ledger.tool_turn_stored(own_steps)

    def project(self, *steps: StepRecord) -> None:
        self.steps += [s.seq for s in steps]

    def assert_complete(self, ledger: Ledger) -> None:
        """Every number used once, none skipped, and the ledger's counters just past them."""
        assert sorted(self.steps) == list(range(len(self.steps))), self.steps
        assert sorted(self.messages) == list(range(len(self.messages))), self.messages
        assert ledger.step_count == len(self.steps)


def test_a_fresh_ledger_starts_at_zero():
    ledger = Ledger(ResumeState())
    assert (ledger.message_count, ledger.step_count, ledger.has_messages) == (0, 0, False)
    assert ledger.take_deferred() == [] and ledger.carried_steps() == []


def test_queued_messages_take_the_next_slots_and_a_given_slot_is_reused():
    state = ResumeState()
    ledger = Ledger(state)
    ledger.queue_message("system", "sys")
    assert ledger.has_messages  # queued counts: the opening system message is written once
    ledger.queue_message("user", "go")
    ledger.queue_message("tool", "Error: boom", tool_call_id="c1", seq=0)  # a slot already taken keeps its number
    assert [(m.seq, m.role) for m in state.pending_messages] == [(0, "system"), (1, "user"), (0, "tool")]
    assert ledger.message_count == 2


def test_workflow_steps_are_numbered_now_and_deferred_steps_when_the_next_number_is_handed_out():
    ledger = Ledger(ResumeState())
    first = ledger.step(None, StepType.TASK_START, "t")
    ledger.defer_step(Phase.BUILD, StepType.TOOL_RESULT, "Error: a", {"tool": "x"})
    ledger.defer_step(Phase.BUILD, StepType.NOTIFICATION, "cap")
    assert ledger.step_count == 1  # a deferred step has no number yet
    second = ledger.step(Phase.BUILD, StepType.QUESTION, "q?")
    deferred = ledger.take_deferred()
    assert first.seq == 0 and [s.seq for s in deferred] == [1, 2] and second.seq == 3  # in the order they happened
    assert deferred[0].metadata == {"tool": "x"} and deferred[1].metadata == {}
    assert ledger.take_deferred() == []  # taken once
    assert ledger.step_count == 4


def test_an_llm_turn_is_given_the_queued_messages_and_deferred_steps_and_moves_on_by_what_it_wrote():
    state = ResumeState()
    ledger = Ledger(state)
    ledger.step(None, StepType.TASK_START, "t")  # step 0
    ledger.queue_message("system", "s")
    ledger.queue_message("user", "u")
    ledger.defer_step(Phase.RESEARCH, StepType.TOOL_RESULT, "Error: no such tool")
    slots = ledger.llm_slots()
    assert slots.message_count == 2 and [m.seq for m in slots.append] == [0, 1]
    assert [s.seq for s in slots.pending_steps] == [1] and slots.step_seq == 2
    ledger.llm_turn_stored(slots, reply_seq=2, steps_written=3)  # its reply and two tool calls
    assert ledger.message_count == 3 and ledger.step_count == 5
    assert state.pending_messages == [] and ledger.take_deferred() == []


def test_a_tool_turn_gets_the_next_slot_and_the_steps_after_the_deferred_ones():
    ledger = Ledger(ResumeState(message_count=4, step_seq=10))
    ledger.defer_step(Phase.BUILD, StepType.TOOL_RESULT, "Error: rejected")  # an earlier call of the same turn
    slots = ledger.tool_slots()
    assert (slots.result_seq, slots.step_seq) == (4, 11)
    ledger.tool_turn_stored(2)
    assert ledger.message_count == 5 and ledger.step_count == 13
    assert [s.seq for s in ledger.take_deferred()] == [10]  # still waits for the next LLM turn


def test_a_whole_task_uses_every_number_once():
    """The workflow's pattern: start, phases, turns with tool calls run, rejected and failed, a question, an iteration
    cap notice, the end. Every step number and message slot written is used once, none skipped."""
    w = Written()
    state = ResumeState()
    ledger = Ledger(state)
    w.project(ledger.step(None, StepType.TASK_START, "t"))
    for phase in (Phase.RESEARCH, Phase.BUILD):
        w.project(ledger.step(phase, StepType.PHASE_START, "p"))
        if not ledger.has_messages:
            ledger.queue_message("system", "s")
        ledger.queue_message("user", "opening")
        reply = w.llm_turn(ledger, own_steps=1 + 3)  # three tool calls
        assert reply == ledger.message_count - 1
        # call 1 is not allowed in this phase: its error is queued and its step deferred
        ledger.queue_message("tool", "Error: not here", tool_call_id="c1")
        ledger.defer_step(phase, StepType.TOOL_RESULT, "Error: not here")
        # call 2 runs and writes its result and one extra step
        w.tool_turn(ledger, own_steps=2)
        # call 3's activity fails for good: its error goes in the slot its result was given
        slots = ledger.tool_slots()
        ledger.queue_message("tool", "Error: failed", tool_call_id="c3", seq=slots.result_seq)
        ledger.defer_step(phase, StepType.TOOL_RESULT, "Error: failed")
        # ask_user: question and answer are the workflow's own steps
        w.project(ledger.step(phase, StepType.QUESTION, "q"))
        w.project(ledger.step(phase, StepType.ANSWER, "a"))
        w.llm_turn(ledger, own_steps=1)  # writes the queued errors and the deferred steps
        ledger.defer_step(phase, StepType.NOTIFICATION, "iteration cap")
    end = ledger.take_deferred()
    end.append(ledger.step(Phase.BUILD, StepType.TASK_END, "done"))
    w.project(*end)
    w.assert_complete(ledger)
    assert ledger.message_count == len(w.messages)


def test_continue_as_new_carries_the_numbers_and_the_deferred_steps():
    state = ResumeState()
    ledger = Ledger(state)
    ledger.step(None, StepType.TASK_START, "t")
    ledger.queue_message("user", "u")
    ledger.defer_step(Phase.PLAN, StepType.TOOL_RESULT, "Error: rejected", {"ok": False})
    carried = ledger.carried_steps()
    assert [s.seq for s in carried] == [1] and ledger.step_count == 2  # numbered before the state is copied
    # what the workflow hands to the next run, through the wire (JSON) as continue-as-new does
    resume = state.model_copy(update={"runs": state.runs + 1, "pending_steps": carried})
    wire = ResumeState.model_validate_json(resume.model_dump_json())
    nxt = Ledger(wire)
    assert wire.pending_steps == []  # held by the new ledger, not written twice
    assert (nxt.message_count, nxt.step_count) == (1, 2)
    slots = nxt.llm_slots()
    assert [m.seq for m in slots.append] == [0] and [s.seq for s in slots.pending_steps] == [1]
    assert slots.pending_steps[0].metadata == {"ok": False} and slots.step_seq == 2


def test_numbers_never_go_back_whatever_an_activity_reports():
    ledger = Ledger(ResumeState(message_count=5, step_seq=7))
    slots = ledger.llm_slots()
    ledger.llm_turn_stored(slots, reply_seq=2, steps_written=-40)  # a corrupt stored reply: an old slot, negative steps
    assert (ledger.message_count, ledger.step_count) == (5, 7)
    ledger.tool_turn_stored(-3)
    assert ledger.step_count == 7
    ledger.tool_turn_stored(0)
    assert ledger.step_count == 7


def test_a_step_already_numbered_keeps_its_number():
    """A deferred step carried across continue-as-new was numbered by the previous run; it is not renumbered."""
    numbered = StepRecord(seq=3, phase=Phase.BUILD, type=StepType.TOOL_RESULT, content="Error: x")
    ledger = Ledger(ResumeState(step_seq=4, pending_steps=[numbered]))
    ledger.defer_step(Phase.BUILD, StepType.NOTIFICATION, "n")
    assert [s.seq for s in ledger.take_deferred()] == [3, 4]
    assert UNNUMBERED < 0


def test_a_recorded_continue_as_new_state_still_loads_and_continues():
    """ResumeState stays wire-compatible: the state a recorded run handed on (tests/histories) gives the ledger
    the numbers it recorded, and its deferred steps."""
    found = 0
    for path in sorted(HISTORIES.glob("*-run*.json")):
        for event in json.loads(path.read_text())["events"]:
            attrs = event.get("workflowExecutionContinuedAsNewEventAttributes")
            if not attrs:
                continue
            raw = json.loads(base64.b64decode(attrs["input"]["payloads"][0]["data"]))
            resume = TaskInput.model_validate(raw).resume
            assert resume is not None
            recorded = raw["resume"]
            ledger = Ledger(resume)
            assert (ledger.message_count, ledger.step_count) == (recorded["message_count"], recorded["step_seq"])
            assert [s.seq for s in ledger.carried_steps()] == [s["seq"] for s in recorded["pending_steps"]]
            assert all(0 <= s["seq"] < recorded["step_seq"] for s in recorded["pending_steps"])
            found += 1
    assert found >= 10
