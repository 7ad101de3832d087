"""The task's ledger: the one owner of its message and step sequence numbers.

Every row a task writes has a number decided here, in the workflow, so that a retried activity or a replayed
workflow writes the same row again (ids are derived from the numbers; see morgus/db/store.py) instead of a new one.
- Messages: `message_count` is the next free conversation slot. A small message the workflow says (a phase's
  opening, a nudge, a rejected call's error) is queued with its slot and stored by the next LLM activity, which
  stores the model's reply in the slot after them.
- Steps: `step_seq` is the next free step number. A step the workflow writes itself (phase start, question, end)
  takes the next number now. A step deferred to the next LLM turn (a rejected call's result, an iteration-cap
  notice) is numbered when the next number is handed out, so deferred steps keep the order they happened in.
- Activities write a turn's own steps from the first number they are given and report how many they wrote
  (`steps_written`); the ledger moves on by that many. Numbers never go back: a negative count moves nothing.

State lives in `ResumeState` (message_count, step_seq, pending_messages, pending_steps), which continue-as-new
carries unchanged; deferred steps are kept here during a run and handed back by `carried_steps`. Deterministic
and tested without a server (tests/test_ledger.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from morgus.contracts import ChatMessage, Phase, ResumeState, StepRecord, StepType

UNNUMBERED = -1  # a deferred step's seq until the ledger numbers it


@dataclass(frozen=True)
class LlmSlots:
    """The numbers an LLM turn is given: the reply's slot (= the conversation's length), the queued messages it
    stores first, the first step number of its own steps, and the deferred steps it writes with them."""

    message_count: int
    append: list[ChatMessage]
    step_seq: int
    pending_steps: list[StepRecord]


@dataclass(frozen=True)
class ToolSlots:
    """The numbers a tool turn is given: its result's slot and the first step number of its steps."""

    result_seq: int
    step_seq: int


class Ledger:
    def __init__(self, state: ResumeState) -> None:
        self._state = state
        # Deferred steps are held here during a run (the state's copy is emptied so it is never written twice).
        self._deferred: list[StepRecord] = list(state.pending_steps)
        state.pending_steps = []

    @property
    def message_count(self) -> int:
        """The next free conversation slot (messages queued but not yet stored included)."""
        return self._state.message_count

    @property
    def step_count(self) -> int:
        """The next free step number."""
        return self._state.step_seq

    @property
    def has_messages(self) -> bool:
        """Whether the conversation has begun (stored or queued)."""
        return self._state.message_count > 0 or bool(self._state.pending_messages)

    # ------------------------------------------------------------------ messages

    def next_message_seq(self) -> int:
        seq = self._state.message_count
        self._state.message_count += 1
        return seq

    def queue_message(self, role: str, content: str, tool_call_id: str | None = None, seq: int | None = None) -> None:
        """A small message the next LLM activity stores before calling the model; `seq` reuses a slot already
        taken (a tool call that failed: its error goes in the slot its result was given)."""
        seq = self.next_message_seq() if seq is None else seq
        self._state.pending_messages.append(ChatMessage(seq=seq, role=role, content=content, tool_call_id=tool_call_id))

    # ------------------------------------------------------------------ steps

    def defer_step(
        self,
        phase: Phase | None,
        type_: StepType,
        content: str,
        metadata: dict[str, Any] | None = None,
        seq: int = UNNUMBERED,
    ) -> None:
        """A step written with the next LLM turn (or at the end); numbered when the next number is handed out,
        unless `seq` is a number already reserved for it (a parallel call that failed: its result's slot)."""
        self._deferred.append(StepRecord(seq=seq, phase=phase, type=type_, content=content, metadata=metadata or {}))

    def number_deferred(self) -> int:
        """Number the deferred steps that have no number yet; returns the next free step number."""
        for s in self._deferred:
            if s.seq < 0:
                s.seq = self._state.step_seq
                self._state.step_seq += 1
        return self._state.step_seq

    def step(
        self, phase: Phase | None, type_: StepType, content: str, metadata: dict[str, Any] | None = None
    ) -> StepRecord:
        """A step the workflow writes itself, numbered now (after any deferred ones)."""
        seq = self.number_deferred()
        self._state.step_seq = seq + 1
        return StepRecord(seq=seq, phase=phase, type=type_, content=content, metadata=metadata or {})

    def take_deferred(self) -> list[StepRecord]:
        """The deferred steps, numbered, for a write that is not an LLM turn (the task's end); the ledger forgets
        them."""
        self.number_deferred()
        steps, self._deferred = self._deferred, []
        return steps

    def carried_steps(self) -> list[StepRecord]:
        """The deferred steps, numbered, for continue-as-new's `ResumeState.pending_steps` (kept here too)."""
        self.number_deferred()
        return list(self._deferred)

    # ------------------------------------------------------------------ turns

    def llm_slots(self) -> LlmSlots:
        step_seq = self.number_deferred()
        return LlmSlots(
            message_count=self._state.message_count,
            append=list(self._state.pending_messages),
            step_seq=step_seq,
            pending_steps=list(self._deferred),
        )

    def llm_turn_stored(self, slots: LlmSlots, reply_seq: int, steps_written: int) -> None:
        """The LLM activity stored the queued messages, the deferred steps and its reply (in `reply_seq`) with
        `steps_written` steps of its own from `slots.step_seq`."""
        self._state.message_count = max(self._state.message_count, reply_seq + 1)
        self._state.pending_messages = []
        self._deferred = []
        self._state.step_seq = max(self._state.step_seq, slots.step_seq + steps_written)

    def tool_slots(self) -> ToolSlots:
        result_seq = self.next_message_seq()
        return ToolSlots(result_seq=result_seq, step_seq=self.number_deferred())

    def reserve_tool_slots(self) -> ToolSlots:
        """The slots of one call of a turn whose calls run concurrently (parallel-tools-v1), taken in the order of
        the calls before any starts: its result's slot and exactly one step, its TOOL_RESULT (the call's other
        steps come back to the workflow and are deferred). Fixed numbers, so results and steps keep the calls'
        order whatever order the calls finish in, and the step numbers stay contiguous."""
        slots = self.tool_slots()
        self._state.step_seq = slots.step_seq + 1
        return slots

    def tool_turn_stored(self, steps_written: int) -> None:
        """The tool activity stored its result and `steps_written` steps from the number it was given."""
        self._state.step_seq += max(0, steps_written)
