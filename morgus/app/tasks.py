"""Task operations shared by the CLI (and the HTTP API): start, inspect, answer, send a message, pause, resume,
decide on a call waiting for approval, cancel.

Each raises `TaskOpError` with one sentence a user can act on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from morgus.config import ConfigError, Settings
from morgus.contracts import (
    AnswerSignal,
    ApprovalDecision,
    ApprovalPolicy,
    CancelSignal,
    DecisionResult,
    PauseResult,
    SayMessage,
    SayResult,
    TaskInput,
    TaskResult,
    TaskStatusView,
)
from morgus.ids import new_task_id, normalize_task_ref, workflow_id_for
from morgus.text import clean_text

ANSWER_MAX_CHARS = next(m.max_length for m in AnswerSignal.model_fields["text"].metadata if hasattr(m, "max_length"))


class TaskOpError(ConfigError):
    pass


def default_approvals(settings: Settings) -> ApprovalPolicy:
    """The server's approval policy (MORGUS_APPROVAL_TOOLS, MORGUS_APPROVAL_COMMANDS), for a task that gives none."""
    return ApprovalPolicy(
        tools=[t.strip() for t in settings.approval_tools.split(",") if t.strip()],
        commands=[c.strip() for c in settings.approval_commands.split(",") if c.strip()],
    )


def parse_task_ref(ref: str) -> str:
    try:
        return normalize_task_ref(ref)
    except ValueError:
        raise TaskOpError(f"{ref!r} is not a task id (expected a uuid or task-<uuid>)") from None


async def start_task(client: Client, task: TaskInput, *, task_queue: str, task_id: str | None = None) -> WorkflowHandle:
    task_id = task_id or new_task_id()
    return await client.start_workflow(
        "TaskWorkflow",
        task,
        id=workflow_id_for(task_id),
        task_queue=task_queue,
        result_type=TaskResult,
    )


async def _described(client: Client, task_id: str) -> tuple[WorkflowHandle, Any]:
    handle = client.get_workflow_handle(workflow_id_for(task_id))
    try:
        return handle, await handle.describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise TaskOpError(f"no task with id {task_id}") from None
        raise


async def query_status(client: Client, task_id: str) -> TaskStatusView:
    handle, desc = await _described(client, task_id)
    try:
        return await handle.query("status", result_type=TaskStatusView, rpc_timeout=timedelta(seconds=10))
    except RPCError as e:
        if desc.status == WorkflowExecutionStatus.RUNNING:
            raise TaskOpError(
                f"task {task_id} did not answer its status query ({e.message}); is a worker running? start one with `morgus up`"
            ) from None
        raise TaskOpError(f"task {task_id} has ended ({desc.status.name.lower()})") from None


async def answer_task(client: Client, task_id: str, text: str) -> str:
    """Answer through the workflow's `answer` update, whose validator refuses an answer the task is not
    waiting for (a signal would be dropped silently). Returns the question that was answered."""
    if not text.strip():
        raise TaskOpError("the answer is empty; give the text to send to the agent")
    try:
        # A lone surrogate (from a JSON body's "\ud800") cannot be sent; the store would replace it anyway.
        answer = AnswerSignal(text=clean_text(text))
    except ValidationError:
        raise TaskOpError(f"the answer is too long (at most {ANSWER_MAX_CHARS} characters)") from None
    handle, desc = await _described(client, task_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise TaskOpError(f"task {task_id} has ended ({desc.status.name.lower()}); there is nothing to answer")
    await query_status(client, task_id)  # fails fast, with a sentence, when no worker is running
    try:
        return await handle.execute_update("answer", answer, result_type=str)
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        raise TaskOpError(getattr(cause, "message", None) or str(cause or e)) from None


async def say_task(client: Client, task_id: str, text: str) -> SayResult:
    """Send a message through the workflow's `say` update: the answer if the task waits for one, else read by the
    model at its next turn. The validator refuses it when the task is ending or too many messages wait."""
    if not text.strip():
        raise TaskOpError("the message is empty; give the text to send to the agent")
    try:
        message = SayMessage(text=clean_text(text))
    except ValidationError:
        raise TaskOpError(f"the message is too long (at most {ANSWER_MAX_CHARS} characters)") from None
    handle, desc = await _described(client, task_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise TaskOpError(
            f"task {task_id} has ended ({desc.status.name.lower()}); a message can only be sent to a running task"
        )
    await query_status(client, task_id)  # fails fast, with a sentence, when no worker is running
    try:
        return await handle.execute_update("say", message, result_type=SayResult)
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        raise TaskOpError(getattr(cause, "message", None) or str(cause or e)) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:  # it ended between the check and the update
            raise TaskOpError(f"task {task_id} has ended; a message can only be sent to a running task") from None
        raise


async def _running_update(client: Client, task_id: str, name: str, arg: Any, result_type: type, ended: str) -> Any:
    """Run update `name` on a running task; its validator's refusal (or the task's end) becomes a TaskOpError."""
    handle, desc = await _described(client, task_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise TaskOpError(f"task {task_id} has ended ({desc.status.name.lower()}); {ended}")
    await query_status(client, task_id)  # fails fast, with a sentence, when no worker is running
    try:
        if arg is None:
            return await handle.execute_update(name, result_type=result_type)
        return await handle.execute_update(name, arg, result_type=result_type)
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        raise TaskOpError(getattr(cause, "message", None) or str(cause or e)) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:  # it ended between the check and the update
            raise TaskOpError(f"task {task_id} has ended; {ended}") from None
        raise


async def pause_task(client: Client, task_id: str) -> PauseResult:
    """Pause through the `pause` update: no LLM or tool call starts until `resume_task`; the running one finishes."""
    return await _running_update(client, task_id, "pause", None, PauseResult, "there is nothing to pause")


async def resume_task(client: Client, task_id: str) -> PauseResult:
    return await _running_update(client, task_id, "resume", None, PauseResult, "there is nothing to resume")


async def decide_task(
    client: Client, task_id: str, decision: str, *, call_id: str | None = None, reason: str = ""
) -> DecisionResult:
    """Decide on the call waiting for approval through the `decide` update (its validator refuses a call that is
    not waiting). Without `call_id`, the call waiting is asked of the task (the `status` query)."""
    if call_id is None:
        _, desc = await _described(client, task_id)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise TaskOpError(f"task {task_id} has ended ({desc.status.name.lower()}); there is nothing to approve")
        status = await query_status(client, task_id)
        if status.pending_approval is None:
            raise TaskOpError(f"task {task_id} has no call waiting for approval")
        call_id = status.pending_approval.call_id
    try:
        body = ApprovalDecision(call_id=call_id, decision=decision, reason=clean_text(reason))
    except ValidationError as e:
        raise TaskOpError(f"invalid decision: {e.errors()[0]['msg']}") from None
    return await _running_update(client, task_id, "decide", body, DecisionResult, "there is nothing to approve")


async def cancel_task(client: Client, task_id: str, reason: str | None = None) -> None:
    handle, desc = await _described(client, task_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise TaskOpError(f"task {task_id} has already ended ({desc.status.name.lower()})")
    await handle.signal("cancel", CancelSignal(reason=reason or "cancelled by user"))
