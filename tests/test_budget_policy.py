"""The budget policy on its own (morgus/workflows/budget.py): which limit is reached, in what words, and what doubling
raises. No server: the policy is pure; tests/test_llm_layer.py covers it inside a running task."""

from __future__ import annotations

import pytest

from morgus.contracts import Budget, TokenUsage
from morgus.workflows.budget import BudgetPolicy, means_stop


def policy(budget: Budget, tokens: int = 0, cost: float = 0.0, calls: int = 0) -> BudgetPolicy:
    return BudgetPolicy(budget, TokenUsage(total_tokens=tokens, cost_usd=cost), calls)


def test_no_limits_are_never_reached_however_much_is_used():
    p = policy(Budget(), tokens=10**18, cost=1e12, calls=2**62)
    assert p.reason() is None
    assert p.doubled() == Budget()


@pytest.mark.parametrize(
    ("budget", "tokens", "cost", "calls", "reason"),
    [
        (Budget(max_tokens_total=100), 99, 0, 0, None),
        (Budget(max_tokens_total=100), 100, 0, 0, "100 of 100 tokens used"),  # reached at the limit, not after
        (Budget(max_tokens_total=100), 10**15, 0, 0, f"{10**15} of 100 tokens used"),
        (Budget(max_cost_usd=0.5), 0, 0.4999, 0, None),
        (Budget(max_cost_usd=0.5), 0, 0.5, 0, "$0.5000 of $0.5000 spent"),
        (Budget(max_steps=3), 0, 0, 2, None),
        (Budget(max_steps=3), 0, 0, 3, "3 of 3 LLM calls made"),
        (Budget(max_steps=1), 0, 0, 2**62, f"{2**62} of 1 LLM calls made"),
    ],
)
def test_reason_names_the_limit_reached(budget, tokens, cost, calls, reason):
    assert policy(budget, tokens, cost, calls).reason() == reason


def test_tokens_are_reported_before_cost_before_calls():
    b = Budget(max_tokens_total=10, max_cost_usd=1.0, max_steps=1)
    assert policy(b, tokens=10, cost=1.0, calls=1).reason() == "10 of 10 tokens used"
    assert policy(b, tokens=9, cost=1.0, calls=1).reason() == "$1.0000 of $1.0000 spent"
    assert policy(b, tokens=9, cost=0.9, calls=1).reason() == "1 of 1 LLM calls made"


def test_doubling_raises_only_the_limits_reached():
    b = Budget(max_tokens_total=100, max_cost_usd=2.0, max_steps=5)
    assert policy(b, tokens=100, cost=1.0, calls=4).doubled() == Budget(
        max_tokens_total=200, max_cost_usd=2.0, max_steps=5
    )
    assert policy(b, tokens=0, cost=2.5, calls=5).doubled() == Budget(
        max_tokens_total=100, max_cost_usd=4.0, max_steps=10
    )
    # None stays None: doubling never invents a limit
    assert policy(Budget(max_steps=5), tokens=10**9, calls=5).doubled() == Budget(max_steps=10)


def test_one_doubling_may_not_be_enough_when_usage_overshot():
    """The check runs before every call, so the next check asks again rather than letting a runaway go on."""
    p = policy(Budget(max_tokens_total=100), tokens=450)
    raised = p.doubled()
    assert raised.max_tokens_total == 200
    assert BudgetPolicy(raised, p.usage, p.llm_calls).reason() == "450 of 200 tokens used"


def test_huge_limits_double_without_overflow():
    b = Budget(max_tokens_total=2**62, max_steps=2**62)
    assert policy(b, tokens=2**62, calls=2**62).doubled() == Budget(max_tokens_total=2**63, max_steps=2**63)


def test_a_zero_limit_is_refused_by_the_contract_and_never_doubled_by_the_policy():
    with pytest.raises(ValueError):
        Budget(max_tokens_total=0)
    with pytest.raises(ValueError):
        Budget(max_steps=0)
    with pytest.raises(ValueError):
        Budget(max_cost_usd=0)
    zero = Budget.model_construct(max_tokens_total=0, max_cost_usd=None, max_steps=0)
    p = policy(zero)
    assert p.reason() == "0 of 0 tokens used"  # reached before any use
    with pytest.raises(ValueError):  # 0 * 2 is still 0, which the doubled, validated Budget refuses
        p.doubled()


@pytest.mark.parametrize("answer", ["stop", " STOP ", "No", "cancel\n", "abort"])
def test_stop_answers(answer):
    assert means_stop(answer)


@pytest.mark.parametrize("answer", ["", "yes", "double it", "stop it", "don't stop", "nope", "stopp"])
def test_anything_else_raises_the_budget(answer):
    assert not means_stop(answer)
