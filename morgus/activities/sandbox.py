"""Sandbox lifecycle as activities.

`sandbox_create` runs on the shared queue: whichever worker takes it starts the container on its Docker host and
answers with its own host queue. `sandbox_supervise` (heartbeating while the container lives), `sandbox_destroy`
and every tool that touches the container then run on that host queue, so they reach the right Docker engine.
If that worker dies, the supervisor's heartbeat stops, the workflow notices and recreates the sandbox elsewhere
over the same workspace.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from morgus.config import Settings
from morgus.contracts import SandboxCreate, SandboxRef
from morgus.log import activity_logger
from morgus.sandbox.base import SandboxBackend
from morgus.sandbox.pool import NAME_PREFIX as POOLED_PREFIX


class SandboxActivities:
    def __init__(
        self, settings: Settings, backend: SandboxBackend | None, host_queue: str, unavailable: str = ""
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.host_queue = host_queue
        self.unavailable = unavailable
        # Liveness probes get threads of their own: long tool calls (a shell command holds a thread of the shared
        # pool for its whole run) must never queue a supervisor's probe, or its heartbeat, behind them.
        self._probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-probe")

    def _require(self) -> SandboxBackend:
        if self.backend is None:
            raise ApplicationError(f"this worker has no sandbox: {self.unavailable}", type="SandboxUnavailable")
        return self.backend

    @activity.defn(name="sandbox_create")
    async def create(self, req: SandboxCreate) -> SandboxRef:
        backend = self._require()
        workspace = self.settings.workspace_for(req.task_id)
        others = [sb for sb in await asyncio.to_thread(backend.list_managed) if sb.workflow_id != req.workflow_id]
        if len(others) >= self.settings.max_sandboxes:
            # Retryable: Temporal tries again later, and another worker with room may take it first.
            raise ApplicationError(
                f"this host already runs {len(others)} sandboxes (MORGUS_MAX_SANDBOXES)", type="SandboxHostFull"
            )
        name = await asyncio.to_thread(
            backend.ensure, req.task_id, req.workflow_id, workspace, req.options, self.host_queue
        )
        activity_logger(req.task_id).info(
            "sandbox ready",
            sandbox=name,
            backend=backend.name,
            host_queue=self.host_queue,
            pooled=name.startswith(POOLED_PREFIX),
        )
        return SandboxRef(name=name, host_queue=self.host_queue, backend=backend.name, network=req.options.network)

    @activity.defn(name="sandbox_supervise")
    async def supervise(self, ref: SandboxRef) -> str:
        """Heartbeat while the sandbox lives; returns when it is gone, is cancelled when the task no longer needs it."""
        backend = self._require()
        info = activity.info()
        interval = max(0.5, (info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 30) / 3)
        while True:
            if not await asyncio.get_running_loop().run_in_executor(self._probes, backend.alive, ref.name):
                return "gone"
            activity.heartbeat()
            await asyncio.sleep(interval)

    @activity.defn(name="sandbox_destroy")
    async def destroy(self, ref: SandboxRef) -> bool:
        backend = self._require()
        removed = await asyncio.to_thread(backend.remove, ref.name)
        structlog.get_logger().info("sandbox removed", sandbox=ref.name, removed=removed)
        return removed


async def reap_orphans(client: Client, backend: SandboxBackend) -> list[str]:
    """Remove sandboxes whose workflow has closed (or never existed): what a crashed worker left behind."""
    removed = []
    for sb in await asyncio.to_thread(backend.list_managed):
        try:
            desc = await client.get_workflow_handle(sb.workflow_id).describe()
            closed = desc.status != WorkflowExecutionStatus.RUNNING
        except RPCError as e:
            closed = e.status == RPCStatusCode.NOT_FOUND
        if closed and await asyncio.to_thread(backend.remove, sb.name):
            removed.append(sb.name)
    if removed:
        structlog.get_logger().info("reaped orphaned sandboxes", sandboxes=removed)
    return removed
