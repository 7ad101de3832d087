"""The task's lease on its sandbox: which sandbox it holds, and whether that sandbox can still be used.

One job: the bookkeeping of the lease — the held `SandboxRef` (kept in `ResumeState.sandbox`, so continue-as-new
carries it) and the handle of the supervisor activity that keeps it alive on its host (not carried: each run starts
its own). A sandbox is usable while it is held and its supervisor has not ended; a supervisor that ended means the
host's worker is gone. The workflow starts the activities (create, supervise, destroy) and hands the results here;
this class only decides and records, so it is deterministic and tested without a server.
"""

from __future__ import annotations

from typing import Protocol

from morgus.contracts import ResumeState, SandboxRef


class Supervisor(Protocol):
    """What the lease needs of the supervisor's activity handle (an asyncio task/future)."""

    def done(self) -> bool: ...

    def cancel(self) -> bool: ...


class SandboxLease:
    def __init__(self, state: ResumeState) -> None:
        self._state = state
        self.supervisor: Supervisor | None = None

    @property
    def ref(self) -> SandboxRef | None:
        """The sandbox held, usable or not."""
        return self._state.sandbox

    def usable(self) -> SandboxRef | None:
        """The sandbox held, if its supervisor (when one was started) is still running; None: create one."""
        if self._state.sandbox is not None and (self.supervisor is None or not self.supervisor.done()):
            return self._state.sandbox
        return None

    def hold(self, ref: SandboxRef) -> None:
        """A sandbox was created for the task."""
        self._state.sandbox = ref

    def supervised_by(self, supervisor: Supervisor) -> None:
        """The activity keeping the held sandbox alive was started."""
        self.supervisor = supervisor

    def drop(self) -> None:
        """Forget the sandbox (its worker is gone, or it is being removed): stop supervising it."""
        if self.supervisor is not None and not self.supervisor.done():
            self.supervisor.cancel()
        self.supervisor = None
        self._state.sandbox = None

    def hand_over(self) -> None:
        """Before continue-as-new: the sandbox stays held, the next run starts its own supervisor."""
        if self.supervisor is not None:
            self.supervisor.cancel()

    def release(self) -> tuple[SandboxRef, tuple[str | None, ...]] | None:
        """Drop the lease for good; returns the sandbox to remove and the task queues to try, in order: its own
        worker's, then the shared one (any worker on the same Docker host). None: no sandbox is held."""
        ref = self._state.sandbox
        if ref is None:
            return None
        self.drop()
        return ref, (ref.host_queue, None)
