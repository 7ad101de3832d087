"""Task operations shared by the CLI (and the HTTP API): start, inspect, answer, cancel.

Each raises `TaskOpError` with one sentence a user can act on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from morgus.config import ConfigError
from morgus.contracts import AnswerSignal, CancelSignal, TaskInput, TaskResult, TaskStatus, TaskStatusView
from morgus.ids import new_task_id, normalize_task_ref, workflow_id_for


class TaskOpError(ConfigError):
    pass


def parse_task_ref(ref: str) -> str:
    try:
        return normalize_task_ref(ref)
    except ValueError:
        raise TaskOpError(f"{ref!r} is not a task id (expected a uuid or task-<uuid>)") from None


async def start_task(client: Client, task: TaskInput, *, task_queue: str, task_id: str | None = None) -> WorkflowHandle:
    task_id = task_id or new_task_id()
    return await client.start_workflow(
        "TaskWorkflow", task, id=workflow_id_for(task_id), task_queue=task_queue, result_type=TaskResult,
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


async def answer_task(client: Client, task_id: str, text: str) -> None:
    if not text.strip():
        raise TaskOpError("the answer is empty; give the text to send to the agent")
    handle, desc = await _described(client, task_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise TaskOpError(f"task {task_id} has ended ({desc.status.name.lower()}); there is nothing to answer")
    status = await query_status(client, task_id)
    if status.status != TaskStatus.waiting_for_input:
        raise TaskOpError(f"task {task_id} is not waiting for input (status: {status.status.value})")
    await handle.signal("answer", AnswerSignal(text=text))


async def cancel_task(client: Client, task_id: str, reason: str | None = None) -> None:
    handle, desc = await _described(client, task_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise TaskOpError(f"task {task_id} has already ended ({desc.status.name.lower()})")
    await handle.signal("cancel", CancelSignal(reason=reason or "cancelled by user"))
