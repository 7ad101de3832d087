"""A deliberately incompatible TaskWorkflow (a change made without `workflow.patched`), for the replay test."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.common import RawValue

    from morgus.contracts import TaskResult
    from morgus.phases import PhaseSpec
    from morgus.workflows.task import TaskWorkflow


@workflow.defn(name="TaskWorkflow")
class ChangedWithoutPatch(TaskWorkflow):
    @workflow.run
    async def run(self, inp: RawValue = None) -> TaskResult:  # type: ignore[assignment]
        return await super().run(inp)

    async def _start_phase(self, spec: PhaseSpec) -> None:  # the real one minus its projection activity
        self._queue_message("user", spec.opening_message(self._tools(spec)))
        self._state.phase_started = True
        self._state.iteration = 0
