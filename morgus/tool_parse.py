"""Tool calls as real models write them, turned into the OpenAI shape Morgus runs.

Providers with native tool calling return `tool_calls`; many open models (and servers whose chat template does not
match the model's habits) instead write the call into the reply text: a fenced ```json block, a `<tool_call>` tag,
or a bare JSON object, sometimes with `parameters` where `arguments` belongs or with the arguments as a JSON
string; some write a call in Python syntax (`file_write("a.txt", "hi")`, the "pythonic" format of several model
families) or the tool's name followed by its arguments object (`file_write{"path": …}`). This module recognises those shapes, model-agnostically, and only for names of real tools, so prose that
merely contains JSON stays prose. Pure functions: no I/O, unit-tested without a server.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# Keys models use for the arguments object, in the order they are preferred.
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input", "params")
NAME_KEYS = ("name", "tool", "tool_name", "function_name")
# A fenced block (``` or ```json …) or a <tool_call> tag; the closing fence/tag may be missing when the reply
# was cut off, so the block then runs to the end of the text.
BLOCK_RE = re.compile(
    r"```[ \t]*(?:json|JSON|tool_call|tool)?[ \t]*\n?(?P<fenced>.*?)(?:```|\Z)"
    r"|<tool_call>(?P<tagged>.*?)(?:</tool_call>|\Z)",
    re.DOTALL,
)
# An object starts `{"` or `{}`: `x{x{…` (code shown in prose) is skipped by the regex instead of each `{` being a
# failed decode (1.4 s of CPU per MB).
JSON_START = re.compile(r'\{(?=[ \t\r\n]*["}])|\[')
# How deep call_from looks for a call inside lists and wrappers; models nest two or three levels at most.
MAX_CALL_DEPTH = 16


def loads(text: str) -> Any:
    """json.loads that also treats JSON nested too deeply for Python's parser as not JSON: a model that writes
    `[[[[…` must get an answer, not crash the activity with a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # JSON text, as the OpenAI API carries it


@dataclass
class Recovered:
    calls: list[ParsedCall] = field(default_factory=list)
    content: str | None = None  # the prose left once the calls are taken out
    dropped: int = 0  # calls after the first one of a cut-off burst


def normalise_arguments(raw: Any, params: Collection[str] | None = None) -> str:
    """Arguments as a JSON object's text. A JSON string holding JSON is decoded; a lone wrapper key
    ({"arguments": {...}} / {"parameters": {...}}) the tool does not itself take is unwrapped. Text that is not
    JSON is passed through unchanged so the tool's validation tells the model what is wrong."""
    if isinstance(raw, str):  # already an object's text: keep the model's own bytes
        try:
            decoded = loads(raw)
        except json.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict) and not _wrapped(decoded, params):
            return raw
    value = raw
    for _ in range(2):  # "arguments": "{\"path\": …}" is a string holding the object
        if not isinstance(value, str):
            break
        text = value.strip()
        if not text:
            return "{}"
        try:
            value = loads(text)
        except json.JSONDecodeError:
            return value if isinstance(raw, str) else json.dumps(raw)
    if value is None:
        return "{}"
    if isinstance(value, dict) and _wrapped(value, params):
        value = next(iter(value.values()))
    return json.dumps(value, ensure_ascii=False)


def _wrapped(value: dict, params: Collection[str] | None) -> bool:
    """{"arguments": {...}} around the real arguments, where the tool has no argument of that name."""
    if len(value) != 1:
        return False
    (key, inner), = value.items()
    return key in ARGUMENT_KEYS and isinstance(inner, dict) and (params is None or key not in params)


def call_from(obj: Any, tools: Mapping[str, Collection[str]], depth: int = 0) -> list[ParsedCall]:
    """The calls a decoded JSON value describes ([] when it is not a call of a known tool)."""
    if depth > MAX_CALL_DEPTH:  # a deeply nested value is data, not a call (and must not exhaust the stack)
        return []
    if isinstance(obj, list):
        return [c for item in obj for c in call_from(item, tools, depth + 1)]
    if not isinstance(obj, dict):
        return []
    if isinstance(obj.get("tool_calls"), list):
        return call_from(obj["tool_calls"], tools, depth + 1)
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {"name": …, "arguments": …}}
        return call_from(obj["function"], tools, depth + 1)
    name = next((obj[k] for k in NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name is None or name not in tools:
        return []
    args_key = next((k for k in ARGUMENT_KEYS if k in obj), None)
    # {"name": "file_read", "path": "x"}: the arguments were written beside the name
    raw = obj[args_key] if args_key is not None else {k: v for k, v in obj.items() if k not in NAME_KEYS and k != "type"}
    try:
        return [ParsedCall(name, normalise_arguments(raw, tools[name]))]
    except RecursionError:  # arguments nested too deeply to encode again: not a call we can run
        return []


# Decoding a candidate starts on a small window of the text and widens it only while the value may continue past
# the window: json's errors compute a line number by counting from the start of the string they were given, so
# decoding every `{` of a long reply against the whole reply was quadratic (200,000 `{` = seconds of CPU).
DECODE_WINDOW = 128
# And the whole search is bounded: a reply built so that many openers each begin a long valid prefix (nested
# `[[[[0,0,0,…` blocks) gives up the search for bare calls rather than the worker's CPU.
DECODE_BUDGET_PER_CHAR = 16
DECODE_BUDGET_MIN = 1_000_000


def _decode_at(decoder: json.JSONDecoder, text: str, start: int) -> tuple[Any, int, int]:
    """(value, end, cost) of the JSON value at `start`; raises ValueError (cost in args[1]) if there is none."""
    size, cost = DECODE_WINDOW, 0  # cost: characters parsed (a window that was too small counts whole)
    while True:
        chunk = text[start:start + size]
        try:
            value, end = decoder.raw_decode(chunk)
            return value, start + end, cost + end
        except json.JSONDecodeError as e:
            # an error at the window's edge (or an unterminated string, which reports where it started) may
            # only mean the window was too small
            if start + size >= len(text) or not (e.pos >= len(chunk) - 1 or e.msg.startswith("Unterminated")):
                raise ValueError("no JSON value here", cost + e.pos + 1) from None
        except RecursionError:  # nested deeper than Python's parser goes: not a value we can use
            raise ValueError("nested too deeply", cost + len(chunk)) from None
        cost += len(chunk)
        size *= 4


def _json_values(text: str, budget: list[int]) -> list[tuple[int, int, Any]]:
    """Every top-level JSON object or array in `text`, with its span; `budget` (characters decoded, shared by
    every search of one reply) is spent, and the search stops when it is gone."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, Any]] = []
    i = 0
    while budget[0] > 0:
        # one regex search for the next opener (two str.find calls rescanned the tail for the absent one)
        m = JSON_START.search(text, i)
        if m is None:
            return found
        start = m.start()
        try:
            value, end, cost = _decode_at(decoder, text, start)
        except ValueError as e:
            budget[0] -= e.args[1]
            i = start + 1
            continue
        budget[0] -= cost
        found.append((start, end, value))
        i = end
    return found


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
    named = _named_calls(content, tools, budget)

    def in_named(start: int) -> bool:
        return any(a < start < b for a, b, _ in named)

    for m in BLOCK_RE.finditer(content):
        if in_named(m.start()):
            continue
        inner = m.group("fenced") if m.group("fenced") is not None else m.group("tagged")
        found = [c for _, _, v in _json_values(inner or "", budget) for c in call_from(v, tools)]
        if found:
            calls += found
            spans.append(m.span())
    if not calls:  # a bare object (or several) in the text
        for start, end, value in _json_values(content, budget):
            found = [] if in_named(start) else call_from(value, tools)
            if found:
                calls += found
                spans.append((start, end))
    if not calls:  # a call written as code: name(args) or name{json}
        for start, end, call in named:
            calls.append(call)
            spans.append((start, end))
    if not calls:  # the whole reply is one arguments object that only one tool takes
        lone = _lone_arguments(content, tools) or _colon_call(content, tools, budget)
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


def _named_calls(text: str, tools: Mapping[str, Collection[str]], budget: list[int]) -> list[tuple[int, int, ParsedCall]]:
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
    name_re = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(tools, key=len, reverse=True)))
                         + r")[ \t]*([({])")
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
                value, end, cost = _decode_at(json.JSONDecoder(), text, m.start(2))
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
        if args is None or (not args and text.strip() != text[m.start():end].strip()):
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


def _python_call(text: str, start: int, paren: int, params: Collection[str],
                 budget: list[int]) -> tuple[int, dict | None]:
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


def _lone_arguments(content: str, tools: Mapping[str, Collection[str]]) -> ParsedCall | None:
    """A reply that is nothing but an arguments object, `{"path": "a.html", "content": "…"}` (fenced or not),
    is a call of the one tool whose parameters hold every key (a 1.5B model answered "Reply now with a file_write
    call (the path and the full content…)" this way, every time). Two tools could take it: not a call."""
    text = content.strip()
    fenced = re.fullmatch(r"```[\w-]*[ \t]*\n?(.*?)\n?```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        return None
    try:
        value = loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not value:
        return None
    keys = set(value)
    takers = [name for name, params in tools.items() if keys <= set(params)]
    if len(takers) != 1:
        return None
    try:
        return ParsedCall(takers[0], json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None


_COLON_LEAD = re.compile(r"[ \t`*]*(\w+)[ \t]*:[ \t]*")
# a value written without quotes: one word of a path or a number (no blank, comma or quote), as in `site/index.html`
_BARE_VALUE = re.compile(r"""[^\s,"'`]+""")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d{0,15})(?:\.\d{1,15})?")
_VALUE_GAP = re.compile(r"[ \t]*")


def _colon_call(content: str, tools: Mapping[str, Collection[str]], budget: list[int]) -> ParsedCall | None:
    """A reply that is nothing but `name: value, value…`, the tool's parameters in order: a 1.5B model wrote every
    BUILD call as `file_write: site/index.html, "<!doctype html>…"` and copied it after each retry (docs/eval.md).
    A value is a JSON string (raw newlines allowed) or one bare word (a path, a number); at least one value must be
    quoted, so a one-line report such as "file_write: site/index.html" (how a phase is asked to end) stays prose,
    and the values must run to the end of the reply."""
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
                value, pos, cost = _decode_at(decoder, text, pos)
            except ValueError as e:
                budget[0] -= e.args[1]
                return None
            budget[0] -= cost
            quoted = True
        elif (bare := _BARE_VALUE.match(text, pos)) is not None:
            value, pos = bare.group(), bare.end()
            if _NUMBER.fullmatch(value):
                value = json.loads(value)
        else:
            return None
        values.append(value)
        pos = _VALUE_GAP.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string too
        if pos == len(text):
            break
        if text[pos] != ",":
            return None
        pos = _VALUE_GAP.match(text, pos + 1).end()  # type: ignore[union-attr]
    if pos != len(text) or not quoted:
        return None
    try:
        return ParsedCall(name, json.dumps(dict(zip(order, values, strict=False)), ensure_ascii=False))
    except (TypeError, ValueError):  # a lone surrogate from a JSON escape
        return None
