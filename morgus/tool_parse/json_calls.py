"""Calls written as JSON: the shapes of a call object (`name` + `arguments`, `parameters`, a `function` wrapper,
a list of them), their arguments normalised to an object's text, and a bounded search for JSON values in a reply.
Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
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
    ((key, inner),) = value.items()
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
    raw = (
        obj[args_key] if args_key is not None else {k: v for k, v in obj.items() if k not in NAME_KEYS and k != "type"}
    )
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


def decode_at(decoder: json.JSONDecoder, text: str, start: int) -> tuple[Any, int, int]:
    """(value, end, cost) of the JSON value at `start`; raises ValueError (cost in args[1]) if there is none."""
    size, cost = DECODE_WINDOW, 0  # cost: characters parsed (a window that was too small counts whole)
    while True:
        chunk = text[start : start + size]
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


def json_values(text: str, budget: list[int]) -> list[tuple[int, int, Any]]:
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
            value, end, cost = decode_at(decoder, text, start)
        except ValueError as e:
            budget[0] -= e.args[1]
            i = start + 1
            continue
        budget[0] -= cost
        found.append((start, end, value))
        i = end
    return found


def lone_arguments(content: str, tools: Mapping[str, Collection[str]]) -> ParsedCall | None:
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
