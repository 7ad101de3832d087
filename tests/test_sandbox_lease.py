"""The sandbox lease on its own (morgus/workflows/sandbox_lease.py): when a held sandbox is usable, what dropping,
handing over and releasing do to it and its supervisor. No server: supervisors are plain asyncio futures (what
an activity handle is); tests/test_sandbox.py covers a lost sandbox worker inside a running task."""

from __future__ import annotations

import asyncio

from morgus.contracts import ResumeState, SandboxRef
from morgus.workflows.sandbox_lease import SandboxLease

REF = SandboxRef(name="morgus-t1", host_queue="morgus-host-a", backend="docker")


def held() -> tuple[ResumeState, SandboxLease]:
    """A lease holding REF, and the state a continue-as-new would carry."""
    state = ResumeState()
    lease = SandboxLease(state)
    lease.hold(REF)
    return state, lease


def supervise(lease: SandboxLease) -> asyncio.Future[str]:
    """A supervisor for the held sandbox: a plain future, which is what an activity handle is."""
    supervisor: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    lease.supervised_by(supervisor)
    return supervisor


async def test_nothing_held_is_nothing_usable_and_nothing_to_release():
    lease = SandboxLease(ResumeState())
    assert lease.ref is None and lease.usable() is None
    assert lease.release() is None
    lease.drop()  # dropping nothing is harmless
    lease.hand_over()
    assert lease.supervisor is None


async def test_a_held_sandbox_is_usable_while_its_supervisor_runs():
    state, lease = held()
    assert state.sandbox == REF  # kept in the carried state
    assert lease.usable() == REF  # not yet supervised (a resumed run before its supervisor starts): usable
    supervisor = supervise(lease)
    assert lease.usable() == REF
    supervisor.set_result("worker gone")
    assert lease.usable() is None  # the supervisor ended: its host's worker is gone
    assert lease.ref == REF  # still held until dropped


async def test_drop_cancels_a_running_supervisor_and_forgets_the_sandbox():
    state, lease = held()
    supervisor = supervise(lease)
    lease.drop()
    assert supervisor.cancelled()
    assert lease.supervisor is None and state.sandbox is None and lease.usable() is None


async def test_drop_leaves_an_ended_supervisor_alone():
    _, lease = held()
    supervisor = supervise(lease)
    supervisor.set_result("ended")
    lease.drop()
    assert not supervisor.cancelled() and supervisor.result() == "ended"


async def test_hand_over_keeps_the_sandbox_for_the_next_run():
    state, lease = held()
    supervisor = supervise(lease)
    lease.hand_over()
    assert supervisor.cancelled()
    carried = ResumeState.model_validate_json(state.model_dump_json())  # what continue-as-new carries
    next_run = SandboxLease(carried)
    assert next_run.ref == REF and next_run.usable() == REF and next_run.supervisor is None


async def test_release_returns_the_sandbox_and_its_own_queue_first_then_the_shared_one():
    state, lease = held()
    supervisor = supervise(lease)
    assert lease.release() == (REF, ("morgus-host-a", None))
    assert supervisor.cancelled() and state.sandbox is None
    assert lease.release() is None  # released once
