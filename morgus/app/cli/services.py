"""The commands that run services, at the top of `morgus`: `up` (services, a worker, the API), `api`, `worker`, `demo`.
`main` registers them on the root app."""

from __future__ import annotations

import signal
import time
from typing import Any

import typer

from morgus.app.cli.common import err, out, say
from morgus.app.cli.common import settings as load
from morgus.config import ConfigError


def up(
    worker: bool = typer.Option(True, help="Also run a worker in this process group."),
    local_model: bool = typer.Option(
        False,
        "--local-model",
        help="Serve a local model (MORGUS_LOCAL_MODEL or the "
        "pinned one of morgus\\[local-model]) with llama-server and point the worker at it.",
    ),
) -> None:
    """Start the embedded stack (Temporal dev server + Web UI, Postgres, a worker) and keep it running."""
    from morgus.app.stack import Stack

    settings = load()
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
            raise ConfigError(
                f"cannot serve deployed sites at {sites_url(settings)} ({e.strerror}); set MORGUS_SITES_URL"
            ) from None
        if local_model:
            from morgus.local_model import start_local_model
            from morgus.local_model import worker_env as local_env

            stack.local_model = start_local_model(settings, progress=say)
            from morgus.app.network import offline_env

            worker_env = {**local_env(settings, stack.local_model), **offline_env(settings, out)}
        worker_env.update(stack.start_embeddings())
        if worker:
            stack.start_worker(worker_env)
        stack.start_api()
        for note in stack.notes:
            out.print(f"[dim]{note}[/dim]")
        out.print(f"Temporal      {settings.temporal_address}  (namespace {settings.temporal_namespace})")
        out.print(
            f"Console/API   http://127.0.0.1:{stack.api_port}  (build the console once: cd console && npm ci && npm run build)"
        )
        out.print(f"Temporal UI   {settings.temporal_ui_url}")
        from morgus.app.client import redact_dsn

        out.print(f"Postgres      {redact_dsn(settings.dsn)}")
        out.print(f"Task queue    {settings.task_queue}")
        out.print(f"Sites         {sites_url(settings)}/<task id>/")
        out.print(f"State         {settings.home.resolve()}")
        if stack.local_model is not None:
            out.print(f"Local model   {stack.local_model.alias} at {stack.local_model.url}")
        elif not settings.openai_api_key and not settings.openai_base_url:
            out.print(
                "[yellow]OPENAI_API_KEY is not set: tasks will fail at their first LLM call. "
                "Set it (or OPENAI_BASE_URL), or try `morgus demo`.[/yellow]"
            )
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


def api(
    host: str = typer.Option("127.0.0.1", help="Bind address (loopback by default)."), port: int = typer.Option(8080)
) -> None:
    """Serve the HTTP API (and the console, when built) on one port."""
    from morgus.app.api import serve

    serve(load(), host, port)


def worker_cmd() -> None:
    """Run a worker in the foreground (same as `python -m morgus.worker`)."""
    import morgus.worker as worker_module

    worker_module.main()


def demo(
    keep: bool = typer.Option(False, help="Leave the services running afterwards."),
    local_model: bool = typer.Option(
        False,
        "--local-model",
        help="Run a real task driven by the local model "
        "(MORGUS_LOCAL_MODEL or the pinned one of morgus\\[local-model]) instead of "
        "the recorded replies.",
    ),
) -> None:
    """Run one bundled, recorded task through the real stack: no API key needed (or a real one with --local-model)."""
    from morgus.app.demo import run_demo

    def _terminated(*_: Any) -> None:
        # SIGTERM (`timeout`, `kill`, a CI runner) unwinds like Ctrl-C, so the demo stops what it started; killed
        # without unwinding, it left its worker polling the demo queue with the old code and its model server
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _terminated)
    run_demo(load(), keep=keep, console=out, local_model=local_model)
