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


def test_a_report_that_names_its_phase_keeps_its_content():
    """Found by red-teaming: the reply was dropped whole (and asked again) when a line merely began with the
    phase's name, so a capable model's one-line ending lost everything it said."""
    for text, phase in (
        ("**Phase: BUILD complete.** Wrote index.html and styles.css.", Phase.BUILD),
        ("Phase: EXECUTE done - tests pass, deployed at http://localhost:8080/site/", Phase.EXECUTE),
        ("Wrote the page.\n\nPhase: PLAN: unchanged", Phase.BUILD),
        ("## Phase: FINALIZE - summary\nCommitted abc123.", Phase.FINALIZE),
    ):
        assert drop_other_phase_text(text, phase) == (text, 0), text
    # a header closed by its markdown still opens a section, with its text on the same line
    same_line = "Wrote the page.\n\n**Phase: EXECUTE** Test the website on different browsers."
    assert drop_other_phase_text(same_line, Phase.BUILD)[0] == "Wrote the page."
    assert drop_other_phase_text("Wrote it.\nPhase: EXECUTE.\nTest it.", Phase.BUILD)[0] == "Wrote it."


def test_finalize_keeps_the_users_summary_and_drops_only_an_echo_of_its_opening():
    """FINALIZE's reply is the task's summary: a recap by phase and a title naming FINALIZE were dropped (the
    user got "Task completed." instead of the report)."""
    recap = (
        "Summary\n\n**Phase: RESEARCH** found the menu.\n**Phase: BUILD** wrote index.html.\n"
        "**Phase: EXECUTE** deployed to http://127.0.0.1:8080/sites/t/"
    )
    titled = "## Phase: FINALIZE\n\nCommitted abc123 and told the user. The site is at http://127.0.0.1:8080/."
    for text in (recap, titled):
        assert drop_other_phase_text(text, Phase.FINALIZE) == (text, 0)
    echo = "**Phase: FINALIZE**\nCommit and report by calling tools. Start now: call git_init"
    assert drop_other_phase_text(echo, Phase.FINALIZE) == (None, len(echo))
    assert drop_other_phase_text("Done.\n\n" + echo, Phase.FINALIZE)[0] == "Done."


def test_a_header_inside_a_code_block_is_the_blocks_text():
    config = "The pipeline:\n```yaml\nphase: BUILD\nsteps: [lint, test]\n```\nIt runs on push."
    assert drop_other_phase_text(config, Phase.EXECUTE) == (config, 0)
    after = config + "\n\nPhase: FINALIZE\nReview it."
    assert drop_other_phase_text(after, Phase.EXECUTE)[0] == config


def test_many_headers_in_code_blocks_are_read_once():
    """Fences are counted once over the reply, not from its start at each header (quadratic on 1 MB)."""
    text = "```\nPhase: BUILD\n```\n" * 50_000
    for phase in (Phase.BUILD, Phase.PLAN, Phase.FINALIZE):
        assert drop_other_phase_text(text, phase) == (text, 0)
