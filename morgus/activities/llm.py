"""The LLM activity: one chat-completions call against any OpenAI-compatible endpoint.

The conversation is read from Postgres (the workflow passes only its length) and the reply is stored there in
the same transaction as its steps. Retries belong to Temporal (`max_retries=0` in the client): transient provider
errors raise a retryable error (honouring Retry-After); a rejected request fails the task with the provider's words.
"""

from __future__ import annotations

import asyncio

import openai
from openai.types.chat import ChatCompletion
from structlog.typing import FilteringBoundLogger
from temporalio import activity
from temporalio.exceptions import ApplicationError

from morgus.activities.common import activity_store, heartbeating
from morgus.activities.live import LiveStream
from morgus.activities.llm_errors import CONTEXT_OVERFLOW_TYPE, classify_error, refuses_streaming
from morgus.activities.llm_reply import _with_usage_of, estimated_usage, reply_calls, unique_call_ids, usage_of
from morgus.activities.llm_stream import post_completion, stream_completion
from morgus.activities.tools import REGISTRY
from morgus.config import Settings
from morgus.context import (
    CONDENSE_PROMPT,
    Condensation,
    DoesNotFit,
    fit_request,
    is_protected,
    transcript,
    turn_start,
)
from morgus.contracts import (
    ChatMessage,
    CondenseRequest,
    CondenseResult,
    LlmRequest,
    LlmTurn,
    Phase,
    StepRecord,
    StepType,
    TokenUsage,
    ToolCall,
)
from morgus.db.store import Store
from morgus.ids import digest
from morgus.log import activity_logger
from morgus.models import ModelInfo, choose_model, model_info
from morgus.reply_text import drop_other_phase_text
from morgus.text import clean_text

# Arguments larger than this stay in Postgres; the workflow and the tool activity pass a reference instead.
INLINE_ARGUMENTS_MAX = 8_000
STEP_CONTENT_MAX = 4_000


def _clip(text: str | None, limit: int = STEP_CONTENT_MAX) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


class LlmActivities:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = activity_store(store, settings)
        self.live_store = store  # live text is best effort: it never waits out a database outage
        self.settings = settings
        # MORGUS_LLM_STREAM, until the server refuses a streamed request once (then this worker stops asking)
        self.stream = settings.llm_stream
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
                c
                if c.arguments is None or len(c.arguments) <= INLINE_ARGUMENTS_MAX
                else c.model_copy(update={"arguments": None})
                for c in msg.tool_calls
            ],
            usage=TokenUsage.model_validate(msg.meta.get("usage", {})),
            model=msg.meta.get("model", ""),
            steps_written=int(msg.meta.get("steps_written", 0)),
        )

    @staticmethod
    async def _read_reply(resp: ChatCompletion, seq: int, req: LlmRequest) -> tuple[str | None, list[ToolCall], dict]:
        """The reply's text and calls (recovered from the text where the model wrote them there), without text it
        wrote as Morgus for another phase. Off the event loop: the reply is the model's bytes, and parsing them
        must not hold up other heartbeats."""
        content, calls, info = await asyncio.to_thread(
            reply_calls, resp.choices[0].message, resp.choices[0].finish_reason, seq, req.tools
        )
        content, dropped = drop_other_phase_text(content, req.phase)
        return content, calls, {**info, "dropped_phase_text": dropped} if dropped else info

    @activity.defn(name="llm_call")
    async def llm_call(self, req: LlmRequest) -> LlmTurn:
        log = activity_logger(req.task_id).bind(phase=req.phase)
        seq = req.message_count

        # An earlier attempt may have stored its reply and died before reporting it: reuse it, don't pay twice.
        existing = await self.store.get_message(req.task_id, seq)
        if existing is not None and existing.role == "assistant":
            log.info("llm reply already stored; reusing it", seq=seq)
            return self._turn_from(existing)

        messages_in = await self._conversation(req.task_id, req.message_count, req.append)
        model, info = self._route(req.phase, req.model)
        mcp = {t.name: t for t in req.mcp_tools}  # an operator's MCP tools carry their own schemas
        tools = [
            REGISTRY[name].openai_schema() if name in REGISTRY else mcp[name].openai_schema()
            for name in req.tools
            if name in REGISTRY or name in mcp
        ]
        cond = await self.store.latest_condensation(req.task_id)
        messages, request_tokens, watermark = await asyncio.to_thread(self._fit, messages_in, cond, tools, info)

        extra: dict = {"tools": tools} if tools else {}
        if self.settings.llm_stop:
            extra["stop"] = list(self.settings.llm_stop)
        if self.settings.llm_max_tokens:
            extra["max_tokens"] = self.settings.llm_max_tokens
        # The reply streams into the live view as it is generated (morgus/activities/live.py); the step below is
        # still written once, from the completed reply. The heartbeat goes on in the background meanwhile: a
        # stream that stalls is ended by the client's read timeout (MORGUS_LLM_TIMEOUT_S), not by the heartbeat.
        live = LiveStream(
            self.live_store,
            task_id=req.task_id,
            seq=req.step_seq,
            kind="llm",
            phase=req.phase.value,
            attempt=activity.info().attempt,
        )
        async with heartbeating(), live:
            resp = await self._complete(log, model, messages, extra, live)
            content, calls, recovered = await self._read_reply(resp, seq, req)
            if not (content or "").strip() and not calls:
                # An empty reply would end the phase with nothing said; small models produce one now and then (or
                # only text written as Morgus, dropped above) and usually answer when asked again. Once only: a
                # model that keeps answering nothing is let through.
                log.warning("llm returned an empty reply; asking once more", **recovered)
                live.restart()
                again = await self._complete(log, model, messages, extra, live)
                resp = _with_usage_of(again, resp)
                first = recovered
                content, calls, recovered = await self._read_reply(resp, seq, req)
                # the step says the reply is a second answer, and what the first one lost
                recovered = {**recovered, "asked_again": True, **({"first_reply": first} if first else {})}
        if recovered:
            log.info("the reply needed help", calls=[c.name for c in calls], **recovered)
        # The reply goes back to the workflow as a Temporal payload, which (like the store) cannot carry a lone
        # surrogate: clean it here, with the store's own sanitiser, so the workflow sees what the store holds.
        content = clean_text(content) if content is not None else None
        calls = [
            ToolCall(
                id=clean_text(c.id or ""),
                name=clean_text(c.name or ""),
                arguments=clean_text(c.arguments or ""),
                digest=digest(clean_text(c.arguments or "")),
            )
            for c in calls
        ]
        seen = {t.id for m in messages_in for t in m.tool_calls}
        calls = unique_call_ids(calls, seen, seq)
        usage = usage_of(resp, info)
        if resp.usage is None:
            # a stream that sent no usage chunk (a server without `stream_options`): the budget still counts it
            usage = estimated_usage(request_tokens, content, calls, info)  # the size counted before sending
            recovered = {**recovered, "usage_estimated": True}
        steps = [
            *req.pending_steps,
            StepRecord(
                seq=req.step_seq,
                phase=req.phase,
                type=StepType.LLM_RESPONSE,
                content=_clip(content),
                metadata={
                    "model": resp.model or model,
                    "usage": usage.model_dump(),
                    "tool_calls": len(calls),
                    "request_tokens_estimate": request_tokens,
                    **recovered,
                },
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
            content=content,
            tool_calls=calls,
            meta={
                "usage": usage.model_dump(),
                "model": resp.model or model,
                "steps_written": len(steps) - len(req.pending_steps),
                "phase": req.phase.value,
                "plan": req.phase == Phase.PLAN and not calls,
                **({"elided_below": watermark} if watermark else {}),
            },
        )
        total = req.usage_before.plus(usage)
        await self.store.save_llm_turn(req.task_id, [*req.append, assistant], steps, total)
        log.info("llm reply", seq=seq, tool_calls=[c.name for c in calls], tokens=usage.total_tokens)
        return self._turn_from(assistant)

    async def _complete(
        self, log: FilteringBoundLogger, model: str, messages: list[dict], extra: dict, live: LiveStream | None = None
    ) -> ChatCompletion:
        try:
            resp = None
            if self.stream and live is not None:
                try:
                    resp = await stream_completion(self.client, model, messages, extra, live.write)
                except Exception as e:
                    if not refuses_streaming(e):
                        raise
                    log.warning("the LLM server refuses streaming; this worker asks without it from now on")
                    self.stream = False
                if resp is None and self.stream:
                    log.warning("the LLM server answered a streamed request with no chunk; asking without streaming")
                    self.stream = False
            if resp is None:
                resp = await post_completion(self.client, {"model": model, "messages": messages, **extra})
        except Exception as e:  # noqa: BLE001 - every provider error becomes a classified Temporal error
            err = classify_error(e)
            log.warning("llm call failed", error=err.message, retryable=not err.non_retryable)
            raise err from e
        if not resp.choices:
            raise ApplicationError("LLM provider returned no choices", type="LlmTransientError")
        return resp

    def _route(self, phase: Phase, task_model: str | None) -> tuple[str, ModelInfo]:
        model = choose_model(phase, task_model, self.settings.model, self.settings.code_model)
        return model, model_info(model, self.settings.model_config_file)

    # ------------------------------------------------------------------ context

    async def _conversation(self, task_id: str, message_count: int, append: list[ChatMessage]) -> list[ChatMessage]:
        stored = await self.store.load_messages(task_id, message_count)
        by_seq = {m.seq: m for m in stored} | {m.seq: m for m in append}
        if sorted(by_seq) != list(range(message_count)):
            missing = sorted(set(range(message_count)) - set(by_seq))
            raise ApplicationError(
                f"conversation of task {task_id} is missing messages {missing[:10]}", type="ConversationGap"
            )
        return [by_seq[i] for i in range(message_count)]

    def _fit(
        self, messages: list[ChatMessage], cond: Condensation | None, tools: list, info: ModelInfo
    ) -> tuple[list[dict], int, int]:
        """fit_request (morgus/context.py) within this model's share of its window; over it, ask the workflow to
        condense (ContextOverflow). Token counting is CPU work: called in a thread."""
        limit = int(info.context_window * self.settings.context_threshold)
        try:
            return fit_request(messages, cond, tools, limit)
        except DoesNotFit as e:
            raise ApplicationError(
                f"the conversation (~{e.size} tokens) exceeds {limit} tokens "
                f"({self.settings.context_threshold:.0%} of the {info.context_window}-token window)",
                type=CONTEXT_OVERFLOW_TYPE,
                non_retryable=True,
            ) from None

    @activity.defn(name="condense_conversation")
    async def condense(self, req: CondenseRequest) -> CondenseResult:
        """Summarise older turns (everything but the protected messages and the latest turns) with one LLM call."""
        log = activity_logger(req.task_id).bind(phase=req.phase)
        messages = await self._conversation(req.task_id, req.message_count, req.append)
        previous = await self.store.latest_condensation(req.task_id)
        floor = previous.upto_seq if previous else 0
        cut = next((c for keep in (4, 2, 1) if (c := turn_start(messages, keep)) is not None and c > floor), None)
        if cut is None:
            raise ApplicationError(
                "the conversation cannot be condensed further: its latest turn alone is too large "
                "for the model's context window",
                type="ContextExhausted",
                non_retryable=True,
            )
        older = [m for m in messages if floor <= m.seq < cut and not is_protected(m)]
        turns = sum(1 for m in older if m.role == "assistant") + (previous.turns if previous else 0)
        model, info = self._route(req.phase, req.model)
        text = transcript(older, previous, max_chars=int(info.context_window * self.settings.context_threshold * 2))
        async with heartbeating():
            try:
                resp = await self.client.chat.completions.create(
                    model=model,
                    messages=[{"role": "system", "content": CONDENSE_PROMPT}, {"role": "user", "content": text}],
                )
            except Exception as e:  # noqa: BLE001
                raise classify_error(e) from e
        summary = (resp.choices[0].message.content or "").strip() if resp.choices else ""
        if not summary:
            raise ApplicationError("the model returned an empty summary", type="LlmTransientError")
        condensation = Condensation(upto_seq=cut, summary=summary, turns=turns)
        await self.store.save_condensation(req.task_id, condensation)
        log.info("conversation condensed", upto_seq=cut, messages=len(older), turns=turns)
        return CondenseResult(upto_seq=cut, condensed_messages=len(older), usage=usage_of(resp, info))
