"""Keeping a long conversation inside the model's context window.

Before a request is sent its size is counted (o200k_base tokens, morgus/tokens.py; characters / 4 where the
tokenizer is missing). Over `MORGUS_CONTEXT_THRESHOLD` of the window: first the results of older tool calls are
elided (in the request only; the stored conversation keeps them), then, if that is not enough, older turns are
condensed into a summary by an LLM call. The system prompt, the phase openings (the task), the plan and the latest
turns are never dropped.

Providers cache a request's prefix, and any edit to an early message breaks the cache for everything after it. So
elision moves in rare, large blocks: a watermark (a message seq, kept in the assistant message's meta) below which
long tool results are elided. It is raised only when a request no longer fits, and then to the start of the latest
KEEP_ON_ELIDE turns, so the next requests extend the same prefix until the window is full again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from morgus.contracts import ChatMessage
from morgus.tokens import count_prompt

# when the watermark rises, the turns it leaves whole: few, so the prefix can grow for many turns before it rises again
KEEP_ON_ELIDE = 2
ELIDE_MIN_CHARS = 200  # shorter tool results are kept: their stub would save nothing
CONDENSE_MARKER = "[morgus:condense]"
CONDENSE_PROMPT = (
    "You condense an AI software agent's working conversation so it can continue with less context. Write a "
    "faithful summary: decisions made, files created or changed, commands run and their outcomes, open problems, "
    "and what the user said. Be specific (paths, names, numbers); no preamble. " + CONDENSE_MARKER
)


@dataclass(frozen=True)
class Condensation:
    upto_seq: int
    summary: str
    turns: int


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """The request's prompt tokens: the counted tokens of its tools and messages plus a few per message for the
    chat template's framing. Only messages not counted before are tokenized (morgus/tokens.py count_prompt), so a
    turn costs what it adds, not the whole conversation again."""
    return count_prompt(messages, tools) + 4 * len(messages)


def is_protected(m: ChatMessage) -> bool:
    return (
        m.role == "system" or (m.role == "user" and (m.content or "").startswith("Phase: ")) or bool(m.meta.get("plan"))
    )


def summary_message(c: Condensation) -> dict[str, Any]:
    return {
        "role": "user",
        "content": f"[condensed: {c.turns} assistant turns] Summary of the earlier work:\n{c.summary}",
    }


def visible(messages: list[ChatMessage], cond: Condensation | None) -> list[ChatMessage]:
    """The messages a request still carries in full once `cond` applies."""
    if cond is None:
        return messages
    return [m for m in messages if m.seq >= cond.upto_seq or is_protected(m)]


def build_request(
    messages: list[ChatMessage], cond: Condensation | None, *, elided_below: int = 0
) -> list[dict[str, Any]]:
    """The request's messages: those `cond` keeps, long tool results below the watermark `elided_below` elided."""
    kept = elide_tool_results_below(visible(messages, cond), elided_below)
    out = [m.to_openai() for m in kept]
    if cond is not None:
        out.insert(1 if out and out[0]["role"] == "system" else 0, summary_message(cond))
    return out


def elide_tool_results_below(messages: list[ChatMessage], watermark: int) -> list[ChatMessage]:
    return [
        m.model_copy(
            update={
                "content": f"[tool result elided to save context ({len(m.content or '')} characters); "
                "call the tool again if you need it]"
            }
        )
        if m.role == "tool" and m.seq < watermark and len(m.content or "") > ELIDE_MIN_CHARS
        else m
        for m in messages
    ]


def elision_watermark(messages: list[ChatMessage]) -> int:
    """The watermark the conversation's latest turns were sent with (it only rises)."""
    return max((int(m.meta.get("elided_below", 0)) for m in messages if m.role == "assistant"), default=0)


class DoesNotFit(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"~{size} tokens exceed {limit}")
        self.size, self.limit = size, limit


def fit_request(
    messages: list[ChatMessage], cond: Condensation | None, tools: list[dict[str, Any]], limit: int
) -> tuple[list[dict[str, Any]], int, int]:
    """The request as sent, its size and the watermark it was built with: the previous turns' watermark if the
    request fits, else raised once; DoesNotFit if even that is over `limit` (the workflow then condenses)."""
    watermark = elision_watermark(messages)
    request = build_request(messages, cond, elided_below=watermark)
    size = estimate_tokens(request, tools)
    if size <= limit:
        return request, size, watermark
    raised = raised_watermark(messages, cond, watermark)
    if raised is not None:
        request = build_request(messages, cond, elided_below=raised)
        size = estimate_tokens(request, tools)
        if size <= limit:
            return request, size, raised
    raise DoesNotFit(size, limit)


def raised_watermark(messages: list[ChatMessage], cond: Condensation | None, current: int) -> int | None:
    """Where the watermark goes when a request no longer fits: the start of the latest KEEP_ON_ELIDE turns, or
    None if that is not above where it is."""
    cut = turn_start(visible(messages, cond), KEEP_ON_ELIDE)
    return cut if cut is not None and cut > current else None


def turn_start(messages: list[ChatMessage], keep_turns: int) -> int | None:
    """The seq of the assistant message that starts the latest `keep_turns` turns (cutting there never separates
    a tool call from its result), or None if there are not that many turns."""
    assistants = [m.seq for m in messages if m.role == "assistant"]
    return assistants[-keep_turns] if len(assistants) >= keep_turns else None


def transcript(messages: list[ChatMessage], previous: Condensation | None, max_chars: int) -> str:
    parts = [f"Earlier summary:\n{previous.summary}"] if previous else []
    for m in messages:
        text = m.content or ""
        if m.tool_calls:
            text += " " + " ".join(f"[calls {c.name}({(c.arguments or '')[:300]})]" for c in m.tool_calls)
        parts.append(f"{m.role}: {text[:1500]}")
    joined = "\n".join(parts)
    if len(joined) > max_chars:  # keep the beginning and the end, which carry the most
        half = max_chars // 2
        joined = joined[:half] + "\n[...]\n" + joined[-half:]
    return joined
