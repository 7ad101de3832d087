"""/api/tasks: start, list and inspect tasks, a task's steps, artifacts and live text, answer its question, send it
a message, pause and resume it, decide on a call waiting for approval, cancel it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query

from morgus.app.api_auth import current_owner
from morgus.app.api_deps import (
    ClientDep,
    SettingsDep,
    StoreDep,
    row_or_404,
    task_id_of,
    view,
)
from morgus.app.api_errors import READ_ERRORS, WRITE_ERRORS
from morgus.app.api_models import (
    AnswerBody,
    ApprovalBody,
    ArtifactsView,
    CancelBody,
    DecisionView,
    LiveView,
    MessageBody,
    MessageSentView,
    OkView,
    PauseBody,
    PauseView,
    StepsView,
    TaskCreate,
    TaskDetail,
    TaskPage,
    TaskView,
    check_line,
)
from morgus.config import Settings
from morgus.contracts import Budget, Phase, TaskInput, TaskLimits, TaskStatus
from morgus.models import price_known

MAX_PAGE = 200
PG_INT_MAX = 2**31 - 1

router = APIRouter()


def parse_cursor(cursor: str | None) -> str | None:
    """`next_cursor` is `<created_at ISO>|<task uuid>`; anything else is the client's mistake (422), not ours."""
    if cursor is None:
        return None
    ts, sep, tid = cursor.partition("|")
    try:
        if not sep:
            raise ValueError
        datetime.fromisoformat(ts)
        UUID(tid)
    except ValueError:
        raise ValueError("cursor: not a cursor this API gave out; pass next_cursor from the previous page") from None
    return cursor


def _priced(settings: Settings, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with `price_known` (the model table is read from MORGUS_MODEL_CONFIG once, then cached)."""
    return [
        r
        | {"price_known": price_known(r.get("model"), settings.model, settings.code_model, settings.model_config_file)}
        for r in rows
    ]


@router.post("/tasks", status_code=201, response_model=TaskView, responses=WRITE_ERRORS)
async def create_task(body: TaskCreate, settings: SettingsDep, store: StoreDep, client: ClientDep) -> TaskView:
    from morgus.app.tasks import default_approvals, start_task
    from morgus.ids import new_task_id, workflow_id_for

    task = TaskInput(
        title=body.title,
        description=body.description,
        model=body.model,
        repo_url=body.repo_url,
        budget=Budget(**body.budget.model_dump()),
        limits=TaskLimits(require_work=settings.require_work),
        approvals=body.approvals if body.approvals is not None else default_approvals(settings),
    )
    task_id = new_task_id()
    await store.insert_pending(
        task_id, workflow_id_for(task_id), task.display_title(), task.description, task.model, current_owner()
    )
    try:
        await start_task(client, task, task_queue=settings.task_queue, task_id=task_id)
    except Exception as e:  # noqa: BLE001 - never leave a task "pending" that will never run
        message = f"could not start the task: Temporal refused or is unreachable ({type(e).__name__})"
        await store.mark_failed_to_start(task_id, message)
        raise HTTPException(503, message) from None
    return view(TaskView, await store.fetch_task(task_id))


@router.get("/tasks", response_model=TaskPage, responses=READ_ERRORS)
async def list_tasks(
    store: StoreDep,
    settings: SettingsDep,
    status: TaskStatus | None = None,
    phase: Phase | None = None,
    q: str | None = Query(default=None, max_length=200, description="words in the title or description (no wildcards)"),
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=200, description="next_cursor of the previous page"),
) -> TaskPage:
    try:
        check_line(q, "q")
        parse_cursor(cursor)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    owner = current_owner()  # a signed-in user lists their own tasks; the operator every task
    rows, next_cursor = await store.search_tasks(
        status=status, phase=phase, q=q, limit=limit, cursor=cursor, owner=owner
    )
    counts = await store.count_by_status(owner=owner)
    tasks = await asyncio.to_thread(_priced, settings, rows)
    return view(TaskPage, {"tasks": tasks, "next_cursor": next_cursor, "counts": counts})


@router.get("/tasks/{task_id}", response_model=TaskDetail, responses=READ_ERRORS)
async def get_task(task_id: str, settings: SettingsDep, store: StoreDep) -> TaskDetail:
    tid = task_id_of(task_id)
    [row] = await asyncio.to_thread(_priced, settings, [await row_or_404(store, tid)])
    return view(
        TaskDetail,
        row
        | {"temporal_url": f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/task-{tid}"},
    )


@router.get("/tasks/{task_id}/steps", response_model=StepsView, responses=READ_ERRORS)
async def get_steps(task_id: str, store: StoreDep, after: int = Query(default=-1, ge=-1, le=PG_INT_MAX)) -> StepsView:
    tid = task_id_of(task_id)
    await row_or_404(store, tid)
    return view(StepsView, {"steps": await store.fetch_steps(tid, after=after)})


@router.get("/tasks/{task_id}/artifacts", response_model=ArtifactsView, responses=READ_ERRORS)
async def get_artifacts(task_id: str, store: StoreDep) -> ArtifactsView:
    tid = task_id_of(task_id)
    await row_or_404(store, tid)
    return view(ArtifactsView, {"artifacts": await store.fetch_artifacts(tid)})


@router.get("/tasks/{task_id}/live", response_model=LiveView, responses=READ_ERRORS)
async def get_live(task_id: str, store: StoreDep) -> LiveView:
    """The calls in flight and their text so far (a reply being generated, a command's output as it runs); the
    event stream (`event: live`) carries what follows. Empty when nothing is running."""
    tid = task_id_of(task_id)
    await row_or_404(store, tid)
    return view(LiveView, {"live": await store.live_rows(tid)})


@router.post("/tasks/{task_id}/answer", response_model=OkView, responses=WRITE_ERRORS)
async def answer(task_id: str, body: AnswerBody, store: StoreDep, client: ClientDep) -> OkView:
    from morgus.app.tasks import TaskOpError, answer_task

    tid = task_id_of(task_id)
    await row_or_404(store, tid)
    try:
        await answer_task(client, tid, body.text)
    except TaskOpError as e:
        raise HTTPException(409, str(e)) from None
    return OkView(ok=True)


@router.post("/tasks/{task_id}/messages", status_code=202, response_model=MessageSentView, responses=WRITE_ERRORS)
async def send_message(task_id: str, body: MessageBody, store: StoreDep, client: ClientDep) -> MessageSentView:
    """Steer a running task: the model reads the message at its next turn; a task waiting on the agent's question
    (ask_user) takes it as the answer, one waiting on Morgus's own (`question` in the reply) keeps it for after the
    answer. 409 when the task has ended or too many messages wait."""
    from morgus.app.tasks import TaskOpError, say_task

    tid = task_id_of(task_id)
    row = await row_or_404(store, tid)
    if row["completed_at"] is not None:
        raise HTTPException(
            409, f"task {tid} has ended ({row['status']}); a message can only be sent to a running task"
        )
    try:
        result = await say_task(client, tid, body.text)
    except TaskOpError as e:
        raise HTTPException(409, str(e)) from None
    return MessageSentView(**result.model_dump())


def _running(row: dict, tid: str, what: str) -> None:
    if row["completed_at"] is not None:
        raise HTTPException(409, f"task {tid} has ended ({row['status']}); {what}")


@router.post("/tasks/{task_id}/pause", response_model=PauseView, responses=WRITE_ERRORS)
async def pause(task_id: str, store: StoreDep, client: ClientDep, body: PauseBody | None = None) -> PauseView:
    """Pause a task: no LLM or tool call starts until it is resumed; the running one finishes first. 409 when it
    has ended, is being cancelled or is already paused."""
    from morgus.app.tasks import TaskOpError, pause_task

    tid = task_id_of(task_id)
    _running(await row_or_404(store, tid), tid, "there is nothing to pause")
    try:
        return PauseView(**(await pause_task(client, tid)).model_dump())
    except TaskOpError as e:
        raise HTTPException(409, str(e)) from None


@router.post("/tasks/{task_id}/resume", response_model=PauseView, responses=WRITE_ERRORS)
async def resume(task_id: str, store: StoreDep, client: ClientDep, body: PauseBody | None = None) -> PauseView:
    """Resume a paused task where it stopped. 409 when it is not paused."""
    from morgus.app.tasks import TaskOpError, resume_task

    tid = task_id_of(task_id)
    _running(await row_or_404(store, tid), tid, "there is nothing to resume")
    try:
        return PauseView(**(await resume_task(client, tid)).model_dump())
    except TaskOpError as e:
        raise HTTPException(409, str(e)) from None


@router.post("/tasks/{task_id}/approvals", response_model=DecisionView, responses=WRITE_ERRORS)
async def decide(task_id: str, body: ApprovalBody, store: StoreDep, client: ClientDep) -> DecisionView:
    """Decide on the call the task waits to have approved (its id is in the APPROVAL step's metadata): approve,
    deny (the agent reads `reason` as the call's result) or approve_all (this and every later call of the same
    tool in this task). 409 when that call is not waiting."""
    from morgus.app.tasks import TaskOpError, decide_task

    tid = task_id_of(task_id)
    _running(await row_or_404(store, tid), tid, "there is nothing to approve")
    try:
        result = await decide_task(client, tid, body.decision, call_id=body.call_id, reason=body.reason)
    except TaskOpError as e:
        raise HTTPException(409, str(e)) from None
    return DecisionView(**result.model_dump())


@router.post("/tasks/{task_id}/cancel", response_model=OkView, responses=WRITE_ERRORS)
async def cancel(task_id: str, store: StoreDep, client: ClientDep, body: CancelBody | None = None) -> OkView:
    """The body is optional, but the request must still say `Content-Type: application/json` (no cross-site form can)."""
    from morgus.app.tasks import TaskOpError, cancel_task

    tid = task_id_of(task_id)
    row = await row_or_404(store, tid)
    if row["status"] == TaskStatus.cancelled:
        raise HTTPException(409, f"task {tid} is already cancelled")
    try:
        await cancel_task(client, tid, (body or CancelBody()).reason)
    except TaskOpError as e:
        raise HTTPException(409, str(e)) from None
    return OkView(ok=True)
