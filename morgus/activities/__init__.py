"""Activities: every side effect of a task (LLM calls, tools, sandboxes, projection) happens here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from morgus.activities.capabilities import CapabilityActivities
from morgus.activities.llm import LlmActivities
from morgus.activities.mcp import McpActivities
from morgus.activities.memory import MemoryActivities
from morgus.activities.projection import ProjectionActivities
from morgus.activities.sandbox import SandboxActivities
from morgus.activities.tool_runner import ToolActivities
from morgus.config import Settings
from morgus.db.store import Store


@dataclass
class ActivitySets:
    shared: list[Callable[..., Any]]  # any worker: LLM, projection, file tools, sandbox creation
    host: list[Callable[..., Any]]  # only the worker that owns the sandbox: its supervisor, its tools


def build_activities(store: Store, settings: Settings, sandbox: SandboxActivities) -> ActivitySets:
    llm = LlmActivities(store, settings)
    projection = ProjectionActivities(store, settings)
    tools = ToolActivities(store, settings, backend=sandbox.backend)
    mcp = McpActivities(settings, tools)
    memory = MemoryActivities(store, settings)
    return ActivitySets(
        shared=[
            llm.llm_call,
            llm.condense,
            projection.project,
            CapabilityActivities(settings).task_capabilities,
            sandbox.create,
            sandbox.destroy,
            *tools.activities(sandbox=False),
            mcp.mcp_tools,
            mcp.mcp_call,
            memory.recall,
            memory.distil,
        ],
        host=[sandbox.supervise, sandbox.destroy, *tools.activities(sandbox=True)],
    )
