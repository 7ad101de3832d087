"""What reaches the workflow from outside: its input, the user's answers and messages, decoded, validated and read.

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

    from morgus.contracts import AnswerSignal, ApprovalDecision, SayMessage, TaskInput
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


# Messages sent with `say` wait in ResumeState.inbox (continue-as-new carries them, so the whole input must stay
# well under Temporal's 2 MB payload limit): at most this many, with at most this many characters in all (a
# character is at most 6 bytes of JSON, so 100,000 are at most 600 KB).
MAX_INBOX = 20
MAX_INBOX_CHARS = 100_000


def decode_say(raw: RawValue) -> str:
    """A `say` message's text, cleaned (NUL and lone surrogates become U+FFFD, as the store would do); an
    `InvalidMessage` error for its sender if the payload is not `{"text": "..."}` or the text is blank."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, SayMessage)
    except Exception:  # noqa: BLE001 - a bad payload is the sender's mistake; tell them what is expected
        value = None
    if not isinstance(value, SayMessage):
        raise ApplicationError(
            'the message must be {"text": "..."} with 1 to 20000 characters of valid text', type="InvalidMessage"
        )
    text = clean_text(value.text)
    if not text.strip():
        raise ApplicationError("the message is empty; give the text to send to the agent", type="InvalidMessage")
    return text


def decode_decision(raw: RawValue) -> ApprovalDecision:
    """A `decide` update's decision, its reason cleaned; an `InvalidDecision` error for its sender otherwise (an
    unknown decision kind, a missing call id, a reason over 2000 characters)."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, ApprovalDecision)
    except Exception:  # noqa: BLE001 - a bad payload is the sender's mistake; tell them what is expected
        value = None
    if not isinstance(value, ApprovalDecision):
        raise ApplicationError(
            'the decision must be {"call_id": "...", "decision": "approve" | "deny" | "approve_all", "reason": "..."} '
            "(reason at most 2000 characters)",
            type="InvalidDecision",
        )
    return value.model_copy(update={"reason": clean_text(value.reason)})


def inbox_problem(inbox: list[str], text: str) -> str | None:
    """Why `text` cannot wait in the inbox (full), or None."""
    if len(inbox) >= MAX_INBOX:
        return f"{MAX_INBOX} messages are already waiting for the agent's next turn; send more once it has read them"
    if sum(len(m) for m in inbox) + len(text) > MAX_INBOX_CHARS:
        return (
            f"the messages waiting for the agent's next turn would exceed {MAX_INBOX_CHARS} characters; "
            "send this one once it has read them"
        )
    return None


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
