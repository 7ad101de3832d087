"""How well does Morgus do its job with a given model? Runs the evaluation tasks (bench/eval_tasks.py) through the
real stack — Temporal dev server, embedded Postgres, a worker, the sandbox, the local sites server — against any
OpenAI-compatible endpoint, grades each RESULT automatically, and appends a table to docs/eval.md.

    # any endpoint (OpenAI, Ollama, vLLM, LM Studio, a `morgus local-model serve`):
    OPENAI_BASE_URL=... OPENAI_API_KEY=... MORGUS_MODEL=... python -m bench.agent_eval
    python -m bench.agent_eval --local-model            # serve the local model for the run
    python -m bench.agent_eval --scripted               # replay each task's good script: every grader must pass
    python -m bench.agent_eval --scripted-bad           # replay scripts that should fail: every grader must fail
    options: --tasks static-page,fix-bug  --timeout 900  --max-steps 60  --no-write  --out docs/eval.md  --transcripts DIR

Per task: pass/fail, the failure reason, LLM calls, tokens (prompt, cached, completion), cost and wall time.
Questions the agent asks are answered with the task's answer; the workflow's own questions as a user who wants the
work done (morgus/app/auto_answer.py: a phase with no work "retry" (twice, then "continue"), a loop or an iteration cap "move on", a budget
"stop").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.eval_tasks import TASKS, EvalTask, Graded
from morgus.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "eval.md"


@dataclass
class Outcome:
    name: str
    passed: bool
    status: str
    reason: str
    llm_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_usd: float
    wall_s: float


# ---------------------------------------------------------------- grading helpers (blocking; run in a thread)


def _fetch(url: str) -> tuple[int, str]:
    try:
        r = httpx.get(url, timeout=10, follow_redirects=True)
        return r.status_code, r.text
    except httpx.HTTPError as e:
        return 0, str(e)


def sandbox_runner(workspace: Path, grading_root: Path, settings: Settings) -> Any:
    """Run a command over a COPY of the workspace (plus the grader's own files) in a fresh sandbox: what the
    model wrote is untrusted code, and must not change the workspace being graded."""

    def run(command: str, extra: dict[str, str]) -> tuple[int, str]:
        from morgus.contracts import SandboxOptions
        from morgus.sandbox.base import sandbox_name, select_backend
        from morgus.sandbox.output import CappedOutput

        gid = f"grade-{uuid.uuid4().hex[:12]}"
        copy = grading_root / gid
        shutil.copytree(workspace, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        for rel, text in extra.items():
            (copy / rel).write_text(text)
        backend = select_backend(settings, workspace_root=grading_root)
        name = backend.ensure(gid, "eval-grader", copy, SandboxOptions(), "eval")
        try:
            sink = CappedOutput()
            result = backend.exec(name, command, timeout_s=120, env={}, sink=sink)
            sink.close()
            return (124 if result.timed_out else result.exit_code), sink.stdout() + sink.stderr()
        finally:
            backend.remove(name or sandbox_name(gid))
            shutil.rmtree(copy, ignore_errors=True)

    return run


# ---------------------------------------------------------------- one task


async def run_task(
    task: EvalTask,
    *,
    client: Any,
    store: Any,
    settings: Settings,
    model: str | None,
    scripted: bool,
    timeout_s: float,
    max_steps: int,
    grading_root: Path,
    sites: str,
    transcripts: Path | None = None,
) -> Outcome:
    from morgus.app.auto_answer import UnattendedUser, decision_for
    from morgus.app.tasks import answer_task, cancel_task, decide_task, start_task
    from morgus.contracts import Budget, TaskInput
    from morgus.ids import new_task_id

    task_id = new_task_id()
    ws = settings.workspace_for(task_id)
    for rel, text in task.files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    description = task.description + (f"\n[scenario:{task.name}]" if scripted else "")
    started = time.monotonic()
    handle = await start_task(
        client,
        TaskInput(title=f"eval: {task.name}", description=description, model=model, budget=Budget(max_steps=max_steps)),
        task_queue=settings.task_queue,
        task_id=task_id,
    )
    asked: set[int] = set()
    user = UnattendedUser(task.answer)
    timed_out = False
    while True:
        for step in await store.fetch_steps(task_id):
            if step["type"] == "QUESTION" and step["seq"] not in asked:
                asked.add(step["seq"])
                reply = user.answer(step)
                # the task may have moved on; the next poll sees it
                with contextlib.suppress(Exception):
                    await answer_task(client, task_id, reply)
            elif step["type"] == "APPROVAL" and step["seq"] not in asked:  # nobody to approve: denied
                asked.add(step["seq"])
                call_id, decision, reason = decision_for(step)
                with contextlib.suppress(Exception):
                    await decide_task(client, task_id, decision, call_id=call_id, reason=reason)
        desc = await handle.describe()
        if desc.status is not None and desc.status.name != "RUNNING":
            break
        if time.monotonic() - started > timeout_s:
            timed_out = True
            await cancel_task(client, task_id, f"evaluation timeout ({timeout_s:.0f}s)")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.result(), 120)
            break
        await asyncio.sleep(1)
    wall = time.monotonic() - started
    row = await store.fetch_task(task_id) or {}
    steps = await store.fetch_steps(task_id)
    artifacts = await store.fetch_artifacts(task_id)
    status = str(row.get("status", "unknown"))
    if transcripts is not None:  # for reading why a task failed; the grade never looks at it
        transcripts.mkdir(parents=True, exist_ok=True)
        (transcripts / f"{task.name}.json").write_text(
            json.dumps(
                [{k: s[k] for k in ("seq", "phase", "type", "content", "metadata")} for s in steps],
                indent=1,
                default=str,
            )
        )
    site = next((a["url"] for a in artifacts if a["type"] == "deployment" and a.get("url")), None)
    if site is None and (settings.home.resolve() / "sites" / task_id / "index.html").is_file():
        site = f"{sites}/{task_id}/"
    if site is not None and not site.endswith("/"):
        site += "/"
    graded = Graded(
        workspace=ws, status=status, site_url=site, fetch=_fetch, run=sandbox_runner(ws, grading_root, settings)
    )
    try:
        why = await asyncio.to_thread(task.grade, graded)
    except Exception as e:  # noqa: BLE001 - a grader crash is a failed grade, with the reason
        why = f"grader error: {type(e).__name__}: {e}"
    if timed_out:
        why = f"timed out after {timeout_s:.0f}s" + (f"; {why}" if why else "")
    elif why is None and status != "completed":
        why = f"the result is right but the task ended {status}: {row.get('error_message') or ''}".strip()
    elif why is not None and status != "completed":
        why = f"task ended {status} ({(row.get('error_message') or '')[:120]}); {why}"
    return Outcome(
        name=task.name,
        passed=why is None,
        status=status,
        reason=why or "",
        llm_calls=sum(1 for s in steps if s["type"] == "LLM_RESPONSE"),
        prompt_tokens=int(row.get("prompt_tokens") or 0),
        cached_tokens=int(row.get("cached_tokens") or 0),
        completion_tokens=int(row.get("completion_tokens") or 0),
        cost_usd=float(row.get("cost_usd") or 0),
        wall_s=round(wall, 1),
    )


# ---------------------------------------------------------------- the stack for a run


async def run_eval(
    tasks: list[EvalTask],
    *,
    mode: str,
    timeout_s: float,
    max_steps: int,
    progress: Any = print,
    transcripts: Path | None = None,
) -> tuple[list[Outcome], str]:
    """mode: endpoint | local | scripted | scripted-bad. Returns the outcomes and the model's name."""
    from morgus.app.client import connect_temporal
    from morgus.app.stack import TemporalDevServer
    from morgus.db.embedded import EmbeddedPostgres
    from morgus.db.migrate import apply_migrations
    from morgus.db.store import Store
    from morgus.local_model import free_port
    from morgus.worker import running_workers

    base = load_settings()
    root = Path(tempfile.mkdtemp(prefix="morgus-eval-"))
    home = root / "home"
    env: dict[str, str] = {}
    stoppers: list[Any] = []
    scripted = mode.startswith("scripted")
    try:
        if scripted:
            from morgus.scripted_llm import ScriptedLLM

            llm = ScriptedLLM()
            for t in tasks:
                script = t.good if mode == "scripted" else (t.bad if t.bad is not None else [])
                llm.add(t.name, script)
            env |= {"OPENAI_BASE_URL": llm.start(), "OPENAI_API_KEY": "scripted"}
            stoppers.append(llm.stop)
            model_name = "scripted" if mode == "scripted" else "scripted-bad"
        elif mode == "local":
            from morgus.local_model import start_local_model, worker_env

            server = start_local_model(base, progress=progress)  # cache under the user's MORGUS_HOME
            stoppers.append(server.stop)
            env |= worker_env(base, server)
            model_name = server.alias
        else:
            if not base.openai_base_url and not base.openai_api_key:
                raise SystemExit(
                    "agent_eval: set OPENAI_BASE_URL (and OPENAI_API_KEY / MORGUS_MODEL), or use --local-model"
                )
            model_name = base.model

        pg = EmbeddedPostgres(root / "pgdata", free_port())
        await asyncio.to_thread(pg.start)
        stoppers.append(lambda: pg.stop(mode="immediate"))
        await asyncio.to_thread(apply_migrations, pg.dsn)
        temporal = TemporalDevServer(port=free_port(), ui_port=None, log_file=root / "temporal.log")
        await asyncio.to_thread(temporal.start)
        stoppers.append(temporal.stop)
        sites = f"http://127.0.0.1:{free_port()}"
        from morgus.app.sites import serve_sites

        site_server = serve_sites(home / "sites", sites)
        stoppers.append(site_server.shutdown)

        settings = load_settings(
            **{
                **{
                    k: v
                    for k, v in {
                        "OPENAI_BASE_URL": base.openai_base_url,
                        "OPENAI_API_KEY": base.openai_api_key,
                        "MORGUS_MODEL": base.model,
                        "MORGUS_MODEL_CONFIG": base.model_config_file,
                    }.items()
                    if v
                },
                **env,
                "TEMPORAL_ADDRESS": temporal.address,
                "DATABASE_URL": pg.dsn,
                "MORGUS_HOME": str(home),
                "MORGUS_TASK_QUEUE": f"eval-{uuid.uuid4().hex[:8]}",
                "MORGUS_SITES_URL": sites,  # deploy_local's URLs
            }
        )
        client = await connect_temporal(settings)
        store = Store(pg.dsn, max_size=10)
        await store.open()
        grading_root = root / "grading"
        grading_root.mkdir()
        outcomes: list[Outcome] = []
        try:
            async with running_workers(client, store, settings):
                for t in tasks:
                    progress(f"[{t.name}] running (timeout {timeout_s:.0f}s)…")
                    o = await run_task(
                        t,
                        client=client,
                        store=store,
                        settings=settings,
                        model="scripted" if scripted else None,
                        scripted=scripted,
                        timeout_s=timeout_s,
                        max_steps=max_steps,
                        grading_root=grading_root,
                        sites=sites,
                        transcripts=transcripts,
                    )
                    progress(
                        f"[{t.name}] {'PASS' if o.passed else 'FAIL'} {o.status} in {o.wall_s}s, "
                        f"{o.llm_calls} LLM calls{'' if o.passed else ': ' + o.reason}"
                    )
                    outcomes.append(o)
        finally:
            await store.close()
        return outcomes, model_name
    finally:
        for stop in reversed(stoppers):
            with contextlib.suppress(Exception):  # best effort on the way out
                stop()
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| task | result | status | LLM calls | prompt | cached | completion | cost $ | wall s | failure reason |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        reason = o.reason.replace("|", "\\|").replace("\n", " ")[:300]
        rows.append(
            f"| {o.name} | {'pass' if o.passed else 'FAIL'} | {o.status} | {o.llm_calls} | {o.prompt_tokens} | "
            f"{o.cached_tokens} | {o.completion_tokens} | {o.cost_usd:.4f} | {o.wall_s} | {reason} |"
        )
    n = len(outcomes)
    rows.append(
        f"| **total** | **{sum(o.passed for o in outcomes)}/{n}** | | {sum(o.llm_calls for o in outcomes)} | "
        f"{sum(o.prompt_tokens for o in outcomes)} | {sum(o.cached_tokens for o in outcomes)} | "
        f"{sum(o.completion_tokens for o in outcomes)} | {sum(o.cost_usd for o in outcomes):.4f} | "
        f"{round(sum(o.wall_s for o in outcomes), 1)} | |"
    )
    return "\n".join(rows)


def append_report(out: Path, outcomes: list[Outcome], model: str, note: str = "") -> None:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not out.exists():
        out.write_text(
            "# Evaluation results\n\nAppended by `python -m bench.agent_eval` (see docs/local-model.md). "
            "Each task is graded on its result (files, the deployed page over HTTP, tests run in a "
            "sandbox), not on the transcript.\n"
        )
    with out.open("a") as f:
        f.write(f"\n## {model} — {when}\n\nMachine: {machine()}.{(' ' + note) if note else ''}\n\n{table(outcomes)}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent_eval", description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--local-model", action="store_true", help="serve the local model (MORGUS_LOCAL_MODEL or the pinned one)"
    )
    g.add_argument("--scripted", action="store_true", help="replay each task's good script (harness self-check)")
    g.add_argument("--scripted-bad", action="store_true", help="replay scripts that must fail (harness self-check)")
    p.add_argument(
        "--tasks", default="", help="comma-separated task names (default: all): " + ",".join(t.name for t in TASKS)
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds per task before it is cancelled")
    p.add_argument("--max-steps", type=int, default=60, help="LLM calls per task before its budget stops it")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to append the table to")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--transcripts", type=Path, default=None, help="write each task's steps to DIR/<task>.json")
    p.add_argument("--note", default="", help="a line to add under the table's heading")
    a = p.parse_args(argv)
    wanted = [n.strip() for n in a.tasks.split(",") if n.strip()]
    unknown = set(wanted) - {t.name for t in TASKS}
    if unknown:
        p.error(f"unknown task(s): {', '.join(sorted(unknown))}")
    tasks = [t for t in TASKS if not wanted or t.name in wanted]
    mode = "local" if a.local_model else "scripted" if a.scripted else "scripted-bad" if a.scripted_bad else "endpoint"
    from morgus.log import configure_logging

    configure_logging("warning")
    outcomes, model = asyncio.run(
        run_eval(tasks, mode=mode, timeout_s=a.timeout, max_steps=a.max_steps, transcripts=a.transcripts)
    )
    print(table(outcomes))
    if not a.no_write:
        append_report(a.out, outcomes, model, a.note)
        print(f"appended to {a.out}")
    expected_fail = mode == "scripted-bad"
    ok = all((not o.passed) if expected_fail else o.passed for o in outcomes)
    sys.stdout.flush()
    os._exit(0 if ok else 1)  # the Temporal core can crash while the interpreter finalizes (sdk-python#300)


if __name__ == "__main__":
    main()
