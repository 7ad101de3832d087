"""`morgus demo`: one bundled task, its LLM replies replayed by the scripted OpenAI-compatible server, run
through the real stack (Temporal dev server, Postgres, a worker process), with the agent's question answered.

`morgus demo --local-model` runs a real task instead, driven by the local model (llama.cpp's server with the
pinned weights, or MORGUS_LOCAL_MODEL): nothing is scripted, and any question the model asks is answered with
"use your best judgement"."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
from pathlib import Path

from rich.console import Console

from morgus.app.tasks import default_approvals
from morgus.app.terminal import term_safe
from morgus.config import Settings
from morgus.contracts import TaskInput
from morgus.scripted_llm import ScriptedLLM

DEMO_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo.json"
DEMO_QUEUE = "morgus-demo"
DEMO_ANSWER = "Blue and cream, please."
DEMO_SITES_URL = "http://127.0.0.1:8091"
LOCAL_DEMO_TASK = (
    "A one-page website for my bakery, Crumb & Co. Write it as the file site/index.html: a heading "
    "with the name, one sentence about our sourdough, and the opening hours (Mon-Sat 7:00-18:00). "
    "Then deploy the site folder locally and tell me its URL."
)
LOCAL_DEMO_ANSWER = "Use your best judgement and carry on."


def run_demo(settings: Settings, *, keep: bool, console: Console, local_model: bool = False) -> None:
    from morgus.app.stack import Stack

    llm: ScriptedLLM | None = None
    stack = Stack(settings)

    def _terminated(*_: object) -> None:
        # SIGTERM (`timeout`, `kill`, a CI runner) stops what the demo started, as Ctrl-C does: killed without
        # that, it left its worker polling the demo queue with old code, and its model server. Stopped here, not by
        # unwinding: asyncio.run's clean-up waits for every task to finish cancelling, and one did not (seen).
        stack.stop()
        if llm is not None:
            llm.stop()
        os._exit(143)

    signal.signal(signal.SIGTERM, _terminated)
    try:
        if local_model:
            from morgus.local_model import start_local_model, worker_env

            console.print("Starting the local model (built and joined once into MORGUS_HOME; later runs reuse it)…")
            stack.local_model = start_local_model(settings, progress=lambda m: console.print(m, markup=False))
            from morgus.app.network import offline_env

            env = {
                **worker_env(settings, stack.local_model),
                "OPENAI_API_KEY": "local",
                **offline_env(settings, console),
            }
            task = TaskInput(
                title="Bakery page (local model)",
                description=LOCAL_DEMO_TASK,
                model=stack.local_model.alias,
                approvals=default_approvals(settings),  # an approval is denied: nobody is there (auto_answer.py)
            )
            answer_text = LOCAL_DEMO_ANSWER
            console.print(
                f"Local model {stack.local_model.alias} at {stack.local_model.url}: a real model, slow on a "
                "CPU (a turn takes seconds); every step prints as it happens."
            )
        else:
            llm = ScriptedLLM()
            llm.load_file(DEMO_SCRIPT)
            env = {"OPENAI_BASE_URL": llm.start(), "OPENAI_API_KEY": "demo"}
            task = TaskInput(
                title="Bakery landing page (demo)",
                description="Build a landing page for my bakery, Crumb & Co.: hero, menu, opening hours. [scenario:demo]",
                model="scripted-demo",
                approvals=default_approvals(settings),
            )
            answer_text = DEMO_ANSWER
        console.print("Starting Temporal dev server and Postgres…")
        stack.ensure_services()
        from morgus.app.sites import serve_sites

        sites = serve_sites(settings.home.resolve() / "sites", DEMO_SITES_URL)
        # Its own queue, so a `morgus up` worker with a real model never picks up the demo (and vice versa).
        env.update(stack.start_embeddings())
        stack.start_worker(
            {**env, "MORGUS_TASK_QUEUE": DEMO_QUEUE, "MORGUS_SITES_URL": DEMO_SITES_URL},
            log_file=settings.home.resolve() / "demo-worker.log",
        )
        code = asyncio.run(_run(settings, console, task, answer_text))
        if keep:
            console.print(f"The site stays up at {DEMO_SITES_URL}/ while this runs; Ctrl-C stops.")
            import threading

            threading.Event().wait()
        sites.shutdown()
        if code:
            raise SystemExit(code)
    finally:
        if not keep:
            stack.stop()
        if llm is not None:
            llm.stop()


async def _run(settings: Settings, console: Console, task: TaskInput, answer_text: str) -> int:
    from morgus.app.auto_answer import UnattendedUser, decision_for
    from morgus.app.client import connect_temporal
    from morgus.app.progress import follow
    from morgus.app.tasks import TaskOpError, answer_task, decide_task, start_task

    client = await connect_temporal(settings)
    handle = await start_task(client, task, task_queue=DEMO_QUEUE)
    task_id = handle.id.removeprefix("task-")
    console.print(
        f"Task {task_id} started; watch it in the Temporal UI: "
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{handle.id}"
    )

    user = UnattendedUser(answer_text)

    async def answer(tid: str, step: dict) -> None:
        if step["type"] == "APPROVAL":  # nobody to approve: denied, the agent reads why (auto_answer.py)
            call_id, decision, reason = decision_for(step)
            console.print(
                f"[yellow]Waiting for approval:[/yellow] {term_safe(step['content'] or '', newlines=True, markup=True)}"
            )
            console.print(
                f"[yellow]Denying (as you would with `morgus task deny {tid} --reason …`):[/yellow] "
                f"{term_safe(reason, markup=True)}"
            )
            with contextlib.suppress(TaskOpError):  # the task may have been cancelled meanwhile
                await decide_task(client, tid, decision, call_id=call_id, reason=reason)
            return
        reply = user.answer(step)
        console.print(
            f"[yellow]The agent asks:[/yellow] {term_safe(step['content'] or '', newlines=True, markup=True)}"
        )
        console.print(
            f"[yellow]Answering (as you would with `morgus task answer {tid} …`):[/yellow] "
            f"{term_safe(reply, markup=True)}"
        )
        await answer_task(client, tid, reply)

    code = await follow(settings, client, task_id, console, on_question=answer)
    from morgus.app.client import open_store

    store = await open_store(settings)
    try:
        for a in await store.fetch_artifacts(task_id):
            console.print(
                f"[green]{term_safe(a['type'], markup=True)}:[/green] {term_safe(a['url'] or a['path'], markup=True)}",
                highlight=False,
            )
    finally:
        await store.close()
    from morgus.activities.tools.safe_fs import walk
    from morgus.activities.tools.workspace import ToolError

    try:  # the workspace was written by sandboxed code: lstat only, no link followed, names escaped
        entries, _ = walk(settings.workspace_for(task_id), ".", max_entries=200, skip_dirs=frozenset({".git"}))
    except (ToolError, OSError):
        entries = []
    if entries:
        console.print(f"Files in {term_safe(settings.workspace_for(task_id))}:", markup=False)
        for e in sorted(entries, key=lambda e: e.rel):
            if stat.S_ISREG(e.mode) and not e.rel.startswith(".git/") and e.rel != ".git":
                console.print(f"  {e.rel}  ({e.size} bytes)", markup=False, highlight=False)
    return code
