"""Intake from the tables: a `pending` row of `tasks` starts its TaskWorkflow, a `task_inputs` row is delivered to it.

So a console that speaks only Supabase (supabase-js inserting rows under RLS, reading them back with Realtime) drives
Morgus with no API server. Runs in the worker and the API processes (MORGUS_INTAKE), any number of them at once:

- Wake-up: the insert triggers NOTIFY `morgus_intake` (migration 011); a notification is only a hint to look at the
  tables, and every MORGUS_INTAKE_SWEEP_S the tables are swept anyway (start-up included), for what a listener missed.
- A task starts exactly once: a process first claims the row (compare-and-set of `started_at`, store.claim_task),
  then starts workflow `task-<row id>` refusing duplicates (a closed run with that id counts too). A claim whose
  process died is taken over after CLAIM_STALE_S, and the second start is refused by Temporal, so nothing runs twice.
  The API claims its own rows when it inserts them. A row whose input is not a valid task becomes `error` with why.
- An input is delivered exactly once, in order per task: one process per task at a time (an advisory lock), the
  oldest pending input first, sent as a Temporal update named by the row's id, then marked `delivered` (with the
  workflow's answer) or `rejected` (with the validator's sentence). Each send is counted in the row first: an input
  found pending with a send counted (its deliverer died between sending and marking) is looked up in the
  workflow's history by that update id and marked from there, not sent twice. A signal (cancel) cannot be refused:
  it is delivered when the workflow is running, and repeating it changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import structlog
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from morgus.config import Settings
from morgus.contracts import AnswerSignal, CancelSignal, SayMessage, SayResult, TaskInput, TaskLimits, TaskResult
from morgus.db.store import Store
from morgus.ids import workflow_id_for

log = structlog.get_logger()

CHANNEL = "morgus_intake"
APPLICATION_NAME = "morgus-intake"
CLAIM_STALE_S = 60.0  # a claim older than this, on a row still pending, is taken over
HISTORY_RUNS = 5  # runs of a task read back to find an update sent before a crash
UPDATE_TIMEOUT = timedelta(seconds=10)  # no worker answering: try again at the next sweep, the others go on
ENDED = ("completed", "error", "cancelled")
_TRANSIENT = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
    RPCStatusCode.INTERNAL,
}


@dataclass(frozen=True)
class InputKind:
    """How a `task_inputs.kind` reaches the workflow: the update (or signal) of that name, its payload's model."""

    name: str
    model: type[BaseModel] | None  # None: the payload is passed as the JSON it is (no argument when it is {})
    signal: bool = False
    result_type: Any = None


# Adding a kind is one line here (the table accepts any lower-case name; an unknown one is rejected with a sentence).
INPUT_KINDS: dict[str, InputKind] = {
    "answer": InputKind("answer", AnswerSignal, result_type=str),
    "say": InputKind("say", SayMessage, result_type=SayResult),
    "cancel": InputKind("cancel", CancelSignal, signal=True),
    # Issue 14's pause/resume/approval updates, sent as updates of the same name with the payload as it is
    # (decide: {"call_id", "decision", "reason"}); until a workflow defines them, Temporal refuses them and the row is
    # rejected with its sentence. TODO(lead): give each its contract model once those updates are merged.
    "pause": InputKind("pause", None),
    "resume": InputKind("resume", None),
    "decide": InputKind("decide", None),
}


class _NotYet(Exception):
    """The input cannot be delivered now (no workflow started yet, Temporal or the worker not answering)."""


def task_input_of(row: dict[str, Any], settings: Settings) -> TaskInput:
    """A row's task, checked exactly as the API checks a POST /api/tasks body. Raises ValidationError."""
    from morgus.app.api_models import TaskCreate

    body = TaskCreate.model_validate(
        {"title": row.get("title") or "", "description": row.get("description") or "", "model": row.get("model")}
    )
    return TaskInput(
        title=body.title,
        description=body.description,
        model=body.model,
        limits=TaskLimits(require_work=settings.require_work),
    )


def _sentence(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


class Intake:
    def __init__(self, settings: Settings, store: Store, client: Client, *, dsn: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.dsn = dsn or settings.dsn
        self.started: list[str] = []  # task ids this instance started (logs, tests)
        self._task: asyncio.Task[None] | None = None
        self._pass_lock = asyncio.Lock()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="morgus-intake")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def __aenter__(self) -> Intake:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, application_name=APPLICATION_NAME
                ) as conn:
                    await conn.execute(f"listen {CHANNEL}")
                    delay = 0.5
                    while True:
                        await self.run_once()  # start-up, each notification, each sweep
                        async for _ in conn.notifies(timeout=self.settings.intake_sweep_s, stop_after=1):
                            pass
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - database or Temporal unreachable: try again, never die
                log.warning("intake: pass failed; retrying", error=type(e).__name__, detail=str(e)[:200], retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def run_once(self) -> None:
        """One pass over both tables."""
        async with self._pass_lock:
            await self.start_pending()
            await self.deliver_inputs()

    # ---------------------------------------------------------------- tasks

    async def start_pending(self) -> None:
        for row in await self.store.pending_tasks(stale_s=CLAIM_STALE_S):
            task_id = str(row["id"])
            try:
                task = task_input_of(row, self.settings)
            except ValidationError as e:
                await self.store.mark_failed_to_start(task_id, f"this task cannot start: {_sentence(e)}")
                log.info("intake: refused a task row", task_id=task_id, reason=_sentence(e))
                continue
            if not await self.store.claim_task(task_id, task.display_title(), stale_s=CLAIM_STALE_S):
                continue  # another process has it
            try:
                await self.client.start_workflow(
                    "TaskWorkflow",
                    task,
                    id=workflow_id_for(task_id),
                    task_queue=self.settings.task_queue,
                    result_type=TaskResult,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    # In the worker process the server hands the first workflow task back in this call's reply, to
                    # this process's worker: no trip through the task queue (issue 15, pickup). Elsewhere (the API)
                    # the SDK leaves it off, as it does when the worker has no free slot.
                    request_eager_start=True,
                )
            except WorkflowAlreadyStartedError:
                continue  # started by the API, the CLI or an earlier claim: once is all
            except Exception as e:  # noqa: BLE001 - Temporal unreachable: the claim goes stale, a later pass retries
                log.warning("intake: could not start a task; will retry", task_id=task_id, error=str(e)[:200])
                continue
            self.started.append(task_id)
            log.info("intake: started a task from its row", task_id=task_id)

    # ---------------------------------------------------------------- inputs

    async def deliver_inputs(self) -> None:
        tasks = await self.store.tasks_with_pending_inputs()
        # Each task on its own: one whose worker does not answer must not hold up the others.
        await asyncio.gather(*(self._deliver_for(str(t["task_id"])) for t in tasks))

    async def _deliver_for(self, task_id: str) -> None:
        try:
            async with self.store.input_lock(task_id) as inputs:
                if inputs is None:
                    return  # another process is delivering this task's inputs
                while (row := await inputs.next()) is not None:
                    try:
                        status, reason, result = await self._deliver(row, inputs.attempt)
                    except _NotYet:
                        return  # keep the order: nothing after it goes first
                    await inputs.mark(row["id"], status, reason=reason, result=result)
                    log.info("intake: input " + status, task_id=task_id, input_id=row["id"], kind=row["kind"])
        except Exception as e:  # noqa: BLE001 - one task's trouble must not stop the others; the next pass retries
            log.warning("intake: delivering inputs failed", task_id=task_id, error=type(e).__name__)

    async def _deliver(self, row: dict[str, Any], attempt: Any) -> tuple[str, str | None, Any]:
        kind = INPUT_KINDS.get(row["kind"])
        if kind is None:
            return "rejected", f"unknown kind {row['kind']!r}; one of {', '.join(INPUT_KINDS)}", None
        if row["task_status"] == "pending":
            raise _NotYet  # its workflow has not started yet
        if row["task_status"] in ENDED:
            return "rejected", f"the task has ended ({row['task_status']})", None
        payload = row["payload"] if isinstance(row["payload"], dict) else None
        if payload is None:
            return "rejected", "payload: must be a JSON object", None
        args: list[Any] = []
        if kind.model is not None:
            try:
                args = [kind.model.model_validate(payload)]
            except ValidationError as e:
                return "rejected", f"payload: {_sentence(e)}", None
        elif payload:
            args = [payload]
        handle = self.client.get_workflow_handle(workflow_id_for(str(row["task_id"])))
        update_id = f"task-input-{row['id']}"
        if not kind.signal and row["attempts"] > 0:
            earlier = await self._earlier_outcome(handle, update_id, kind)
            if earlier is not None:
                return earlier
        await attempt(row["id"])
        try:
            if kind.signal:
                await handle.signal(kind.name, args=args)
                return "delivered", None, None
            result = await handle.execute_update(
                kind.name,
                args=args,
                id=update_id,
                result_type=kind.result_type,
                rpc_timeout=UPDATE_TIMEOUT,
            )
        except WorkflowUpdateFailedError as e:
            return "rejected", getattr(e.cause, "message", None) or str(e.cause or e), None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise _NotYet from None
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return "rejected", "the task has ended (its workflow is not running)", None
            if e.status in _TRANSIENT:
                raise _NotYet from None
            return "rejected", f"Temporal refused it: {e.message[:500]}", None
        return "delivered", None, result.model_dump(mode="json") if isinstance(result, BaseModel) else result

    async def _earlier_outcome(
        self, handle: Any, update_id: str, kind: InputKind
    ) -> tuple[str, str | None, Any] | None:
        """What became of an update sent before a crash, from the workflow's history: its outcome if it completed,
        `_NotYet` while it runs, None if it never arrived (send it). Temporal does not answer a repeated update id
        with the first outcome once that update has completed, so the history is the record; the task continues as
        new at phase ends, so the runs before the current one are read too (a few: the crash was recent)."""
        run_id: str | None = None
        for _ in range(HISTORY_RUNS):
            history = await self.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            accepted = False
            previous = ""
            for event in history.events:
                if event.HasField("workflow_execution_started_event_attributes"):
                    previous = event.workflow_execution_started_event_attributes.continued_execution_run_id
                elif event.HasField("workflow_execution_update_accepted_event_attributes"):
                    meta = event.workflow_execution_update_accepted_event_attributes.accepted_request.meta
                    accepted = accepted or meta.update_id == update_id
                elif event.HasField("workflow_execution_update_completed_event_attributes"):
                    done = event.workflow_execution_update_completed_event_attributes
                    if done.meta.update_id == update_id:
                        return await self._outcome(done.outcome, kind)
            if accepted:
                raise _NotYet  # accepted, still running: its outcome comes later
            if not previous:
                return None
            run_id = previous
        return None

    async def _outcome(self, outcome: Any, kind: InputKind) -> tuple[str, str | None, Any]:
        if outcome.HasField("failure"):
            return "rejected", outcome.failure.message, None
        payloads = list(outcome.success.payloads)
        if not payloads:
            return "delivered", None, None
        types = [kind.result_type] if kind.result_type is not None else None
        (result,) = await self.client.data_converter.decode(payloads, types)
        return "delivered", None, result.model_dump(mode="json") if isinstance(result, BaseModel) else result


@contextlib.asynccontextmanager
async def maybe_intake(settings: Settings, store: Store, client: Client) -> Any:
    """The intake for a worker or API process, when MORGUS_INTAKE is on."""
    if not settings.intake:
        yield None
        return
    async with Intake(settings, store, client) as intake:
        yield intake
