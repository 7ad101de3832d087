"""The LLM activity: one chat-completions call against any OpenAI-compatible endpoint.

The conversation is read from Postgres (the workflow passes only its length) and the reply is stored there in
the same transaction as its steps. Retries belong to Temporal (`max_retries=0` in the client): transient provider
errors raise a retryable error (honouring Retry-After); a rejected request fails the task with the provider's words.
"""

from __future__ import annotations

from datetime import timedelta

import openai
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import heartbeating, with_db_retry
from activities.tools import REGISTRY
from db.store import Store
from morgus.config import Settings
from morgus.contracts import ChatMessage, LlmRequest, LlmTurn, StepRecord, StepType, TokenUsage, ToolCall
from morgus.log import activity_logger

# Arguments larger than this stay in Postgres; the workflow and the tool activity pass a reference instead.
INLINE_ARGUMENTS_MAX = 8_000
STEP_CONTENT_MAX = 4_000
RETRYABLE_STATUS = {408, 409, 429}
NON_RETRYABLE_TYPE = "LlmRequestRejected"


def _retry_after(err: openai.APIStatusError) -> timedelta | None:
    value = err.response.headers.get("retry-after") if err.response is not None else None
    try:
        return timedelta(seconds=min(float(value), 300)) if value else None
    except ValueError:
        return None


def _provider_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return err.message


def classify_error(err: Exception) -> ApplicationError:
    """Map an OpenAI SDK error to a Temporal error: retryable or not, with a clear message."""
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        msg = f"LLM provider returned HTTP {status}: {_provider_message(err)}"
        if status in RETRYABLE_STATUS or status >= 500:
            return ApplicationError(msg, type="LlmTransientError", next_retry_delay=_retry_after(err))
        return ApplicationError(msg, type=NON_RETRYABLE_TYPE, non_retryable=True)
    if isinstance(err, openai.APITimeoutError):
        return ApplicationError(f"LLM request timed out: {err}", type="LlmTransientError")
    if isinstance(err, openai.APIConnectionError):
        return ApplicationError(f"cannot reach the LLM endpoint: {err}", type="LlmTransientError")
    return ApplicationError(f"LLM call failed: {type(err).__name__}: {err}", type="LlmTransientError")


def _clip(text: str | None, limit: int = STEP_CONTENT_MAX) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


class LlmActivities:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        # Local endpoints (Ollama, vLLM, the scripted server) need no key, but the SDK insists on one.
        self.client = openai.AsyncOpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key or "not-needed",
            max_retries=0,
            timeout=settings.llm_timeout_s,
        )

    def _turn_from(self, msg: ChatMessage) -> LlmTurn:
        return LlmTurn(
            seq=msg.seq,
            content=msg.content,
            tool_calls=[
                c if c.arguments is None or len(c.arguments) <= INLINE_ARGUMENTS_MAX else c.model_copy(update={"arguments": None})
                for c in msg.tool_calls
            ],
            usage=TokenUsage.model_validate(msg.meta.get("usage", {})),
            model=msg.meta.get("model", ""),
            steps_written=int(msg.meta.get("steps_written", 0)),
        )

    @activity.defn(name="llm_call")
    async def llm_call(self, req: LlmRequest) -> LlmTurn:
        log = activity_logger(req.task_id).bind(phase=req.phase)
        seq = req.message_count
        retry_db = self.settings.db_retry_s

        # An earlier attempt may have stored its reply and died before reporting it: reuse it, don't pay twice.
        existing = await with_db_retry(lambda: self.store.get_message(req.task_id, seq), give_up_after_s=retry_db, what="read reply")
        if existing is not None and existing.role == "assistant":
            log.info("llm reply already stored; reusing it", seq=seq)
            return self._turn_from(existing)

        stored = await with_db_retry(
            lambda: self.store.load_messages(req.task_id, req.message_count), give_up_after_s=retry_db, what="load conversation"
        )
        by_seq = {m.seq: m for m in stored} | {m.seq: m for m in req.append}
        if sorted(by_seq) != list(range(req.message_count)):
            missing = sorted(set(range(req.message_count)) - set(by_seq))
            raise ApplicationError(f"conversation of task {req.task_id} is missing messages {missing[:10]}", type="ConversationGap")
        messages = [by_seq[i].to_openai() for i in range(req.message_count)]
        tools = [REGISTRY[name].openai_schema() for name in req.tools if name in REGISTRY]
        model = req.model or self.settings.model

        async with heartbeating():
            try:
                resp = await self.client.chat.completions.create(
                    model=model, messages=messages, **({"tools": tools} if tools else {})
                )
            except Exception as e:  # noqa: BLE001 - every provider error becomes a classified Temporal error
                err = classify_error(e)
                log.warning("llm call failed", error=err.message, retryable=not err.non_retryable)
                raise err from e

        if not resp.choices:
            raise ApplicationError("LLM provider returned no choices", type="LlmTransientError")
        reply = resp.choices[0].message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in (reply.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        usage = TokenUsage(
            prompt_tokens=getattr(resp.usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(resp.usage, "completion_tokens", 0) or 0,
            total_tokens=getattr(resp.usage, "total_tokens", 0) or 0,
        )
        steps = [
            *req.pending_steps,
            StepRecord(
                seq=req.step_seq,
                phase=req.phase,
                type=StepType.LLM_RESPONSE,
                content=_clip(reply.content),
                metadata={"model": resp.model or model, "usage": usage.model_dump(), "tool_calls": len(calls)},
            ),
            *(
                StepRecord(
                    seq=req.step_seq + 1 + i,
                    phase=req.phase,
                    type=StepType.TOOL_CALL,
                    content=f"{c.name}({_clip(c.arguments, 1000)})",
                    metadata={"tool": c.name, "tool_call_id": c.id},
                )
                for i, c in enumerate(calls)
            ),
        ]
        assistant = ChatMessage(
            seq=seq,
            role="assistant",
            content=reply.content,
            tool_calls=calls,
            meta={"usage": usage.model_dump(), "model": resp.model or model, "steps_written": len(steps) - len(req.pending_steps)},
        )
        total = req.usage_before.plus(usage)
        await with_db_retry(
            lambda: self.store.save_llm_turn(req.task_id, [*req.append, assistant], steps, total),
            give_up_after_s=retry_db,
            what="store reply",
        )
        log.info("llm reply", seq=seq, tool_calls=[c.name for c in calls], tokens=usage.total_tokens)
        return self._turn_from(assistant)
