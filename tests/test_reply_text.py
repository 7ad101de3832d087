"""Text a model wrote in Morgus's voice (morgus/reply_text.py): pure, no server."""

from __future__ import annotations

from morgus.contracts import Phase
from morgus.reply_text import drop_other_phase_text


def test_sections_for_other_phases_and_echoes_are_dropped():
    demo = (
        "Wrote `index.html`, `styles.css`, and `script.js` in the site folder.\n\n**Phase: EXECUTE**\nTest the "
        "website on different browsers.\n\n**Phase: FINALIZE**\nReview the website."
    )
    kept = "Wrote `index.html`, `styles.css`, and `script.js` in the site folder."
    assert drop_other_phase_text(demo, Phase.BUILD) == (kept, len(demo) - len(kept))
    echo = "**Phase: EXECUTE**\nRun and test the result by calling tools. Start now: call shell_exec"
    assert drop_other_phase_text(echo, Phase.EXECUTE) == (None, len(echo))
    for header in ("Phase: PLAN", "## Phase - BUILD", "> *Phase*: FINALIZE", "PHASE: RESEARCH", "  phase — EXECUTE"):
        assert drop_other_phase_text(f"done\n{header}\nmore", Phase.EXECUTE)[0] == "done", header


def test_plan_keeps_its_sections_and_prose_about_phases_stays():
    plan = "1. Write index.html.\n\n**Phase: BUILD**\nWrite it.\n\n**Phase: EXECUTE**\nDeploy it."
    assert drop_other_phase_text(plan, Phase.PLAN) == (plan, 0)
    assert drop_other_phase_text("Plan:\n" + plan + "\n**Phase: PLAN**\nDecide", Phase.PLAN)[0] == "Plan:\n" + plan
    for text in (
        "The BUILD phase wrote index.html.",
        "Next phase: BUILD will write it.",
        "Phases: BUILD, EXECUTE",
        "phase: build (lowercase is a word, not our header)",
        "",
        None,
    ):
        assert drop_other_phase_text(text, Phase.BUILD) == (text, 0), text


def test_a_megabyte_of_near_headers_is_read_once():
    """Blank runs around the markdown used to trade characters: 1,000 lines of "phase:" and 1,000 blanks took 5 s
    of CPU (a reply is the model's bytes). Possessive loops read each line once (CPU measured in
    bench/bench_tool_parse.py); here: they stay text."""
    for text in (
        ("phase:" + " " * 1000 + "\n") * 1000,
        ("phase" + "*" * 1000 + " " * 1000 + "\n") * 500,
        ("> " * 1000 + "\n") * 500,
    ):
        assert drop_other_phase_text(text, Phase.BUILD) == (text, 0)
