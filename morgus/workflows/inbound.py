"""What reaches the workflow from outside: its input and the user's answers, decoded, validated and read.

One job: turn raw payloads into contracts without ever failing a workflow *task* (which Temporal would retry
forever): a bad input becomes `InvalidInput` with one sentence saying why, a bad answer an `InvalidAnswer` error
for its sender; and say what an answer means ('stop', 'move on', …). Deterministic: it uses only the workflow's
payload converter and the payload itself.
"""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from morgus.contracts import AnswerSignal, TaskInput
    from morgus.text import clean_text

# Answers to a stuck phase's questions (the loop, no work shown, the iteration cap); see `starts_with`.
STOP_WORDS = ("stop", "no", "cancel", "abort")
MOVE_ON_WORDS = ("move on", "next", "skip")


def starts_with(answer: str, words: tuple[str, ...]) -> bool:
    """The answer is one of `words`, alone or followed by more words ('stop, it is fine'), in any case."""
    a = answer.strip().lower()
    return any(a == w or a.startswith(w + " ") or a.startswith(w + ",") or a.startswith(w + ".") for w in words)


def decode_answer(raw: RawValue) -> AnswerSignal:
    try:
        value = workflow.payload_converter().from_payload(raw.payload, AnswerSignal)
    except Exception:  # noqa: BLE001 - a bad payload is the sender's mistake; tell them what is expected
        value = None
    if not isinstance(value, AnswerSignal):
        raise ApplicationError(
            'the answer must be {"text": "..."} with 1 to 20000 characters of valid text', type="InvalidAnswer"
        )
    return value


class InvalidInput(Exception):
    """The workflow's input is not a valid TaskInput; `args` is one sentence saying why."""


def decode_input(raw: RawValue | None) -> TaskInput:
    """The workflow validates its own input: a payload Temporal cannot decode or pydantic rejects (bad JSON, a
    lone surrogate, not an object, a 1 MB description, `max_iterations_per_phase: 0`) raises InvalidInput
    instead of failing every workflow task forever."""
    if raw is None:
        raise InvalidInput('no input was given; start the task with a JSON object such as {"description": "..."}')
    try:
        value = workflow.payload_converter().from_payload(raw.payload, TaskInput)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in e.errors()[:5]
        )
        raise InvalidInput(f"the task input is invalid: {clean_text(problems)[:1000]}") from None
    except Exception as e:  # noqa: BLE001 - any decoding failure (unknown encoding, bad bytes) is the same verdict
        raise InvalidInput(f"the task input could not be decoded: {clean_text(str(e))[:300]}") from None
    if not isinstance(value, TaskInput):  # e.g. a binary/null payload decodes to None
        raise InvalidInput('the task input must be a JSON object such as {"description": "..."}')
    return value


def placeholder_input(raw: RawValue | None) -> TaskInput:
    """What can be shown of an invalid input (title and description, cleaned and cut), for its error row."""
    title = description = ""
    try:
        value = json.loads(raw.payload.data) if raw is not None else None
        if isinstance(value, dict):
            given_title, given_description = value.get("title"), value.get("description")
            title = given_title if isinstance(given_title, str) else ""
            description = given_description if isinstance(given_description, str) else ""
    except (ValueError, RecursionError):  # RecursionError: `[[[[…` input, which would fail every workflow task
        pass
    return TaskInput.model_construct(
        title=clean_text(title)[:200] or "Invalid task input", description=clean_text(description)[:2000]
    )
