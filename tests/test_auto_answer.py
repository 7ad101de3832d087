"""morgus/app/auto_answer.py: what the demo, the evaluation suite and the smoke test answer, by question kind."""

from morgus.app.auto_answer import answer_for


def test_workflow_questions_are_answered_by_kind_and_the_agents_own_with_the_runs_answer():
    assert answer_for({"content": "BUILD produced no file…", "metadata": {"kind": "no_work"}}, "blue") == "retry"
    assert answer_for({"metadata": {"kind": "loop"}}, "blue") == "move on"
    assert answer_for({"metadata": {"kind": "iteration_cap"}}, "blue") == "move on"
    assert answer_for({"metadata": {"kind": "budget"}}, "blue") == "stop"
    assert answer_for({"metadata": {"tool_call_id": "c1"}}, "blue") == "blue"  # ask_user
    for odd in (None, {}, {"kind": None}, {"kind": ["loop"]}, {"kind": "unknown"}):
        assert answer_for({"metadata": odd}, "blue") == "blue"


def test_an_unattended_user_retries_a_phase_twice_then_goes_on():
    from morgus.app.auto_answer import UnattendedUser

    user = UnattendedUser("blue")
    no_work = {"metadata": {"kind": "no_work"}}
    assert [user.answer({**no_work, "phase": "EXECUTE"}) for _ in range(4)] == [
        "retry",
        "retry",
        "continue",
        "continue",
    ]
    assert user.answer({**no_work, "phase": "BUILD"}) == "retry"  # counted per phase
    assert user.answer({"metadata": {"kind": "loop"}, "phase": "BUILD"}) == "move on"
    assert user.answer({"metadata": {"tool_call_id": "c1"}, "phase": "BUILD"}) == "blue"
