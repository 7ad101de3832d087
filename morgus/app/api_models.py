"""The HTTP API's request and response models: with them the OpenAPI document is the whole contract.

Rows reuse the shared contracts (`StepRecord`, `ArtifactRecord`, `Budget`, the enums) and add what the database
adds (ids, timestamps). Text a client sends is checked here, at the edge. A one-line field (title, search, model)
refuses every control character and lone surrogates with a 422: a terminal must never print an escape sequence
from a title. Multi-line text (a description, an answer, a reason) is what a person pasted: it is taken, NUL
becomes U+FFFD (as the store would do anyway, see morgus/text.py) and other control characters are kept, to be
escaped wherever they are printed; only lone surrogates, which no encoding can carry, are refused.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from morgus.contracts import (
    ApprovalPolicy,
    ArtifactRecord,
    Budget,
    DecisionResult,
    PauseResult,
    Phase,
    SayResult,
    StepRecord,
    TaskStatus,
)
from morgus.text import clean_text

# A one-line field (title, search, model name) refuses every control character, newlines included.
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _clean(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        if pattern.search(value):
            raise ValueError(f"must not contain {what}")
        if _SURROGATE.search(value):
            raise ValueError("must be valid Unicode text (no lone surrogates)")
        return value

    return AfterValidator(check)


def _multiline(value: str | None) -> str | None:
    if value is not None and _SURROGATE.search(value):
        raise ValueError("must be valid Unicode text (no lone surrogates)")
    return clean_text(value) if value is not None else None


Text = Annotated[str, AfterValidator(_multiline)]
Line = Annotated[str, _clean(_LINE_CONTROLS, "control characters (NUL, escape, newline…)")]


def check_line(value: str | None, field: str) -> str | None:
    """The same rule for a query parameter (FastAPI query params take no Annotated validators in every version)."""
    if value is not None and (_LINE_CONTROLS.search(value) or _SURROGATE.search(value)):
        raise ValueError(f"{field}: must not contain control characters (NUL, escape, newline…)")
    return value


# ---------------------------------------------------------------- requests


class ApiBudget(Budget):
    """`Budget` with finite, bounded numbers: JSON `Infinity`/`1e999` would otherwise reach the workflow."""

    model_config = ConfigDict(allow_inf_nan=False)

    max_tokens_total: int | None = Field(default=None, ge=1, le=10**12)
    max_cost_usd: float | None = Field(default=None, gt=0, le=1_000_000)
    max_steps: int | None = Field(default=None, ge=1, le=1_000_000)


class TaskCreate(BaseModel):
    title: Line = Field(default="", max_length=200)
    description: Text = Field(min_length=1, max_length=20_000)
    model: Line | None = Field(default=None, max_length=200)
    repo_url: Line | None = Field(default=None, max_length=2000)
    budget: ApiBudget = Field(default_factory=ApiBudget)
    approvals: ApprovalPolicy | None = Field(
        default=None,
        description="calls that need the user's yes; default: the server's (MORGUS_APPROVAL_TOOLS/_COMMANDS)",
    )


class AnswerBody(BaseModel):
    text: Text = Field(min_length=1, max_length=20_000)


class MessageBody(BaseModel):
    """A message to a running task (multi-line text, as an answer is)."""

    text: Text = Field(min_length=1, max_length=20_000)


class PauseBody(BaseModel):
    """Pause and resume take no fields; an optional `{}` body (anything else is a 422, like every write's)."""

    model_config = ConfigDict(extra="forbid")


class ApprovalBody(BaseModel):
    """The decision on the call a task waits to have approved."""

    call_id: Line = Field(min_length=1, max_length=200)
    decision: Literal["approve", "deny", "approve_all"]
    reason: Text = Field(default="", max_length=2000, description="for deny: the agent reads it as the call's result")


class CancelBody(BaseModel):
    reason: Text = Field(default="cancelled from the console", max_length=2000)


# ---------------------------------------------------------------- responses

# A response always carries every field, defaults included: the document says so (`required`), so the console's
# generated types do not mark `content` or `metadata` optional. The shape on the wire is unchanged.
RESPONSE = ConfigDict(json_schema_serialization_defaults_required=True)


class ErrorView(BaseModel):
    """Every error the API answers: one sentence."""

    error: str


class OkView(BaseModel):
    ok: bool


class HealthView(BaseModel):
    status: Literal["ok", "unhealthy"]
    temporal: bool
    database: bool


class ConfigView(BaseModel):
    models: list[str]
    default_model: str
    temporal_ui_url: str
    namespace: str
    auth: bool


class TaskView(BaseModel):
    """A row of `tasks` (the projection)."""

    id: UUID
    workflow_id: str
    title: str
    description: str
    status: TaskStatus
    phase: Phase | None
    model: str | None
    pending_question: str | None
    error_message: str | None
    step_count: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    cost_usd: float
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    price_known: bool = Field(
        default=False,
        description="every model the task uses has a known price, so cost_usd is its cost; else show its tokens",
    )


class TaskDetail(TaskView):
    temporal_url: str


class TaskPage(BaseModel):
    tasks: list[TaskView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null on the last page")
    counts: dict[TaskStatus, int]


class MessageSentView(SayResult):
    model_config = RESPONSE


class PauseView(PauseResult):
    model_config = RESPONSE


class DecisionView(DecisionResult):
    model_config = RESPONSE


class StepView(StepRecord):
    model_config = RESPONSE

    id: UUID
    task_id: UUID
    created_at: datetime


class StepsView(BaseModel):
    steps: list[StepView]


class ArtifactView(ArtifactRecord):
    model_config = RESPONSE

    id: UUID
    task_id: UUID
    created_at: datetime


class ArtifactsView(BaseModel):
    artifacts: list[ArtifactView]


class LiveEntryView(BaseModel):
    """A call in flight and its text so far: an LLM reply being generated or a command's output as it runs.
    `seq` is the step it becomes; `run` grows when the text starts over (a new attempt), so a client drops the
    text of a lower run. Offsets of the event stream's pieces count UTF-16 units (a browser string's length)."""

    model_config = RESPONSE

    seq: int
    kind: Literal["llm", "shell"]
    phase: Phase | None
    run: int
    attempt: int
    text: str
    updated_at: datetime


class LiveView(BaseModel):
    live: list[LiveEntryView]


class FileEntryView(BaseModel):
    """One entry of a workspace folder. A link is reported as a link: its target is never read or followed."""

    name: str = Field(description="the name; shown escaped (and `escaped` true) when it is not valid UTF-8")
    kind: Literal["file", "dir", "link", "other"] = Field(description="other: a FIFO, socket or device (never opened)")
    size: int | None = Field(description="bytes, for a file; null otherwise")
    mtime: datetime
    escaped: bool = Field(description="the name is not valid UTF-8: shown with escapes, it cannot be opened by name")


class FolderView(BaseModel):
    path: str
    entries: list[FileEntryView] = Field(description="folders first, then by name")
    truncated: bool = Field(description="the folder has more entries than the API lists")


class FileView(BaseModel):
    path: str
    size: int = Field(description="the file's size in bytes")
    mtime: datetime
    binary: bool = Field(description="not UTF-8 text (or a NUL in its first 8 KiB): `text` is null")
    truncated: bool = Field(description="`text` is the first MiB only")
    text: str | None


class ChangedFileView(BaseModel):
    status: str = Field(description="A added, M modified, D deleted, T type changed")
    path: str


class CommitView(BaseModel):
    sha: str
    author: str
    email: str
    date: datetime
    message: str = Field(description="the whole message (cut at 10,000 characters)")
    files: list[ChangedFileView] = Field(description="the files the commit changed (the first 200)")
    files_total: int = Field(description="how many files the commit changed")


class GitLogView(BaseModel):
    has_repository: bool = Field(description="false until the task ran git_init (or on another host)")
    commits: list[CommitView] = Field(description="newest first, at most 100")
    truncated: bool = Field(description="older commits exist beyond those listed")
