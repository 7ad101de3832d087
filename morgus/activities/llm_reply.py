"""A model's reply, read (morgus/activities/llm.py): its text and tool calls, however the model wrote them (native
`tool_calls`, or calls written into the text: morgus/tool_parse), and the tokens it used.
Pure functions of the reply: unit-tested without a server."""

from __future__ import annotations

import re

from openai.types.chat import ChatCompletion

from morgus.activities.tools import REGISTRY
from morgus.contracts import TokenUsage, ToolCall
from morgus.ids import digest
from morgus.models import ModelInfo
from morgus.reply_text import after_leading_header
from morgus.tool_parse import normalise_arguments, recover_calls


def _tool_params() -> dict[str, tuple[str, ...]]:
    """Each tool's argument names in declaration order (a call written `file_write("a.txt", "hi")` maps its
    positional values in that order)."""
    return {name: tuple(spec.args.model_fields) for name, spec in REGISTRY.items()}


def reply_calls(
    reply: object, finish_reason: str | None, seq: int, offered: list[str]
) -> tuple[str | None, list[ToolCall], dict]:
    """The reply's text and tool calls, whichever way the model wrote them: native `tool_calls` (arguments
    normalised), else calls written into the text (fenced JSON, <tool_call> tags, a bare object). The dict says
    what was recovered, for the step's metadata and the log ({} when the reply needed no help)."""
    params = _tool_params()
    content = getattr(reply, "content", None)
    native = [c for c in (getattr(reply, "tool_calls", None) or []) if getattr(c, "function", None) is not None]
    if native:
        calls = []
        for c in native:
            raw = c.function.arguments or ""
            args = normalise_arguments(raw, params.get(c.function.name)) if raw.strip() else "{}"
            calls.append(ToolCall(id=c.id, name=c.function.name, arguments=args, digest=digest(args)))
        return content, calls, {}
    # only names of real tools count, so JSON in prose (a config file shown to the user) stays prose; a tool
    # of another phase is still taken, so the workflow can tell the model it is not available here
    found = recover_calls(content, params, cut_off=finish_reason == "length")
    if not found.calls and (after := after_leading_header(content)) is not None:
        # the header is dropped with the reply's other Morgus-voice text anyway (drop_other_phase_text)
        found = recover_calls(after, params, cut_off=finish_reason == "length")
    if not found.calls:
        return content, [], {}
    calls = [
        ToolCall(id=f"call_{seq}_{i}", name=c.name, arguments=c.arguments, digest=digest(c.arguments))
        for i, c in enumerate(found.calls)
    ]
    info = {"recovered_calls": len(calls), **({"dropped_calls": found.dropped} if found.dropped else {})}
    if offered and not any(c.name in offered for c in calls):
        info["not_offered"] = True
    return found.content, calls, info


CALL_ID_MAX = 64
_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")  # what the API, the console and the CLI can send back in a decision


def unique_call_ids(calls: list[ToolCall], seen: set[str], seq: int) -> list[ToolCall]:
    """`calls` with ids unique in the task. The ids are the model's (or its server's): one empty, over CALL_ID_MAX
    characters, not of `[A-Za-z0-9_.:-]` (the API refuses a control character in a decision's call id, so such
    a call could never be decided) or already used (in this reply or an earlier one) is replaced by
    `call_{seq}_{i}`. An approval
    decision names a call by its id, so two calls sharing one would share a decision: a repeated `approve` for
    the call the user saw would approve the next one, which they never saw."""
    out = []
    for i, c in enumerate(calls):
        new, n = c.id, 0
        while len(new) > CALL_ID_MAX or not _CALL_ID.match(new) or new in seen:
            new, n = f"call_{seq}_{i}" + (f"_{n}" if n else ""), n + 1
        seen.add(new)
        out.append(c if new == c.id else c.model_copy(update={"id": new}))
    return out


def _with_usage_of(resp: ChatCompletion, earlier: ChatCompletion) -> ChatCompletion:
    """`resp` with the token usage of both calls, so an empty reply asked again is still paid for."""
    a, b = getattr(resp, "usage", None), getattr(earlier, "usage", None)
    if a is None or b is None:
        return resp
    a.prompt_tokens = (a.prompt_tokens or 0) + (b.prompt_tokens or 0)
    a.completion_tokens = (a.completion_tokens or 0) + (b.completion_tokens or 0)
    a.total_tokens = (a.total_tokens or 0) + (b.total_tokens or 0)
    da, db = getattr(a, "prompt_tokens_details", None), getattr(b, "prompt_tokens_details", None)
    if da is not None and db is not None:
        da.cached_tokens = (da.cached_tokens or 0) + (db.cached_tokens or 0)
    return resp


def usage_of(resp: object, info: ModelInfo) -> TokenUsage:
    u = getattr(resp, "usage", None)
    details = getattr(u, "prompt_tokens_details", None)
    usage = TokenUsage(
        prompt_tokens=getattr(u, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(u, "completion_tokens", 0) or 0,
        total_tokens=getattr(u, "total_tokens", 0) or 0,
        cached_tokens=getattr(details, "cached_tokens", 0) or 0,
    )
    return usage.model_copy(update={"cost_usd": round(info.cost(usage), 8)})


def estimated_usage(prompt: int, content: str | None, calls: list[ToolCall], info: ModelInfo) -> TokenUsage:
    """Usage by Morgus's own estimate, for a reply whose server reported none: `prompt` is the request's size as
    counted before sending it (morgus/context.py estimate_tokens), the completion characters / 4."""
    completion = max(1, (len(content or "") + sum(len(c.name) + len(c.arguments or "") for c in calls)) // 4)
    usage = TokenUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return usage.model_copy(update={"cost_usd": round(info.cost(usage), 8)})
