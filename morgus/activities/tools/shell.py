"""shell_exec: one bash command in the task's sandbox, exactly as written, with a hard timeout."""

from __future__ import annotations

import asyncio
import hashlib
import re

from pydantic import Field

from morgus.activities.tools.registry import ToolArgs, ToolContext, ToolOutput, tool
from morgus.activities.tools.workspace import ToolError
from morgus.contracts import ArtifactRecord
from morgus.live_text import TerminalText
from morgus.sandbox.output import CappedOutput, LiveTap
from morgus.sandbox.policy import check_command

# Our own guard on top of the in-sandbox `timeout`: if the stream outlives it (a process that escaped and holds
# stdout open), everything in the sandbox is killed.
GRACE_S = 10


class ShellExecArgs(ToolArgs):
    command: str = Field(
        min_length=1, max_length=100_000, description="A bash command; runs as `bash -lc` in /workspace."
    )
    timeout_s: float = Field(
        default=120, gt=0, le=3600, description="Seconds before the command and all its processes are killed."
    )


def log_name(call_id: str) -> str:
    """The log's file name from the tool call id, which the model's provider chose: anything but a plain id
    (`../../etc/cron.d/x`, a slash, a NUL, 10 KB of text) becomes a digest, so the log stays in its folder."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", call_id):
        return f"{call_id}.log"
    return f"call-{hashlib.sha256(call_id.encode('utf-8', 'replace')).hexdigest()[:24]}.log"


def _describe(code: int, timed_out: bool, timeout_s: float, memory_mb: int) -> str:
    if timed_out:
        return f"exit code {code}: timed out after {timeout_s:g}s; the command and all its processes were killed"
    if code == 137:
        return f"exit code 137: killed (SIGKILL), most likely by the sandbox's memory limit ({memory_mb} MiB)"
    return f"exit code {code}"


@tool(
    "shell_exec",
    ShellExecArgs,
    "Run a bash command in the task's sandbox (cwd /workspace) and wait for it to finish. Returns the exit code, stdout and stderr. Do not start a server that keeps running: deploy_local serves a site.",
    sandbox=True,
)
async def shell_exec(ctx: ToolContext, args: ShellExecArgs) -> ToolOutput:
    denied = check_command(args.command, ctx.settings.policy_allowed)
    if denied:
        raise ToolError(denied.message())
    if ctx.sandbox is None or ctx.backend is None:
        raise ToolError("no sandbox is available for this task; the command was not run")
    log_path = ctx.settings.home.resolve() / "logs" / ctx.task_id / log_name(ctx.call_id)
    tap = None
    if ctx.live is not None:
        # the output as it arrives, to the live view (morgus/activities/live.py); the result below is unchanged
        tap, terminal = LiveTap(), TerminalText()
        ctx.live.pull = lambda: "".join(terminal.feed(stream, data) for stream, data in tap.take())
    # makes the folder and opens the file
    sink = await asyncio.to_thread(CappedOutput, log_path=log_path, tap=tap.feed if tap is not None else None)
    backend, name = ctx.backend, ctx.sandbox.name
    job = asyncio.ensure_future(
        asyncio.to_thread(backend.exec, name, args.command, timeout_s=args.timeout_s, env={}, sink=sink)
    )
    try:
        try:
            result = await asyncio.wait_for(asyncio.shield(job), args.timeout_s + GRACE_S)
        except TimeoutError:
            await asyncio.to_thread(backend.kill_all, name)
            result = await job
    except asyncio.CancelledError:  # the task was cancelled: don't leave the command running
        await asyncio.to_thread(backend.kill_all, name)
        raise
    finally:
        if job.done():
            sink.close()
    status = _describe(result.exit_code, result.timed_out, args.timeout_s, ctx.memory_mb)
    note = (
        f"\n[output capped at 16 KB of {sink.total_bytes} bytes; the full log is artifact {log_path.name}]"
        if sink.truncated
        else ""
    )
    content = f"{status}\n--- stdout ---\n{sink.stdout()}\n--- stderr ---\n{sink.stderr()}{note}"
    artifact = ArtifactRecord(
        type="log",
        name=f"shell_exec {ctx.call_id}",
        path=str(log_path),
        metadata={"exit_code": result.exit_code, "bytes": sink.total_bytes, "timed_out": result.timed_out},
    )
    return ToolOutput(content=content, ok=result.exit_code == 0, artifacts=[artifact])
