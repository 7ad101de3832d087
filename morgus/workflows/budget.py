"""The budget policy of a task: whether its limits are reached, and what "raise it" means.

One job: given the limits (`Budget`) and what the task has used (`TokenUsage`, LLM calls), say in one sentence which
limit is reached, and compute the doubled limits the user agrees to by answering anything but 'stop'. It is pure
(no Temporal call, no clock, no I/O) so the workflow stays deterministic and the policy is tested without a server;
the numbers it reads live in `ResumeState` (`usage`, `llm_calls`, `budget`), so continue-as-new carries them.
"""

from __future__ import annotations

from dataclasses import dataclass

from morgus.contracts import Budget, TokenUsage

# Answers to the budget question that end the task (compared whole, case-insensitive, after trimming).
STOP_ANSWERS = ("stop", "no", "cancel", "abort")


@dataclass(frozen=True)
class BudgetPolicy:
    """The limits and what was used, at one moment. Checked before every LLM call, so a budget is overshot by at
    most one call."""

    budget: Budget
    usage: TokenUsage
    llm_calls: int

    def tokens_reached(self) -> bool:
        limit = self.budget.max_tokens_total
        return limit is not None and self.usage.total_tokens >= limit

    def cost_reached(self) -> bool:
        limit = self.budget.max_cost_usd
        return limit is not None and self.usage.cost_usd >= limit

    def steps_reached(self) -> bool:
        limit = self.budget.max_steps
        return limit is not None and self.llm_calls >= limit

    def reason(self) -> str | None:
        """The first limit reached (tokens, then cost, then LLM calls) as words for the user; None: go on."""
        b, u = self.budget, self.usage
        if self.tokens_reached():
            return f"{u.total_tokens} of {b.max_tokens_total} tokens used"
        if self.cost_reached():
            return f"${u.cost_usd:.4f} of ${b.max_cost_usd:.4f} spent"
        if self.steps_reached():
            return f"{self.llm_calls} of {b.max_steps} LLM calls made"
        return None

    def doubled(self) -> Budget:
        """Every limit that is reached, doubled; the others unchanged. The result is validated like any `Budget`:
        a limit of 0, which only `model_construct` can build (inputs and signals are validated), raises."""
        b = self.budget
        return Budget(
            max_tokens_total=b.max_tokens_total * 2
            if b.max_tokens_total and self.tokens_reached()
            else b.max_tokens_total,
            max_cost_usd=b.max_cost_usd * 2 if b.max_cost_usd and self.cost_reached() else b.max_cost_usd,
            max_steps=b.max_steps * 2 if b.max_steps and self.steps_reached() else b.max_steps,
        )


def means_stop(answer: str) -> bool:
    """The user's answer to the budget question ends the task."""
    return answer.strip().lower() in STOP_ANSWERS
