"""A live view of a task: new steps as they are projected, the question when it waits, the end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from temporalio.client import Client, WorkflowExecutionStatus

from morgus.app.terminal import term_safe
from morgus.config import Settings

ICONS = {
    "TASK_START": "▶",
    "PHASE_START": "■",
    "LLM_RESPONSE": "💬",
    "TOOL_CALL": "→",
    "TOOL_RESULT": "←",
    "NOTIFICATION": "🔔",
    "QUESTION": "?",
    "ANSWER": "✎",
    "USER_MESSAGE": "»",
    "PAUSED": "⏸",
    "RESUMED": "⏵",
    "APPROVAL": "⚠",
    "DECISION": "⚖",
    "ERROR": "✗",
    "TASK_END": "✓",
}


def render_step(step: dict[str, Any], width: int = 160) -> str:
    content = term_safe(" ".join((step.get("content") or "").split()))
    if len(content) > width:
        content = content[: width - 1] + "…"
    icon = ICONS.get(step["type"], "·")
    if step["type"] == "TOOL_RESULT" and not (step.get("metadata") or {}).get("ok", True):
        icon = "✗"
    phase = term_safe(step.get("phase") or "")
    return f"{step['seq']:>4} {phase:<8} {icon} {term_safe(step['type']):<12} {content}"


OnQuestion = Callable[[str, dict], Awaitable[None]]  # (task id, the QUESTION or APPROVAL step)
WAITS_ON_USER = ("QUESTION", "APPROVAL")  # steps after which the task waits for the user


async def follow(
    settings: Settings,
    client: Client,
    task_id: str,
    console: Console,
    on_question: OnQuestion | None = None,
    poll_s: float = 0.3,
) -> int:
    """Print steps until the task ends. Returns 0 if it completed, 1 otherwise."""
    from morgus.app.client import open_store

    store = await open_store(settings)
    handle = client.get_workflow_handle(f"task-{task_id}")
    last_seq = -1
    asked: set[int] = set()
    try:
        while True:
            for step in await store.fetch_steps(task_id, after=last_seq):
                console.print(render_step(step), markup=False)
                last_seq = step["seq"]
                if step["type"] in WAITS_ON_USER and on_question is not None and step["seq"] not in asked:
                    asked.add(step["seq"])
                    await on_question(task_id, step)
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                for step in await store.fetch_steps(task_id, after=last_seq):
                    console.print(render_step(step), markup=False)
                row = await store.fetch_task(task_id) or {}
                console.print(
                    f"task {task_id}: {term_safe(row.get('status', desc.status.name.lower() if desc.status else 'unknown'))}"
                    f"  ({row.get('total_tokens', 0)} tokens, {row.get('step_count', 0)} steps)",
                    markup=False,
                )
                return 0 if row.get("status") == "completed" else 1
            await asyncio.sleep(poll_s)
    finally:
        await store.close()
