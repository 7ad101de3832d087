"""Tool calls as real models write them, turned into the OpenAI shape Morgus runs.

Providers with native tool calling return `tool_calls`; many open models (and servers whose chat template does not
match the model's habits) instead write the call into the reply text: a fenced ```json block, a `<tool_call>` tag,
or a bare JSON object, sometimes with `parameters` where `arguments` belongs or with the arguments as a JSON
string; some write a call in Python syntax (`file_write("a.txt", "hi")`, the "pythonic" format of several model
families) or the tool's name followed by its arguments object (`file_write{"path": …}`). This package recognises those shapes, model-agnostically, and only for names of real tools, so prose that
merely contains JSON stays prose. Pure functions: no I/O, unit-tested without a server.

The shapes live in two modules: `json_calls` (call objects and the JSON search) and `code_calls` (calls written as
code); `recover_calls` here tries them in order of confidence and keeps the prose around them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from morgus.tool_parse.code_calls import MAX_CALL_CODE, colon_call, named_calls
from morgus.tool_parse.json_calls import (
    BLOCK_RE,
    DECODE_BUDGET_MIN,
    DECODE_BUDGET_PER_CHAR,
    ParsedCall,
    call_from,
    json_values,
    loads,
    lone_arguments,
    normalise_arguments,
)

__all__ = ["MAX_CALL_CODE", "ParsedCall", "Recovered", "call_from", "loads", "normalise_arguments", "recover_calls"]


@dataclass
class Recovered:
    calls: list[ParsedCall] = field(default_factory=list)
    content: str | None = None  # the prose left once the calls are taken out
    dropped: int = 0  # calls after the first one of a cut-off burst


def recover_calls(content: str | None, tools: Mapping[str, Collection[str]], *, cut_off: bool = False) -> Recovered:
    """Calls written into a reply's text. `tools` maps each known tool name to its argument names.
    `cut_off`: the reply ended at max_tokens, i.e. a burst of calls the model wrote ahead of any result; only its
    first call is kept (the rest were guesses made without seeing what the first one returns)."""
    if not content or not content.strip():
        return Recovered(content=content)
    calls: list[ParsedCall] = []
    spans: list[tuple[int, int]] = []
    budget = [DECODE_BUDGET_MIN + DECODE_BUDGET_PER_CHAR * len(content)]
    # calls written as code first, only to know their spans: JSON inside their string arguments (a file_write of
    # a JSON file, a README with a fenced example) is the file's text, not a call to run
    named = named_calls(content, tools, budget)

    def in_named(start: int) -> bool:
        return any(a < start < b for a, b, _ in named)

    for m in BLOCK_RE.finditer(content):
        if in_named(m.start()):
            continue
        inner = m.group("fenced") if m.group("fenced") is not None else m.group("tagged")
        found = [c for _, _, v in json_values(inner or "", budget) for c in call_from(v, tools)]
        if found:
            calls += found
            spans.append(m.span())
    if not calls:  # a bare object (or several) in the text
        for start, end, value in json_values(content, budget):
            found = [] if in_named(start) else call_from(value, tools)
            if found:
                calls += found
                spans.append((start, end))
    if not calls:  # a call written as code: name(args) or name{json}
        for start, end, call in named:
            calls.append(call)
            spans.append((start, end))
    if not calls:  # the whole reply is one arguments object that only one tool takes
        lone = lone_arguments(content, tools) or colon_call(content, tools, budget)
        if lone is not None:
            return Recovered(calls=[lone])
    if not calls:
        return Recovered(content=content)
    prose, last = [], 0
    for start, end in spans:
        prose.append(content[last:start])
        last = end
    prose.append(content[last:])
    # a fence left empty (its call taken out) and stray tags say nothing; an odd fence left is the opening of a
    # cut-off block; the fences of code shown in prose stay
    left = re.sub(r"```[\w-]*[ \t]*\n\s*```|</?tool_call>", "", "".join(prose))
    if left.count("```") % 2:
        head, _, tail = left.rpartition("```")
        left = head + tail.removeprefix("json")
    rest: str | None = re.sub(r"\n{3,}", "\n\n", left).strip() or None
    dropped = 0
    if cut_off and len(calls) > 1:
        dropped, calls = len(calls) - 1, calls[:1]
    return Recovered(calls=calls, content=rest, dropped=dropped)
