"""How an unattended run answers the questions a task asks: `morgus demo`, the evaluation suite
(bench/agent_eval.py) and the real-model smoke test answer as a user who wants the work done.

The workflow's own questions carry a `kind` in the step's metadata (docs/llm.md); the agent's own questions
(ask_user) have none and get the run's answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WORKFLOW_QUESTION_ANSWERS = {
    "no_work": "retry",  # a phase showed no work after the nudge: the agent tries again
    "loop": "move on",  # stuck repeating itself after the warning: the next phase, with what it has
    "iteration_cap": "move on",
    "budget": "stop",  # an unattended run never raises its own budget
}


def answer_for(step: Mapping[str, Any], own_question_answer: str) -> str:
    """The answer to the QUESTION step `step` (a task_steps row)."""
    kind = (step.get("metadata") or {}).get("kind")
    return WORKFLOW_QUESTION_ANSWERS.get(kind, own_question_answer) if isinstance(kind, str) else own_question_answer
