"""Tools the agent can call. Importing this package registers them all in `REGISTRY`."""

from morgus.activities.tools import deploy, files, git, memory, shell, user, web  # noqa: F401  (registration side effect)
from morgus.activities.tools.registry import REGISTRY, ToolContext, ToolOutput, ToolSpec, tool
from morgus.activities.tools.workspace import ToolError

__all__ = ["REGISTRY", "ToolContext", "ToolOutput", "ToolSpec", "ToolError", "tool"]
