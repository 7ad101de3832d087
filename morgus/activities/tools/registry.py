"""The tool registry: adding a tool is one async function plus `@tool(...)`; each runs as its own activity.

A tool gets a `ToolContext` and its validated arguments, and returns text for the model (or a `ToolOutput`
with extra steps/artifacts for the console). Raise `ToolError` for anything the model did wrong: it goes back to
the model as an error result, never as a crash.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from morgus.config import Settings
from morgus.contracts import ArtifactRecord, Phase, SandboxRef, StepType


class ToolArgs(BaseModel):
    """A tool's arguments as the model wrote them: a name the tool does not take is refused with a message, not
    silently dropped (a misspelt `contents` must not write an empty file)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ToolContext:
    task_id: str
    phase: Phase
    settings: Settings
    call_id: str = ""
    heartbeat: Callable[..., None] = lambda *a: None
    sandbox: SandboxRef | None = None
    backend: Any = None  # sandbox.base.SandboxBackend of this worker, for sandbox tools
    memory_mb: int = 1024
    repo_url: str | None = None
    live: Any = None  # morgus.activities.live.LiveStream: where a tool's output goes as it runs (shell_exec)
    store: Any = None  # db.store.Store of the activities (memory_search)

    @property
    def workspace(self) -> Path:
        # One mkdir on the local disk, on the event loop: cheap enough not to need a thread.
        path = self.settings.workspace_for(self.task_id)
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class ExtraStep:
    type: StepType
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolOutput:
    content: str
    ok: bool = True
    steps: list[ExtraStep] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    # more metadata of the TOOL_RESULT step, for the console (file_write's diff); the model never reads it
    metadata: dict[str, Any] = field(default_factory=dict)


ToolFn = Callable[[ToolContext, Any], Awaitable["ToolOutput | str"]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    run: ToolFn | None  # None: the workflow handles it (ask_user)
    sandbox: bool = False  # runs on the worker that owns the task's sandbox

    @property
    def activity_name(self) -> str:
        return f"tool:{self.name}"

    def openai_schema(self) -> dict[str, Any]:
        """The tool as the model is offered it. Built once per tool: pydantic generates a schema in ~0.3 ms, and every
        LLM call offers every tool (8% of a busy worker's CPU went here). A copy, so no caller can change the next
        request's tools."""
        return copy.deepcopy(_openai_schema(self.name, self.description, self.args))


@functools.cache
def _openai_schema(name: str, description: str, args: type[BaseModel]) -> dict[str, Any]:
    params = args.model_json_schema()
    params.pop("title", None)
    for prop in params.get("properties", {}).values():
        prop.pop("title", None)
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


REGISTRY: dict[str, ToolSpec] = {}


def register(spec: ToolSpec) -> ToolSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"tool {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def tool(name: str, args: type[BaseModel], description: str, *, sandbox: bool = False) -> Callable[[ToolFn], ToolFn]:
    def decorate(fn: ToolFn) -> ToolFn:
        register(ToolSpec(name=name, description=description, args=args, run=fn, sandbox=sandbox))
        return fn

    return decorate
