"""A chat completion streamed (morgus/activities/llm.py): the reply's text is handed on as it arrives, for the live
view, and the chunks are put back together into the `ChatCompletion` a non-streamed call would have returned, so
everything after (tool calls written in text, morgus/tool_parse; usage; the step) reads one shape either way.

The accumulator is a pure function of the chunks (unit-tested without a server). OpenAI's protocol: text arrives as
`delta.content` pieces; a tool call as its `index` with `id`, `type` and `function.name` first, then
`function.arguments` pieces under the same index; `finish_reason` in a late chunk; with
`stream_options.include_usage` the last chunk has no choices and carries the usage. Servers differ at the edges,
and those are taken as they come: a name sent whole in every delta is not doubled, a call with no id gets one,
a stream with no usage chunk leaves `usage` unset (the caller estimates it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk


class StreamedReply:
    """The chunks of one streamed completion, put back together."""

    def __init__(self) -> None:
        self.chunks = 0
        self.id = ""
        self.model = ""
        self.created = 0
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; returns the reply text it added (for the live view)."""
        self.chunks += 1
        self.id = self.id or chunk.id or ""
        self.model = chunk.model or self.model
        self.created = self.created or chunk.created or 0
        if chunk.usage is not None:
            self.usage = chunk.usage
        added = ""
        for choice in chunk.choices or []:
            if choice.index != 0:  # we ask for one choice; a server sending more is not read past the first
                continue
            delta = choice.delta
            if delta is not None and delta.content:
                self.content.append(delta.content)
                added += delta.content
            for call in (delta.tool_calls if delta is not None else None) or []:
                slot = self.calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                fn = call.function
                if fn is not None and fn.name and fn.name != slot["name"]:
                    slot["name"] += fn.name
                if fn is not None and fn.arguments:
                    slot["arguments"] += fn.arguments
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return added

    def completion(self) -> ChatCompletion:
        calls = [
            {
                "id": slot["id"] or f"call_{index}",
                "type": "function",
                "function": {"name": slot["name"], "arguments": slot["arguments"]},
            }
            for index, slot in sorted(self.calls.items())
        ]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if calls:
            message["tool_calls"] = calls
        # built as the SDK builds a response it read (leniently: a server's own finish reason is kept, not refused)
        fields: dict[str, Any] = {
            "id": self.id or "streamed",
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": self.usage.model_dump() if self.usage is not None else None,
        }
        return ChatCompletion.construct(**fields)


async def post_completion(client: openai.AsyncOpenAI, body: dict[str, Any]) -> ChatCompletion:
    """POST /chat/completions with the request as Morgus built it (already the wire format), through the SDK's
    documented `client.post` for raw requests. `chat.completions.create()` first walks every message and tool
    schema through its TypedDict transform: ~47 ms of event-loop CPU for a 300-message request, 7.6 ms this way
    (docs/benchmarks.md); the response is parsed, and errors raised, exactly as create() does."""
    return await client.post("/chat/completions", cast_to=ChatCompletion, body=body)


async def stream_completion(
    client: openai.AsyncOpenAI, model: str, messages: list[dict], extra: dict, on_text: Callable[[str], None]
) -> ChatCompletion | None:
    """The completion, streamed; `on_text` gets each piece of reply text as it arrives. None when the server
    answered with no chunk at all (it ignored `stream`, or sent a body that is not Server-Sent Events)."""
    body = {"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}, **extra}
    # client.post, not create(): see post_completion
    stream = await client.post(
        "/chat/completions",
        cast_to=ChatCompletion,
        body=body,
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
    )
    reply = StreamedReply()
    async with stream:
        async for chunk in stream:
            text = reply.add(chunk)
            if text:
                on_text(text)
    return reply.completion() if reply.chunks else None
