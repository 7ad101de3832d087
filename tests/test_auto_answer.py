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
