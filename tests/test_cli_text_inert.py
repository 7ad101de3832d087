"""What the CLI prints of a task's text is the text (morgus/app/cli/common.py consoles). No server.

A user's message, a model's reply or a file name may contain `:cross_mark:` or `:white_check_mark:`: Rich turns
such codes into emoji even with markup off, so a step could draw the ✗/✓ icons `morgus task show/watch` use for
failed tools and the task's end. The consoles print them as written."""

from __future__ import annotations

from morgus.app.cli.common import err, out
from morgus.app.progress import render_step


def test_emoji_codes_in_a_step_are_printed_as_written():
    step = {"seq": 7, "phase": "BUILD", "type": "USER_MESSAGE", "content": ":cross_mark: build failed :warning:"}
    for console in (out, err):
        with console.capture() as cap:
            console.print(render_step(step), markup=False)
        printed = cap.get()
        assert ":cross_mark: build failed :warning:" in printed and "❌" not in printed and "⚠" not in printed
