"""How a chat-completions error becomes a Temporal error (morgus/activities/llm.py): retryable or not, with the
provider's own message, and a context overflow named so the workflow condenses the conversation and tries again."""

from __future__ import annotations

import re
from datetime import timedelta

import openai
from temporalio.exceptions import ApplicationError

RETRYABLE_STATUS = {408, 409, 429}
NON_RETRYABLE_TYPE = "LlmRequestRejected"
CONTEXT_OVERFLOW_TYPE = "ContextOverflow"  # the workflow condenses the conversation and tries again


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


# llama.cpp's server says "exceeds the available context size"
_OVERFLOW = re.compile(
    r"context[ _]length|maximum context|context window|context size|too many tokens|prompt is too long", re.I
)


def classify_error(err: Exception) -> ApplicationError:
    """Map an OpenAI SDK error to a Temporal error: retryable or not, with a clear message."""
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        msg = f"LLM provider returned HTTP {status}: {_provider_message(err)}"
        code = (err.body or {}).get("error", {}).get("code") if isinstance(err.body, dict) else None
        if status in (400, 413) and (code == "context_length_exceeded" or _OVERFLOW.search(msg)):
            return ApplicationError(msg, type=CONTEXT_OVERFLOW_TYPE, non_retryable=True)
        if status in RETRYABLE_STATUS or status >= 500:
            return ApplicationError(msg, type="LlmTransientError", next_retry_delay=_retry_after(err))
        return ApplicationError(msg, type=NON_RETRYABLE_TYPE, non_retryable=True)
    if isinstance(err, openai.APITimeoutError):
        return ApplicationError(f"LLM request timed out: {err}", type="LlmTransientError")
    if isinstance(err, openai.APIConnectionError):
        return ApplicationError(f"cannot reach the LLM endpoint: {err}", type="LlmTransientError")
    return ApplicationError(f"LLM call failed: {type(err).__name__}: {err}", type="LlmTransientError")


def refuses_streaming(err: Exception) -> bool:
    """The server said it does not stream (or does not take `stream_options`): ask it again without streaming."""
    if not isinstance(err, openai.APIStatusError) or err.status_code not in (400, 404, 405, 415, 422, 501):
        return False
    msg = _provider_message(err)
    return "stream" in msg.lower() and not _OVERFLOW.search(msg)
