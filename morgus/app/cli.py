"""The `morgus` command: run the stack, start and follow tasks, answer and cancel them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from morgus.app.terminal import term_safe
from morgus.config import ConfigError, Settings, load_settings
from morgus.contracts import TaskInput, TaskLimits, TaskStatus

if TYPE_CHECKING:
    from typer._click.exceptions import UsageError

T = TypeVar("T")
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Morgus: durable autonomous software tasks on Temporal.")
task_app = typer.Typer(no_args_is_help=True, help="Start, inspect, answer and cancel tasks.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
sandbox_app = typer.Typer(no_args_is_help=True, help="The sandbox image and containers.")
local_app = typer.Typer(no_args_is_help=True, help="The local model (llama.cpp's llama-server on loopback).")
app.add_typer(task_app, name="task")
app.add_typer(local_app, name="local-model")
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _settings() -> Settings:
    settings = load_settings()
    from morgus.log import configure_logging

    # quieter than the worker unless MORGUS_LOG_LEVEL says otherwise
    level = settings.log_level if "log_level" in settings.model_fields_set else "warning"
    configure_logging(level, settings.log_format)
    return settings


def _run(make: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make(_settings()))


# ---------------------------------------------------------------- stack


@app.command()
def up(worker: bool = typer.Option(True, help="Also run a worker in this process group."),
       local_model: bool = typer.Option(False, "--local-model", help="Serve a local model (MORGUS_LOCAL_MODEL or the "
                                        "pinned one of morgus\\[local-model]) with llama-server and point the worker at it.")) -> None:
    """Start the embedded stack (Temporal dev server + Web UI, Postgres, a worker) and keep it running."""
    from morgus.app.stack import Stack

    settings = _settings()
    stack = Stack(settings)
    worker_env: dict[str, str] = {}
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        stack.ensure_services()
        from morgus.activities.tools.deploy import sites_url
        from morgus.app.sites import serve_sites

        try:
            serve_sites(settings.home.resolve() / "sites", sites_url(settings))
        except OSError as e:
            raise ConfigError(f"cannot serve deployed sites at {sites_url(settings)} ({e.strerror}); set MORGUS_SITES_URL") from None
        if local_model:
            from morgus.local_model import start_local_model
            from morgus.local_model import worker_env as local_env

            stack.local_model = start_local_model(settings, progress=lambda m: out.print(m, markup=False))
            from morgus.app.network import offline_env

            worker_env = {**local_env(settings, stack.local_model), **offline_env(settings, out)}
        if worker:
            stack.start_worker(worker_env)
        stack.start_api()
        for note in stack.notes:
            out.print(f"[dim]{note}[/dim]")
        out.print(f"Temporal      {settings.temporal_address}  (namespace {settings.temporal_namespace})")
        out.print(f"Console/API   http://127.0.0.1:{stack.api_port}  (build the console once: cd console && npm ci && npm run build)")
        out.print(f"Temporal UI   {settings.temporal_ui_url}")
        from morgus.app.client import redact_dsn

        out.print(f"Postgres      {redact_dsn(settings.dsn)}")
        out.print(f"Task queue    {settings.task_queue}")
        out.print(f"Sites         {sites_url(settings)}/<task id>/")
        out.print(f"State         {settings.home.resolve()}")
        if stack.local_model is not None:
            out.print(f"Local model   {stack.local_model.alias} at {stack.local_model.url}")
        elif not settings.openai_api_key and not settings.openai_base_url:
            out.print("[yellow]OPENAI_API_KEY is not set: tasks will fail at their first LLM call. "
                      "Set it (or OPENAI_BASE_URL), or try `morgus demo`.[/yellow]")
        out.print('Ready. Start a task:  morgus task start "a landing page for my bakery" --wait   (Ctrl-C stops)')
        restarts = 0
        while not stopping:
            time.sleep(0.5)
            # keep the worker(s) and the API up; a crash loop ends `morgus up` with the reason
            for i, proc in enumerate(stack.workers):
                if proc.poll() is not None and not stopping:
                    restarts += 1
                    if restarts > 5:
                        raise ConfigError(f"the worker keeps exiting (code {proc.returncode}); see the log above")
                    err.print(f"worker exited with code {proc.returncode}; restarting it")
                    stack.workers[i] = stack.start_worker(worker_env)
            if stack.api is not None and stack.api.poll() is not None and not stopping:
                restarts += 1
                if restarts > 5:
                    raise ConfigError(f"the API keeps exiting (code {stack.api.returncode}); see the log above")
                err.print(f"the API exited with code {stack.api.returncode}; restarting it")
                stack.start_api()
    finally:
        out.print("Stopping…")
        stack.stop()


@app.command()
def api(host: str = typer.Option("127.0.0.1", help="Bind address (loopback by default)."),
        port: int = typer.Option(8080)) -> None:
    """Serve the HTTP API (and the console, when built) on one port."""
    from morgus.app.api import serve

    serve(_settings(), host, port)


@app.command("worker")
def worker_cmd() -> None:
    """Run a worker in the foreground (same as `python -m morgus.worker`)."""
    import morgus.worker as worker_module

    worker_module.main()


@app.command()
def demo(keep: bool = typer.Option(False, help="Leave the services running afterwards."),
         local_model: bool = typer.Option(False, "--local-model", help="Run a real task driven by the local model "
                                          "(MORGUS_LOCAL_MODEL or the pinned one of morgus\\[local-model]) instead of "
                                          "the recorded replies.")) -> None:
    """Run one bundled, recorded task through the real stack: no API key needed (or a real one with --local-model)."""
    from morgus.app.demo import run_demo

    run_demo(_settings(), keep=keep, console=out, local_model=local_model)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the SQL migrations in morgus/db/migrations to DATABASE_URL (or the embedded Postgres)."""
    from morgus.db.migrate import apply_migrations

    applied = apply_migrations(_settings().dsn)
    out.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@sandbox_app.command("build")
def sandbox_build(force: bool = typer.Option(False, help="Rebuild even if the recipe's image exists."),
                  mirror: str | None = typer.Option(None, help="Debian mirror (default: MORGUS_DEBIAN_MIRROR or deb.debian.org).")) -> None:
    """Build the sandbox image offline from Debian packages (debootstrap + docker import); needs root and dockerd."""
    from morgus.sandbox.image import build_offline, image_exists, image_tag

    mirror = mirror or _settings().debian_mirror
    tag = image_tag()
    if image_exists(tag) and not force:
        out.print(f"{tag} is up to date")
        return
    out.print(f"building {tag} (debootstrap + apt, a few minutes)…")
    try:
        out.print(f"built {build_offline(mirror=mirror, force=force)}")
    except RuntimeError as e:
        raise ConfigError(f"sandbox image build failed: {e}") from None


@sandbox_app.command("list")
def sandbox_list() -> None:
    """List the sandboxes Morgus manages on this host."""
    from morgus.sandbox.base import SandboxUnavailable, select_backend

    try:
        backend = select_backend(_settings())
    except SandboxUnavailable as e:
        raise ConfigError(str(e)) from None
    for sb in backend.list_managed():
        out.print(f"{sb.name}  {sb.workflow_id}  {'running' if backend.alive(sb.name) else 'stopped'}")


@local_app.command("prepare")
def local_prepare() -> None:
    """Join and checksum the weights and build llama-server, once, into MORGUS_HOME (never at task time)."""
    from morgus.local_model import prepare

    binary, model, alias = prepare(_settings(), progress=lambda m: out.print(m, markup=False))
    out.print(f"ready: {alias}\n  server  {binary}\n  model   {model}")


@local_app.command("serve")
def local_serve() -> None:
    """Serve the local model on loopback until Ctrl-C (for OPENAI_BASE_URL by hand or `morgus eval`)."""
    from morgus.local_model import start_local_model

    server = start_local_model(_settings(), progress=lambda m: out.print(m, markup=False))
    out.print(f"serving {server.alias} at {server.url}  (OPENAI_BASE_URL={server.url} MORGUS_MODEL={server.alias}; Ctrl-C stops)")
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# ---------------------------------------------------------------- tasks


@task_app.command("start")
def task_start(
    description: str = typer.Argument(..., help="What to build."),
    title: str = typer.Option("", help="Short title (default: the description's first line)."),
    model: str | None = typer.Option(None, help="LLM model for this task (default: MORGUS_MODEL)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the task live until it ends."),
    task_queue: str | None = typer.Option(None, help="Task queue (default: MORGUS_TASK_QUEUE)."),
) -> None:
    """Start a task; prints its id."""
    try:
        task = TaskInput(title=title, description=description, model=model,
                         limits=TaskLimits(require_work=_settings().require_work))
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

    code = _run(go)
    if code:
        raise _Exit(code)


@task_app.command("list")
def task_list(status: TaskStatus | None = typer.Option(None, help="Only tasks with this status."),
              limit: int = typer.Option(20, min=1, max=1000)) -> None:
    """List recent tasks from the database."""

    async def go(settings: Settings) -> list[dict[str, Any]]:
        from morgus.app.client import open_store

        store = await open_store(settings)
        try:
            return await store.list_tasks(status=status.value if status else None, limit=limit)
        finally:
            await store.close()

    rows = _run(go)
    if not rows:
        out.print("no tasks yet")
        return
    table = Table("id", "status", "phase", "title", "steps", "tokens", "created")
    for r in rows:
        table.add_row(str(r["id"]), term_safe(r["status"], markup=True), term_safe(r["phase"] or "", markup=True),
                      term_safe(r["title"][:50], markup=True), str(r["step_count"]),
                      str(r["total_tokens"]), r["created_at"].strftime("%Y-%m-%d %H:%M:%S"))
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

    row, steps, artifacts = _run(go)
    from morgus.app.progress import render_step

    out.print(f"[bold]{term_safe(row['title'], markup=True)}[/bold]  ({row['id']})")
    out.print(f"status {term_safe(row['status'])}   phase {term_safe(row['phase'] or '-')}   steps {row['step_count']}   "
              f"tokens {row['total_tokens']} (prompt {row['prompt_tokens']}, cached {row['cached_tokens']}, "
              f"completion {row['completion_tokens']})   cost ${float(row['cost_usd']):.4f}", markup=False)
    if row["pending_question"]:
        out.print(f"[yellow]waiting for an answer:[/yellow] {term_safe(row['pending_question'], newlines=True, markup=True)}")
    if row["error_message"]:
        out.print(f"[red]error:[/red] {term_safe(row['error_message'], newlines=True, markup=True)}")
    for s in steps:
        out.print(render_step(s), markup=False)
    for a in artifacts:
        out.print(f"artifact {term_safe(a['type'])}: {term_safe(a['name'])} {term_safe(a['url'] or a['path'] or '')}",
                  markup=False)


@task_app.command("answer")
def task_answer(task: str, text: str) -> None:
    """Answer the question a task is waiting on."""
    from morgus.app.tasks import answer_task, parse_task_ref

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> None:
        from morgus.app.client import connect_temporal

        await answer_task(await connect_temporal(settings), task_id, text)

    _run(go)
    out.print(f"answered task {task_id}")


@task_app.command("cancel")
def task_cancel(task: str, reason: str = typer.Option("cancelled by user")) -> None:
    """Cancel a running task (its status becomes `cancelled`)."""
    from morgus.app.tasks import cancel_task, parse_task_ref

    task_id = parse_task_ref(task)

    async def go(settings: Settings) -> None:
        from morgus.app.client import connect_temporal

        await cancel_task(await connect_temporal(settings), task_id, reason)

    _run(go)
    out.print(f"cancel requested for task {task_id}")


def _usage_error(e: UsageError) -> int:
    """A usage error (unknown command, missing argument, bad option or value) as one line on stderr; exit 2.
    `morgus` or `morgus task` alone prints the help instead (also exit 2, as click does)."""
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(e, NoArgsIsHelpError):
        out.print(e.format_message(), markup=False, highlight=False)
        return 2
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else "morgus"
    message = " ".join(e.format_message().split())  # click wraps long messages over several lines
    err.print(f"morgus: {term_safe(message)} (see `{term_safe(where)} --help`)", markup=False, highlight=False)
    return 2


def main() -> None:
    """Console-script entry: one clear line for user errors, then a hard exit (temporalio/sdk-python#300)."""
    from typer._click.exceptions import ClickException, UsageError

    code = 0
    try:
        app(standalone_mode=False, prog_name="morgus")
    except UsageError as e:
        code = _usage_error(e)
    except ClickException as e:  # e.g. a file option that cannot be opened
        err.print(f"morgus: {term_safe(' '.join(e.format_message().split()))}", markup=False, highlight=False)
        code = e.exit_code
    except ConfigError as e:
        err.print(f"morgus: {e}", markup=False, highlight=False)
        code = 2
    except _Exit as e:
        code = e.code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
