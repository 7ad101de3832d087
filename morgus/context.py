"""Keeping a long conversation inside the model's context window.

Before a request is sent its size is estimated (characters / 4: no tokenizer download is possible offline, and
the estimate is conservative for English and code). Over `MORGUS_CONTEXT_THRESHOLD` of the window: first the
results of older tool calls are elided (in the request only; the stored conversation keeps them), then, if that
is not enough, older turns are condensed into a summary by an LLM call. The system prompt, the phase openings
(the task), the plan and the latest turns are never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from morgus.contracts import ChatMessage

KEEP_TURNS = 4  # the latest assistant turns (with their tool results) are always sent in full
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
    return (len(json.dumps(messages, ensure_ascii=False)) + len(json.dumps(tools or []))) // 4 + 4 * len(messages)


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


def build_request(messages: list[ChatMessage], cond: Condensation | None, *, elide: bool) -> list[dict[str, Any]]:
    kept = visible(messages, cond)
    if elide:
        kept = elide_old_tool_results(kept)
    out = [m.to_openai() for m in kept]
    if cond is not None:
        out.insert(1 if out and out[0]["role"] == "system" else 0, summary_message(cond))
    return out


def elide_old_tool_results(messages: list[ChatMessage], keep_turns: int = KEEP_TURNS) -> list[ChatMessage]:
    cut = turn_start(messages, keep_turns)
    if cut is None:
        return messages
    return [
        m.model_copy(
            update={
                "content": f"[tool result elided to save context ({len(m.content or '')} characters); "
                "call the tool again if you need it]"
            }
        )
        if m.role == "tool" and m.seq < cut and len(m.content or "") > 200
        else m
        for m in messages
    ]


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
