"""CPU cost of recovering tool calls from hostile model text (red team, issue 11).

Before the fix, 200,000 `{` in a reply took ~6 s (quadratic: the tail was rescanned and every json error counted
lines from the start of the reply) and `[[[[…` raised RecursionError. Now the cost grows linearly and the search
is bounded; the parse also runs off the worker's event loop. Calls written as code (red team 2): 16 unclosed or
nested `file_write(` in 1 MB cost 17 s / 42 s with Python's tokenizer, ~0.07 s with the scanner that replaced it. `python bench/bench_tool_parse.py` (numbers in docs/benchmarks.md)
"""

from __future__ import annotations

import time

from morgus.activities.llm import _tool_params
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
}


def main() -> None:
    tools = _tool_params()
    for name, make in CASES.items():
        for n in (100_000, 1_000_000):
            text = make(n)
            t0 = time.process_time()
            recover_calls(text, tools)
            print(f"{name:24} {len(text):>9} chars  {time.process_time() - t0:6.2f} s CPU")


if __name__ == "__main__":
    main()
