"""Activities: every side effect of a task (LLM calls, tools, projection) happens here, never in a workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.llm import LlmActivities
from activities.projection import ProjectionActivities
from activities.tool_runner import ToolActivities
from db.store import Store
from morgus.config import Settings


def build_activities(store: Store, settings: Settings) -> list[Callable[..., Any]]:
    llm = LlmActivities(store, settings)
    projection = ProjectionActivities(store, settings)
    tools = ToolActivities(store, settings)
    return [llm.llm_call, projection.project, *tools.activities()]
