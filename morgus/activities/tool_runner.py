"""Runs one tool call as one activity (named `tool:<name>` so the Temporal UI shows which tool ran).

Bad calls (unknown tool, arguments that are not JSON or do not fit the schema, a path outside the workspace) come
back to the model as an error result. The result is stored in the conversation with its steps in one
transaction; a retried activity that finds its result already stored returns it without running the tool again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio import activity

from morgus.activities.common import activity_store, heartbeating
from morgus.activities.live import LiveStream
from morgus.activities.tools import REGISTRY, ToolContext, ToolError, ToolOutput, ToolSpec, workspace_state
from morgus.config import Settings
from morgus.contracts import ChatMessage, StepRecord, StepType, ToolOutcome, ToolRequest
from morgus.db.store import Store
from morgus.ids import digest
from morgus.log import activity_logger
from morgus.text import clean_json, clean_text

RESULT_STEP_MAX = 4_000
PREVIEW_MAX = 300
# Tools that change the workspace whenever they succeed, and tools whose effect is measured (a command may or may
# not write): the workflow ends BUILD only once something changed.
WRITES_WORKSPACE = frozenset({"file_write"})
# Tools whose output is shown as it runs (the live view, morgus/activities/live.py)
LIVE_OUTPUT = frozenset({"shell_exec"})
MAY_WRITE_WORKSPACE = frozenset({"shell_exec"})


def _schema_errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in e.errors())


def parse_arguments(spec: ToolSpec, raw: str) -> Any:
    """Decode and validate a tool call's arguments; a ToolError tells the model exactly what was wrong."""
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as e:
        raise ToolError(
            f"arguments for {spec.name} are not valid JSON ({e.msg} at position {e.pos}); send a JSON object"
        ) from None
    except RecursionError:  # `[[[[…` from the model: an answer, not a crashed activity retried until the task fails
        raise ToolError(f"arguments for {spec.name} are nested too deeply; send a flat JSON object") from None
    if not isinstance(data, dict):
        raise ToolError(f"arguments for {spec.name} must be a JSON object")
    try:
        # A NUL or a lone surrogate ("\\u0000", "\\ud800") in a path, a command or a file's text would crash the
        # tool (embedded null byte, unencodable text) instead of giving the model an answer: U+FFFD instead.
        return spec.args.model_validate(clean_json(data))
    except ValidationError as e:
        raise ToolError(f"arguments for {spec.name} do not match its schema: {_schema_errors(e)}") from None
    except RecursionError:  # decodable, but too deep for clean_json's walk
        raise ToolError(f"arguments for {spec.name} are nested too deeply; send a flat JSON object") from None


class ToolActivities:
    def __init__(self, store: Store, settings: Settings, backend: Any = None) -> None:
        self.store = activity_store(store, settings)
        self.live_store = store  # live output is best effort: it never waits out a database outage
        self.settings = settings
        self.backend = backend  # this worker's sandbox backend, for sandbox tools

    def activities(self, *, sandbox: bool) -> list[Callable[..., Any]]:
        """One activity per registered tool (ask_user is the workflow's own); sandbox tools or the others."""
        return [
            self._activity_for(spec) for spec in REGISTRY.values() if spec.run is not None and spec.sandbox == sandbox
        ]

    def _activity_for(self, spec: ToolSpec) -> Callable[..., Any]:
        async def run_tool(req: ToolRequest) -> ToolOutcome:
            return await self.execute(spec, req)

        run_tool.__name__ = f"tool_{spec.name}"
        return activity.defn(name=spec.activity_name)(run_tool)

    async def execute(self, spec: ToolSpec, req: ToolRequest) -> ToolOutcome:
        log = activity_logger(req.task_id).bind(tool=spec.name, call_id=req.call.id)

        done = await self.store.get_message(req.task_id, req.result_seq)
        if done is not None and done.tool_call_id == req.call.id:
            log.info("tool result already stored; not running the tool again")
            return ToolOutcome(
                ok=bool(done.meta.get("ok", True)),
                preview=(done.content or "")[:PREVIEW_MAX],
                steps_written=int(done.meta.get("steps_written", 1)),
                digest=digest(done.content or ""),
                changed=bool(done.meta.get("changed", False)),
                ran=bool(done.meta.get("ran", False)),
                extra_steps=[StepRecord.model_validate(s) for s in done.meta.get("extra_steps", [])],
            )

        raw = req.call.arguments
        if raw is None:
            holder = await self.store.get_message(req.task_id, req.assistant_seq)
            raw = holder.full_arguments(req.call.id) if holder else ""

        ctx = ToolContext(
            task_id=req.task_id,
            phase=req.phase,
            settings=self.settings,
            call_id=req.call.id,
            heartbeat=activity.heartbeat,
            sandbox=req.sandbox,
            backend=self.backend,
            repo_url=req.repo_url,
            store=self.store,
        )
        root = self.settings.workspace_for(req.task_id)
        before: str | None = None
        ran = False
        try:
            args = parse_arguments(spec, raw)
            assert spec.run is not None
            if spec.name in MAY_WRITE_WORKSPACE:
                before = await asyncio.to_thread(workspace_state.fingerprint, root)
            if spec.name in LIVE_OUTPUT:
                ctx.live = LiveStream(
                    self.live_store,
                    task_id=req.task_id,
                    seq=req.step_seq,
                    kind="shell",
                    phase=req.phase.value,
                    attempt=activity.info().attempt,
                )
            async with heartbeating(), ctx.live or contextlib.nullcontext():
                ran = True
                result = await spec.run(ctx, args)
            output = result if isinstance(result, ToolOutput) else ToolOutput(content=str(result))
        except ToolError as e:
            output = ToolOutput(content=f"Error: {e}", ok=False)
        changed = output.ok and spec.name in WRITES_WORKSPACE
        if ran and spec.name in MAY_WRITE_WORKSPACE:
            changed = workspace_state.changed(before, await asyncio.to_thread(workspace_state.fingerprint, root))
        # File names and tool text can hold lone surrogates (undecodable bytes): the preview and digest go to
        # Temporal, which cannot encode them, so clean the content here as the store does.
        output.content = clean_text(output.content)
        log.info("tool ran", ok=output.ok)

        extra = [
            StepRecord(seq=-1, phase=req.phase, type=s.type, content=s.content, metadata=s.metadata)
            for s in output.steps
        ]
        steps = [
            StepRecord(
                seq=req.step_seq,
                phase=req.phase,
                type=StepType.TOOL_RESULT,
                content=output.content[:RESULT_STEP_MAX],
                metadata={
                    **output.metadata,
                    "tool": spec.name,
                    "tool_call_id": req.call.id,
                    "ok": output.ok,
                    "chars": len(output.content),
                },
            ),
        ]
        meta: dict[str, Any] = {"ok": output.ok, "tool": spec.name, "changed": changed, "ran": ran}
        if req.defer_extra_steps:  # one step slot: the rest go back to the workflow (kept for a re-delivery)
            meta["extra_steps"] = [s.model_dump(mode="json") for s in extra]
        else:
            steps += [s.model_copy(update={"seq": req.step_seq + 1 + i}) for i, s in enumerate(extra)]
        meta["steps_written"] = len(steps)
        message = ChatMessage(
            seq=req.result_seq, role="tool", tool_call_id=req.call.id, content=output.content, meta=meta
        )
        await self.store.save_tool_result(req.task_id, message, steps, output.artifacts)
        return ToolOutcome(
            ok=output.ok,
            preview=output.content[:PREVIEW_MAX],
            steps_written=len(steps),
            digest=digest(output.content),
            changed=changed,
            ran=ran,
            extra_steps=extra if req.defer_extra_steps else [],
        )
