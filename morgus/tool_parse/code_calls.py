"""Calls written as code: `name(…)` in Python syntax (the "pythonic" format of several model families) and
`name{…}` (the tool's name followed by its arguments object), and a reply that is only `name: value, "value"`. Literal arguments only; bounded cost on hostile text.
Pure functions."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from morgus.tool_parse.json_calls import ParsedCall, decode_at

# At most this many places where a tool's name is followed by `(` or `{` are parsed per reply (each parse reads
# at most to the end of the reply, at C speed).
MAX_NAMED_CANDIDATES = 32
# A call's code outside its string literals (names, numbers, commas, brackets; each string counts 1): real calls
# are a few dozen characters, while `file_write('a', [0,0,0,…])` of 1 MB made ast.parse build a million nodes.
MAX_CALL_CODE = 4096
# One step of scanning Python source for the end of a call: a string literal (any prefix; ''' and """ too), a
# bracket, blanks, a comment, other code; a quote that opens no complete string is `bad`. Possessive loops, so an
# unterminated 1 MB string fails in one linear pass. (Python's tokenize module, used before, is pure Python on
# 3.11: 16 unclosed calls in a 1 MB reply cost 17 s of CPU, 16 nested ones 42 s.)
_PY_STEP = re.compile(
    r"""(?P<str>[rRbBuUfF]{0,2}(?:'''(?:[^'\\]++|\\.|'(?!''))*+'''|\"\"\"(?:[^"\\]++|\\.|"(?!""))*+\"\"\""""
    r"""|'(?:[^'\\\n]++|\\.)*+'|"(?:[^"\\\n]++|\\.)*+"))"""
    r"""|(?P<open>[(\[{])|(?P<close>[)\]}])|(?P<blank>[ \t\f\r\n]+)|(?P<comment>\#[^\n]*)"""
    r"""|(?P<code>\w+|[^\w\s'"\#()\[\]{}])|(?P<bad>.)""",
    re.DOTALL,
)
# Around a Python call, on its line: blanks and backticks (inline code, a fence), a list's bracket, a colon that
# introduces it ("Next step: file_read('a')"), or (between two calls) a comma or semicolon, as in
# `[file_read(path="a"), file_read(path="b")]`.
_CALL_LEAD = re.compile(r"(?:^|[\n\r:])[ \t\f`\[]*\Z")
_CALL_TAIL = re.compile(r"[ \t\f\r`;\]]*(?:\n|\Z)|[ \t]*[,;]")
_CALL_REST = re.compile(r"[ \t\f`;,\]]*")
_CALL_GAP = re.compile(r"[ \t\f\r\n`;,]*")
_LEAD_LOOKBACK = 80  # how far back the lead is looked for: a 1 MB line of mentions costs no scan per mention


def named_calls(
    text: str, tools: Mapping[str, Collection[str]], budget: list[int]
) -> list[tuple[int, int, ParsedCall]]:
    """Calls written as `name(…)` in Python syntax or as `name{…}` (the arguments object right after the name).
    Only literal arguments count (`file_write(path, content)` in prose names variables: not a call), and a call
    with no argument only when it is the whole reply, so a sentence mentioning `file_list()` stays a sentence.
    A Python call counts only on a line of its own (in a code block, in backticks) or after a colon: a sentence
    such as "I wrote it with `file_write("a.txt", "hi")`." describes a call, often one already made, and running
    it would also keep the phase from ending on its summary. `name{…}` is no language's syntax, only a model's
    way to call: it counts anywhere. A candidate that is not a call is skipped whole, so a line inside its string
    (a script that a refused call holds) is never taken for a call."""
    if not tools:
        return []
    name_re = re.compile(
        r"(?<![\w.])(" + "|".join(map(re.escape, sorted(tools, key=len, reverse=True))) + r")[ \t]*([({])"
    )
    found: list[tuple[int, int, ParsedCall]] = []
    pos = 0
    for _ in range(MAX_NAMED_CANDIDATES):
        m = name_re.search(text, pos)
        if m is None or budget[0] <= 0:
            break
        name, opener = m.group(1), m.group(2)
        pos, start = m.end(), m.start()
        if opener == "{":
            try:
                value, end, cost = decode_at(json.JSONDecoder(), text, m.start(2))
            except ValueError as e:
                budget[0] -= e.args[1]
                continue
            budget[0] -= cost
            args = value if isinstance(value, dict) and set(value) <= set(tools[name]) else None
        else:
            end, args = _python_call(text, m.start(), m.start(2), tools[name], budget)
            after_call = bool(found) and _CALL_GAP.fullmatch(text, found[-1][1], m.start()) is not None
            lead = _CALL_LEAD.search(text, max(0, m.start() - _LEAD_LOOKBACK), m.start())
            if not (after_call or lead) or not _CALL_TAIL.match(text, end):
                args = None
            elif after_call:  # the commas and blanks between two calls go with them
                start = found[-1][1]
            elif lead is not None:  # and so do the backticks and the bracket before the call
                start -= len(lead.group().lstrip("\n\r:"))
        pos = max(pos, end)
        if args is None or (not args and text.strip() != text[m.start() : end].strip()):
            continue
        try:  # allow_nan=False: `1e999` is inf, NaN is NaN, neither of which JSON can carry
            call = ParsedCall(name, json.dumps(args, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError, RecursionError):  # a literal JSON cannot carry (bytes, a set, a complex)
            continue
        if opener == "(" and (rest_match := _CALL_REST.match(text, end)) is not None:
            end = rest_match.end()
        found.append((start, end, call))
        pos = end
    return found


def _call_end(text: str, paren: int) -> tuple[int, int]:
    """(end, read): the index just past the bracket that closes the one at `paren`, or -1 when it is not closed,
    is not Python's string syntax or has more than MAX_CALL_CODE of code; and how far it read (the cost)."""
    depth = code = 0
    read = paren
    for m in _PY_STEP.finditer(text, paren):
        kind, read = m.lastgroup, m.end()
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0:
                return read, read - paren
        elif kind == "bad":
            break
        code += 0 if kind == "blank" else len(m.group()) if kind == "code" else 1
        if code > MAX_CALL_CODE:
            break
    return -1, read - paren + 1


def _param_order(params: Collection[str]) -> list[str]:
    """The parameters in the order positional values fill them: the schema's order; none for an unordered set
    (one parameter has only one order)."""
    return list(params) if not isinstance(params, (set, frozenset)) else sorted(params) if len(params) == 1 else []


def _python_call(
    text: str, start: int, paren: int, params: Collection[str], budget: list[int]
) -> tuple[int, dict | None]:
    """(end, arguments) of the Python call `name(…)` at `start`; arguments None when it is not a literal call.
    _call_end only finds where the call may end; ast.parse decides whether it is one."""
    end, read = _call_end(text, paren)
    budget[0] -= read
    if end < 0:
        return paren + 1, None
    try:
        node = ast.parse(text[start:end], mode="eval").body
        if not isinstance(node, ast.Call) or node.keywords and any(k.arg is None for k in node.keywords):
            return end, None
        positional = [ast.literal_eval(a) for a in node.args]
        named = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):  # ValueError: also a lone surrogate
        return end, None
    order = _param_order(params)
    if len(positional) == 1 and isinstance(positional[0], dict) and not named:  # name({"path": …})
        args = positional[0]
    elif len(positional) > len(order):  # more positional values than known parameters (or an unordered set)
        return end, None
    else:
        args = dict(zip(order, positional, strict=False))  # fewer positionals than parameters is fine
        if args.keys() & named.keys():  # file_write("a", path="b"): Python refuses it too
            return end, None
        args |= named
    if not all(isinstance(k, str) and k in params for k in args):
        return end, None
    return end, args


_COLON_LEAD = re.compile(r"[ \t`*]*(\w+)[ \t]*([:,])[ \t]*")
# a value written without quotes: one word of a path or a number (no blank, comma or quote), as in `site/index.html`;
# kept as the text written: only the tool's schema knows a number from a name (`file_write: 2024, "…"` is the file
# 2024, which a JSON number made a type error, and `-0` or `1.50` lost characters), and its arguments model turns
# "30" into 30 where the parameter is a number
_BARE_VALUE = re.compile(r"""[^\s,"'`]+""")
_VALUE_GAP = re.compile(r"[ \t]*")


def colon_call(content: str, tools: Mapping[str, Collection[str]], budget: list[int]) -> ParsedCall | None:
    """A reply that is nothing but `name: value, value…`, the tool's parameters in order: a 1.5B model wrote every
    BUILD call as `file_write: site/index.html, "<!doctype html>…"` and copied it after each retry (docs/eval.md).
    A value is a JSON string (raw newlines allowed) or one bare word (a path, a number); at least one value must be
    quoted, so a one-line report such as "file_write: site/index.html" (how a phase is asked to end) stays prose,
    and the values must run to the end of the reply. `name, value` (a comma after the name, one line) is a call even
    unquoted: the same model answered every EXECUTE retry with "deploy_local, dist", and no report is written so;
    but a bare value that is a tool's name makes the line a list of tools, never a call."""
    text = content.strip().strip("`").strip()
    lead = _COLON_LEAD.match(text)
    if lead is None or lead.group(1) not in tools:
        return None
    name = lead.group(1)
    order = _param_order(tools[name])
    decoder = json.JSONDecoder(strict=False)
    values: list[Any] = []
    quoted, pos = False, lead.end()
    while len(values) < len(order):
        if text.startswith('"', pos):
            try:
                value, pos, cost = decode_at(decoder, text, pos)
            except ValueError as e:
                budget[0] -= e.args[1]
                return None
            budget[0] -= cost
            quoted = True
        elif (bare := _BARE_VALUE.match(text, pos)) is not None:
            value, pos = bare.group(), bare.end()
            if value in tools:  # "git_add, git_commit" is a list of tools (a plan, a report), not a call
                return None
        else:
            return None
        values.append(value)
        pos = _VALUE_GAP.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string too
        if pos == len(text):
            break
        if text[pos] != ",":
            return None
        pos = _VALUE_GAP.match(text, pos + 1).end()  # type: ignore[union-attr]
    if pos != len(text) or not (quoted or (lead.group(2) == "," and "\n" not in text)):
        return None
    try:
        return ParsedCall(name, json.dumps(dict(zip(order, values, strict=False)), ensure_ascii=False))
    except (TypeError, ValueError):  # a lone surrogate from a JSON escape
        return None
