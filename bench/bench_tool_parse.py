"""CPU cost of recovering tool calls from hostile model text (red team, issue 11).

Before the fix, 200,000 `{` in a reply took ~6 s (quadratic: the tail was rescanned and every json error counted
lines from the start of the reply) and `[[[[…` raised RecursionError. Now the cost grows linearly and the search
is bounded; the parse also runs off the worker's event loop. Calls written as code (red team 2): 16 unclosed or
nested `file_write(` in 1 MB cost 17 s / 42 s with Python's tokenizer, ~0.07 s with the scanner that replaced it. `python bench/bench_tool_parse.py` (numbers in docs/benchmarks.md)
"""

from __future__ import annotations

import time

from morgus.activities.llm_reply import _tool_params
from morgus.contracts import Phase
from morgus.reply_text import drop_other_phase_text
from morgus.tool_parse import recover_calls

CASES = {
    "x{ * n": lambda n: "x{" * n,
    "<tool_call>{ * n/4": lambda n: "<tool_call>{" * (n // 4),
    '{"a":"{ * n/6': lambda n: '{"a":"{' * (n // 6),
    "[ * 900 + 0, blocks": lambda n: ("[" * 900 + "0," * 1000) * (n // 2900),
    "[ * n (deep)": lambda n: "[" * n,
    # calls written as code (red team 2): unclosed, nested, huge literal, unterminated multi-line string
    "16 x file_write( unclosed": lambda n: ("file_write(" + "a " * 1000 + "\n") * 16 + "x = 1\n" * (n // 6),
    "file_write([ * 16 + 0,": lambda n: "file_write([" * 16 + "0," * (n // 2) + "x" + "])" * 16,
    "file_write('a', [0,…])": lambda n: "file_write('a', [" + "0," * (n // 2) + "])",
    '16 x file_write("a", """x…': lambda n: ('file_write("a", """' + "x\n" * (n // 32)) * 16,
    # name: values (session 4): an unclosed string, a long bare word
    'file_write: a, "x… unclosed': lambda n: 'file_write: a, "' + "x" * n,
    "file_write: aaaa…": lambda n: "file_write: " + "a" * n,
}
# text written in Morgus's voice (morgus/reply_text.py): blank runs around markdown, 5 s per MB before possessive loops
PHASE_TEXT_CASES = {
    "phase: + 1000 blanks lines": lambda n: ("phase:" + " " * 1000 + "\n") * (n // 1007),
    "phase*** + blanks lines": lambda n: ("phase" + "*" * 1000 + " " * 1000 + "\n") * (n // 2006),
}


def main() -> None:
    tools = _tool_params()
    for name, make in CASES.items():
        for n in (100_000, 1_000_000):
            text = make(n)
            t0 = time.process_time()
            recover_calls(text, tools)
            print(f"{name:24} {len(text):>9} chars  {time.process_time() - t0:6.2f} s CPU")
    for name, make in PHASE_TEXT_CASES.items():
        for n in (100_000, 1_000_000):
            text = make(n)
            t0 = time.process_time()
            drop_other_phase_text(text, Phase.BUILD)
            print(f"{name:24} {len(text):>9} chars  {time.process_time() - t0:6.2f} s CPU")


if __name__ == "__main__":
    main()
