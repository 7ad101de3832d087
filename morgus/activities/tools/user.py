"""notify_user and ask_user: talking to the human. ask_user is carried out by the workflow (a durable wait)."""

from __future__ import annotations

import httpx
from pydantic import Field

from morgus.activities.tools.registry import ExtraStep, ToolArgs, ToolContext, ToolOutput, ToolSpec, register, tool
from morgus.contracts import AskUserArgs, StepType
from morgus.tls import tls_context


class NotifyUserArgs(ToolArgs):
    message: str = Field(min_length=1, max_length=20_000, description="What to tell the user.")


@tool("notify_user", NotifyUserArgs, "Tell the user something (progress, a result); does not wait for a reply.")
async def notify_user(ctx: ToolContext, args: NotifyUserArgs) -> ToolOutput:
    webhook = ctx.settings.notify_webhook  # MORGUS_NOTIFY_WEBHOOK
    if webhook:
        # Slack-compatible JSON. A failure raises, so Temporal retries the activity (and the step is written once).
        async with httpx.AsyncClient(timeout=15, verify=await tls_context()) as client:
            resp = await client.post(webhook, json={"text": args.message, "task_id": ctx.task_id})
        if resp.status_code >= 400:
            raise RuntimeError(f"notification webhook answered HTTP {resp.status_code}")
    return ToolOutput(content="The user was notified.", steps=[ExtraStep(StepType.NOTIFICATION, args.message)])


register(
    ToolSpec(
        name="ask_user",
        description="Ask the user a question and wait for the answer. Use only when you cannot decide yourself.",
        args=AskUserArgs,
        run=None,
    )
)
