"""MCP activities: list the operator's servers' tools once at task start (`mcp_tools`), and run one call
(`mcp_call`) through the same path as every other tool (morgus/activities/tool_runner.py: stored with its steps,
a retried attempt that finds its result stored does not call again).

Why not `temporalio-mcp` (Temporal's MCP integration, PyPI 0.2.0): its workflow-side proxy returns the whole
`CallToolResult` into the workflow history (a 10 MB reply exceeds Temporal's payload limit and fails the workflow
task), its activities do not heartbeat, and it keeps pooled connections per worker; Morgus stores tool results in
Postgres and gives the workflow only an outcome, so the `mcp` SDK is used inside these activities instead
(docs/tools.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import RootModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from morgus.activities.common import heartbeating
from morgus.activities.tool_runner import ToolActivities
from morgus.activities.tools import ToolContext, ToolError, ToolOutput, ToolSpec
from morgus.config import Settings
from morgus.contracts import McpCallRequest, McpToolList, McpToolsRequest, ToolOutcome
from morgus.log import activity_logger
from morgus.mcp.client import McpUnavailable, call_tool, list_tools
from morgus.mcp.config import McpConfig, load_mcp_config
from morgus.mcp.names import fixed_tools

OUTPUT_CAP = 16_000  # characters the model gets of one result, as for shell_exec


class McpArguments(RootModel[dict[str, Any]]):
    """Whatever JSON object the model sent: the server validates it against its own schema and says what is wrong
    (a root model, so no argument name can shadow a pydantic attribute)."""


def _without_secrets(listed: list[Any], secrets: list[str]) -> tuple[list[Any], int]:
    """The listed tools whose name, description and schema hold none of the server's configured secrets, and how
    many were left out: a listing goes into the workflow history and every LLM request, so a server that names its
    token there must not hand it on."""
    kept = []
    for t in listed:
        try:
            text = json.dumps(
                [getattr(t, "name", ""), getattr(t, "description", ""), getattr(t, "input_schema", None)],
                ensure_ascii=False,
                default=str,
            )
        except (ValueError, TypeError, RecursionError):
            text = ""  # fixed_tools leaves out a schema it cannot read
        raw = f"{getattr(t, 'name', '')}{getattr(t, 'description', '')}{text}"
        if not any(s in raw for s in secrets):
            kept.append(t)
    return kept, len(listed) - len(kept)


class McpActivities:
    def __init__(self, settings: Settings, tools: ToolActivities, config: McpConfig | None = None) -> None:
        self.settings = settings
        self.tools = tools
        # read at worker start: a bad file stops the worker with one line naming the field (ConfigError)
        self.config = config if config is not None else load_mcp_config(settings.mcp_config)
        self.max_bytes = settings.mcp_max_reply_mb * 1024 * 1024

    @activity.defn(name="mcp_tools")
    async def mcp_tools(self, req: McpToolsRequest) -> McpToolList:
        """Every configured server's tools, listed concurrently; a server that does not answer is a note, and its
        tools are simply not offered in this task."""
        log = activity_logger(req.task_id)
        servers = list(self.config.servers.items())
        async with heartbeating():
            listed = await asyncio.gather(
                *(list_tools(name, cfg, self.max_bytes) for name, cfg in servers), return_exceptions=True
            )
        out = McpToolList()
        taken: set[str] = set()
        for (name, cfg), result in zip(servers, listed, strict=True):
            if isinstance(result, McpUnavailable):
                log.warning("mcp server unavailable at task start", server=name, error=str(result))
                out.notes.append(f"{result}; its tools are not offered in this task.")
                continue
            if isinstance(result, BaseException):
                raise result
            result, leaky = _without_secrets(result, cfg.secrets())
            if leaky:
                out.notes.append(
                    f"{leaky} tool(s) of MCP server {name!r} are left out: their listing holds one of the server's "
                    "configured secrets"
                )
            tools, notes = fixed_tools(name, result, phases=cfg.phases, timeout_s=cfg.timeout_s, taken=taken)
            out.tools += tools
            out.notes += notes
        log.info("mcp tools listed", tools=[t.name for t in out.tools], notes=len(out.notes))
        return out

    @activity.defn(name="mcp_call")
    async def mcp_call(self, req: McpCallRequest) -> ToolOutcome:
        async def run(ctx: ToolContext, args: McpArguments) -> ToolOutput:
            cfg = self.config.servers.get(req.server)
            if cfg is None:
                raise ToolError(f"MCP server {req.server!r} is not configured on this worker; the call was not made")
            try:
                result = await call_tool(req.server, cfg, req.tool, args.root, max_bytes=self.max_bytes, cap=OUTPUT_CAP)
            except McpUnavailable as e:
                # an activity failure: retried as the tool's hints allow, then told to the model as a tool error
                raise ApplicationError(str(e), type="McpServerUnavailable") from None
            note = f"\n[output capped at 16 KB of {result.chars} characters]" if result.chars > OUTPUT_CAP else ""
            if result.is_error:
                return ToolOutput(content=f"Error: {req.server}/{req.tool} reported: {result.text}{note}", ok=False)
            return ToolOutput(content=f"{result.text}{note}")

        spec = ToolSpec(name=req.call.name, description="", args=McpArguments, run=run)
        return await self.tools.execute(spec, req)
