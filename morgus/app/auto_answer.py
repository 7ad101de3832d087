"""How an unattended run answers the questions a task asks: `morgus demo`, the evaluation suite
(bench/agent_eval.py) and the real-model smoke test answer as a user who wants the work done.

The workflow's own questions carry a `kind` in the step's metadata (docs/llm.md); the agent's own questions
(ask_user) have none and get the run's answer.

A call waiting for approval (an APPROVAL step: git_push, cloudflare_deploy, a shell command such as curl under the
server's approval policy) is denied with UNATTENDED_DENIAL: nobody is there to say yes, and the safe answer to "may I
push/deploy/fetch?" with nobody to ask is no. The agent reads the reason as the call's result and goes on; the run
never hangs on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

WORKFLOW_QUESTION_ANSWERS = {
    "no_work": "retry",  # a phase showed no work after the nudge: the agent tries again
    "loop": "move on",  # stuck repeating itself after the warning: the next phase, with what it has
    "iteration_cap": "move on",
    "budget": "stop",  # an unattended run never raises its own budget
}


UNATTENDED_DENIAL = "unattended run; nobody to approve"


def decision_for(step: Mapping[str, Any]) -> tuple[str, str, str]:
    """(call id, decision, reason) for an APPROVAL step of an unattended run: always a denial (see above)."""
    return str((step.get("metadata") or {}).get("call_id") or ""), "deny", UNATTENDED_DENIAL


# A phase that still shows no work after this many retries goes on without it: a 1.5B model answered every retry
# of EXECUTE with the same "deploy_local, dist" and the demo answered "retry" 30 times until it was stopped.
MAX_RETRIES_PER_PHASE = 2


def answer_for(step: Mapping[str, Any], own_question_answer: str) -> str:
    """The answer to the QUESTION step `step` (a task_steps row), taken alone: a run that answers more than one
    question uses `UnattendedUser`, which also bounds the retries."""
    kind = (step.get("metadata") or {}).get("kind")
    return WORKFLOW_QUESTION_ANSWERS.get(kind, own_question_answer) if isinstance(kind, str) else own_question_answer


class UnattendedUser:
    """Answers one task's questions as `answer_for` does, except that a phase asked to retry for the
    MAX_RETRIES_PER_PHASE-th time is told to continue: an unattended run must end, and a person who had seen the
    same reply come back twice would move on too."""

    def __init__(self, own_question_answer: str) -> None:
        self.own_question_answer = own_question_answer
        self.retries: Counter[str] = Counter()

    def answer(self, step: Mapping[str, Any]) -> str:
        reply = answer_for(step, self.own_question_answer)
        if reply != "retry":
            return reply
        phase = str(step.get("phase") or "")
        self.retries[phase] += 1
        return "continue" if self.retries[phase] > MAX_RETRIES_PER_PHASE else "retry"
