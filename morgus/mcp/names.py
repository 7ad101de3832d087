"""What the model is shown of an MCP server's tools: `server__tool` names within the OpenAI rules, schemas checked
and bounded. Pure: the listing activity calls it, the tests call it directly.

A server is untrusted input here: its tool names, descriptions and schemas are whatever it sends. A name is made of
`[A-Za-z0-9_-]` (anything else becomes `_`) and cut to 64 characters; a name that then collides, a schema that is
not a JSON object schema or is larger than SCHEMA_MAX_CHARS, and tools beyond MAX_TOOLS are left out with a note.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from morgus.contracts import McpTool, Phase
from morgus.text import clean_json, clean_text

NAME_MAX = 64  # OpenAI's limit for a function name
SEPARATOR = "__"
SCHEMA_MAX_CHARS = 8_000  # one tool's parameters, as JSON
DESCRIPTION_MAX = 1_000
ORIGINAL_MAX = 500  # a server's own tool name, kept to call it
MAX_TOOLS = 64  # across all servers: every schema is sent with every request
_BAD = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{_BAD.sub('_', tool)}"[:NAME_MAX]


def _schema(raw: Any) -> dict[str, Any] | None:
    """The parameters schema as sent to the model, or None when it cannot be one."""
    if not isinstance(raw, dict):
        return None
    try:
        schema = clean_json(raw)
        text = json.dumps(schema, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return None
    if len(text) > SCHEMA_MAX_CHARS or schema.get("type", "object") != "object":
        return None
    schema.setdefault("type", "object")
    schema.pop("title", None)
    return schema


def fixed_tools(
    server: str,
    listed: Iterable[Any],
    *,
    phases: list[Phase],
    timeout_s: float,
    taken: set[str],
) -> tuple[list[McpTool], list[str]]:
    """`listed` are the SDK's Tool objects of one server (name, description, input_schema, annotations); `taken`
    holds the names already given out (other servers' tools), and is updated."""
    tools: list[McpTool] = []
    notes: list[str] = []
    for t in listed:
        original = str(getattr(t, "name", "") or "")
        label = f"tool {original[:100]!r} of MCP server {server!r}"
        if not original.strip() or len(original) > ORIGINAL_MAX or clean_text(original) != original:
            # the call must send the server its own name back unchanged: one we cannot carry is left out
            notes.append(f"{label} is left out: its name is empty, longer than {ORIGINAL_MAX} or not valid text")
            continue
        name = tool_name(server, original)
        if name in taken:
            notes.append(f"{label} is left out: its name {name!r} is already taken")
            continue
        schema = _schema(getattr(t, "input_schema", None))
        if schema is None:
            notes.append(
                f"{label} is left out: its input schema is not a JSON object schema of at most "
                f"{SCHEMA_MAX_CHARS} characters"
            )
            continue
        if len(taken) >= MAX_TOOLS:
            notes.append(f"{label} is left out: at most {MAX_TOOLS} MCP tools are offered in a task")
            continue
        hints = getattr(t, "annotations", None)
        taken.add(name)
        tools.append(
            McpTool(
                name=name,
                server=server,
                tool=original,
                description=clean_text(str(getattr(t, "description", "") or ""))[:DESCRIPTION_MAX],
                parameters=schema,
                phases=phases,
                read_only=bool(getattr(hints, "read_only_hint", False)),
                idempotent=bool(getattr(hints, "idempotent_hint", False)),
                timeout_s=timeout_s,
            )
        )
    return tools, notes
