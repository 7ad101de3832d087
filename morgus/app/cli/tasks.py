"""`morgus task …`: start, list, show, answer, steer (`say`), pause, resume, approve, deny and cancel tasks."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from morgus.app.cli.common import Exit, out, run, settings
from morgus.app.terminal import term_safe
from morgus.config import ConfigError, Settings
from morgus.contracts import TaskInput, TaskLimits, TaskStatus

task_app = typer.Typer(
    no_args_is_help=True, help="Start, inspect, answer, steer, pause, resume, approve and cancel tasks."
)


@task_app.command("start")
def task_start(
    description: str = typer.Argument(..., help="What to build."),
    title: str = typer.Option("", help="Short title (default: the description's first line)."),
    model: str | None = typer.Option(None, help="LLM model for this task (default: MORGUS_MODEL)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the task live until it ends."),
    task_queue: str | None = typer.Option(None, help="Task queue (default: MORGUS_TASK_QUEUE)."),
) -> None:
    """Start a task; prints its id."""
    from morgus.app.tasks import default_approvals

    try:
        task = TaskInput(
            title=title,
            description=description,
            model=model,
            limits=TaskLimits(require_work=settings().require_work),
            approvals=default_approvals(settings()),
        )
    except ValidationError as e:
        raise ConfigError(f"invalid task: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None

    async def go(settings: Settings) -> int:
        from morgus.app.client import connect_temporal
        from morgus.app.tasks import start_task

        client = await connect_temporal(settings)
        handle = await start_task(client, task, task_queue=task_queue or settings.task_queue)
        task_id = handle.id.removeprefix("task-")
        out.print(task_id)
        if not wait:
            return 0
        from morgus.app.progress import follow

        return await follow(settings, client, task_id, out)

    code = run(go)
    if code:
        raise Exit(code)


@task_app.command("list")
def task_list(
    status: TaskStatus | None = typer.Option(None, help="Only tasks with this status."),
    limit: int = typer.Option(20, min=1, max=1000),
) -> None:
    """List recent tasks from the database."""

    async def go(settings: Settings) -> list[dict[str, Any]]:
        from morgus.app.client import open_store

        store = await open_store(settings)
        try:
            return await store.list_tasks(status=status.value if status else None, limit=limit)
        finally:
            await store.close()

    rows = run(go)
    if not rows:
        out.print("no tasks yet")
        return
    table = Table("id", "status", "phase", "title", "steps", "tokens", "created")
    for r in rows:
        table.add_row(
            str(r["id"]),
            term_safe(r["status"], markup=True),
            term_safe(r["phase"] or "", markup=True),
            term_safe(r["title"][:50], markup=True),
            str(r["step_count"]),
            str(r["total_tokens"]),
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


@task_app.command("show")
def task_show(task: str = typer.Argument(..., help="Task id (or task-<id>).")) -> None:
    """Show a task with its steps and artifacts (from the database)."""
    from morgus.app.tasks import TaskOpError, parse_task_ref

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> tuple[Any, Any, Any]:
        from morgus.app.client import open_store

        store = await open_store(settings)
        try:
            row = await store.fetch_task(task_id)
            if row is None:
                raise TaskOpError(f"no task with id {task_id} in the database")
            return row, await store.fetch_steps(task_id), await store.fetch_artifacts(task_id)
        finally:
            await store.close()

    row, steps, artifacts = run(go)
    from morgus.app.progress import render_step

    out.print(f"[bold]{term_safe(row['title'], markup=True)}[/bold]  ({row['id']})")
    out.print(
        f"status {term_safe(row['status'])}   phase {term_safe(row['phase'] or '-')}   steps {row['step_count']}   "
        f"tokens {row['total_tokens']} (prompt {row['prompt_tokens']}, cached {row['cached_tokens']}, "
        f"completion {row['completion_tokens']})   cost ${float(row['cost_usd']):.4f}",
        markup=False,
    )
    if row["pending_question"] and row["status"] == TaskStatus.waiting_for_approval:
        out.print(
            f"[yellow]waiting for approval (`morgus task approve` / `deny`):[/yellow] "
            f"{term_safe(row['pending_question'], newlines=True, markup=True)}"
        )
    elif row["pending_question"]:
        out.print(
            f"[yellow]waiting for an answer:[/yellow] {term_safe(row['pending_question'], newlines=True, markup=True)}"
        )
    if row["error_message"]:
        out.print(f"[red]error:[/red] {term_safe(row['error_message'], newlines=True, markup=True)}")
    for s in steps:
        out.print(render_step(s), markup=False)
    for a in artifacts:
        out.print(
            f"artifact {term_safe(a['type'])}: {term_safe(a['name'])} {term_safe(a['url'] or a['path'] or '')}",
            markup=False,
        )


@task_app.command("answer")
def task_answer(task: str, text: str) -> None:
    """Answer the question a task is waiting on."""
    from morgus.app.tasks import answer_task, parse_task_ref

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> None:
        from morgus.app.client import connect_temporal

        await answer_task(await connect_temporal(settings), task_id, text)

    run(go)
    out.print(f"answered task {task_id}")


@task_app.command("say")
def task_say(task: str, text: str) -> None:
    """Send a message to a running task: the agent reads it at its next turn (or it answers the pending question)."""
    from morgus.app.tasks import parse_task_ref, say_task

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> Any:
        from morgus.app.client import connect_temporal

        return await say_task(await connect_temporal(settings), task_id, text)

    result = run(go)
    if result.answered:
        out.print(
            f"task {task_id} took it as the answer to: {term_safe(result.question or '', newlines=True)}", markup=False
        )
    elif result.question:
        out.print(
            f"sent to task {task_id} ({result.waiting} waiting), but it first waits for an answer "
            f"(`morgus task answer`) to: {term_safe(result.question, newlines=True)}",
            markup=False,
        )
    else:
        out.print(
            f"sent to task {task_id}; the agent reads it at its next turn ({result.waiting} waiting)", markup=False
        )


@task_app.command("pause")
def task_pause(task: str) -> None:
    """Pause a task: no LLM or tool call starts until `morgus task resume`; the running one finishes first."""
    from morgus.app.tasks import parse_task_ref, pause_task

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> Any:
        from morgus.app.client import connect_temporal

        return await pause_task(await connect_temporal(settings), task_id)

    out.print(run(go).message, markup=False)


@task_app.command("resume")
def task_resume(task: str) -> None:
    """Resume a paused task where it stopped."""
    from morgus.app.tasks import parse_task_ref, resume_task

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> Any:
        from morgus.app.client import connect_temporal

        return await resume_task(await connect_temporal(settings), task_id)

    out.print(run(go).message, markup=False)


def _decide(task: str, decision: str, call: str | None, reason: str) -> None:
    from morgus.app.tasks import decide_task, parse_task_ref

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> Any:
        from morgus.app.client import connect_temporal

        return await decide_task(await connect_temporal(settings), task_id, decision, call_id=call, reason=reason)

    result = run(go)
    said = {
        "approve": "approved",
        "approve_all": "approved (and every later call of it in this task)",
        "deny": "denied",
    }
    out.print(
        f"{term_safe(result.tool)} call {term_safe(result.call_id)} of task {task_id} {said[result.decision]}",
        markup=False,
    )


CALL_HELP = "The call id (default: the one call waiting for approval)."


@task_app.command("approve")
def task_approve(
    task: str,
    all_: bool = typer.Option(False, "--all", help="Also approve every later call of the same tool in this task."),
    call: str | None = typer.Option(None, "--call", help=CALL_HELP),
    reason: str = typer.Option("", help="Why (kept in the task's timeline)."),
) -> None:
    """Approve the call a task waits to have approved (see `morgus task show`)."""
    _decide(task, "approve_all" if all_ else "approve", call, reason)


@task_app.command("deny")
def task_deny(
    task: str,
    reason: str = typer.Option(..., help="Why: the agent gets 'denied by the user: <reason>' as the call's result."),
    call: str | None = typer.Option(None, "--call", help=CALL_HELP),
) -> None:
    """Deny the call a task waits to have approved; the agent reads the reason."""
    _decide(task, "deny", call, reason)


@task_app.command("cancel")
def task_cancel(task: str, reason: str = typer.Option("cancelled by user")) -> None:
    """Cancel a running task (its status becomes `cancelled`)."""
    from morgus.app.tasks import cancel_task, parse_task_ref

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> None:
        from morgus.app.client import connect_temporal

        await cancel_task(await connect_temporal(settings), task_id, reason)

    run(go)
    out.print(f"cancel requested for task {task_id}")
