"""Typed contracts shared by the workflow, the activities, the CLI and the API.

Everything that crosses a Temporal boundary (workflow input, signals, queries, activity inputs and results) is
defined here once. Activity payloads stay small: the conversation itself lives in Postgres (`task_messages`) and
is passed by reference (its length), so workflow history grows with the number of steps, not with their square.
Its length is one job kept whole on purpose: this file is the whole wire format of the recorded histories, read in
one place when a change might break their replay; each model is a few lines and splitting them would scatter that.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TASK_QUEUE_DEFAULT = "morgus"
WORKFLOW_TYPE = "TaskWorkflow"


class TaskStatus(StrEnum):
    pending = "pending"
    running = "running"
    waiting_for_input = "waiting_for_input"
    waiting_for_approval = "waiting_for_approval"  # a call needs the user's yes (the `decide` update)
    paused = "paused"  # the `pause` update: no LLM or tool call starts until `resume`
    completed = "completed"
    error = "error"
    cancelled = "cancelled"


class Phase(StrEnum):
    RESEARCH = "RESEARCH"
    PLAN = "PLAN"
    BUILD = "BUILD"
    EXECUTE = "EXECUTE"
    FINALIZE = "FINALIZE"


PHASE_ORDER: tuple[Phase, ...] = tuple(Phase)


class StepType(StrEnum):
    TASK_START = "TASK_START"
    PHASE_START = "PHASE_START"
    LLM_RESPONSE = "LLM_RESPONSE"
    TOOL_CALL = "TOOL_CALL"
    TOOL_RESULT = "TOOL_RESULT"
    NOTIFICATION = "NOTIFICATION"
    QUESTION = "QUESTION"
    ANSWER = "ANSWER"
    USER_MESSAGE = "USER_MESSAGE"  # a message the user sent to the running task (`say`), as the model got it
    PAUSED = "PAUSED"  # the task stopped before its next call (`pause`)
    RESUMED = "RESUMED"  # it goes on where it stopped (`resume`)
    APPROVAL = "APPROVAL"  # a call waits for the user's yes; metadata: tool_call_id, tool, arguments, why
    DECISION = "DECISION"  # the user's decision on it; metadata: tool_call_id, tool, decision, reason
    ERROR = "ERROR"
    TASK_END = "TASK_END"


# ---------------------------------------------------------------- workflow input, signals, queries


class Budget(BaseModel):
    """Per-task limits, checked before every LLM call (so one call is the most a budget can be overshot by).
    None: no limit."""

    max_tokens_total: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=1)


class RaiseBudgetSignal(Budget):
    """New limits for a task (fields left out keep their value)."""


class TaskLimits(BaseModel):
    """Per-task limits; defaults are the product's, tests and users may lower them."""

    max_iterations_per_phase: int = Field(default=50, ge=1, le=10_000)
    loop_repeats: int = Field(default=3, ge=2, le=100)  # identical call+result (or reply) in a row = a loop
    # A phase ends when its work is shown: BUILD must change a file, EXECUTE must run a command or deploy, before
    # a reply without a tool call ends them (the model is told once, then the user is asked).
    require_work: bool = True


class ActivityTimeouts(BaseModel):
    """Seconds. Heartbeat timeouts are short so a dead worker is noticed quickly and the activity retried."""

    llm_start_to_close: float = 300
    tool_start_to_close: float = 600
    heartbeat: float = 15
    projection_start_to_close: float = 60


class SandboxOptions(BaseModel):
    """Limits of the task's sandbox. Network is off unless the task needs installs (`egress`)."""

    network: Literal["none", "egress"] = "none"
    create_at: Phase | None = None  # None: when a tool first needs it
    cpus: float = Field(default=1.0, gt=0, le=64)
    memory_mb: int = Field(default=1024, ge=64)
    pids: int = Field(default=256, ge=16)
    tmp_mb: int = Field(default=256, ge=16)


class SandboxRef(BaseModel):
    """A live sandbox: its name and the task queue of the one worker that can reach it."""

    name: str
    host_queue: str
    backend: str
    network: Literal["none", "egress"] = "none"


def _no_repeats() -> dict[str, list[str]]:
    return {"tool": [], "text": []}


class McpTool(BaseModel):
    """One tool of an operator's MCP server, as fixed for a task at its start (morgus/mcp/names.py): the name the
    model calls (`server__tool`), the server's own name for it, its schema, and how a call may be retried."""

    name: str
    server: str
    tool: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    phases: list[Phase] = Field(default_factory=list)
    read_only: bool = False
    idempotent: bool = False
    timeout_s: float = 60.0

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ResumeState(BaseModel):
    """Carried across continue-as-new: where the task was and what it had used."""

    phase_index: int = 0
    phase_started: bool = False
    iteration: int = 0
    message_count: int = 0
    step_seq: int = 0
    usage: TokenUsage = Field(default_factory=lambda: TokenUsage())
    pending_messages: list[ChatMessage] = Field(default_factory=list)
    pending_steps: list[StepRecord] = Field(default_factory=list)
    sandbox: SandboxRef | None = None
    budget: Budget | None = None  # raised limits, when the user raised them
    llm_calls: int = 0
    # loop detection: fingerprints of the latest turns per kind ("tool", "text"), and whether the model was warned
    repeats: dict[str, list[str]] = Field(default_factory=_no_repeats)
    loop_warned: bool = False
    runs: int = 1
    # phase work (workflow.patched "phase-work-v1"): what the current phase has shown, whether the model was told
    # it has shown nothing, whether the task ever changed a file, and whether the user let it go on without one
    phase_worked: bool = False
    work_nudged: bool = False
    built: bool = False
    work_waived: bool = False
    # EXECUTE's last command failed and nothing was deployed since; whether the model was told so (once a phase,
    # workflow.patched "execute-failed-run-v1")
    last_run_failed: bool = False
    failure_nudged: bool = False
    # how the phase ends is not said yet: BUILD and EXECUTE say it once their work is shown (workflow.patched
    # "finish-after-work-v1")
    finish_held: bool = False
    # FINALIZE itself committed or told the user something (workflow.patched "finalize-nudge-v1")
    finalize_worked: bool = False
    # EXECUTE was told that the URL its reply named does not exist (workflow.patched "execute-url-claim-v1")
    url_claim_nudged: bool = False
    # the tools that reported success in this task (sorted, each once): the final summary says what they did,
    # whatever the model claims (workflow.patched "checked-summary-v1")
    succeeded_tools: list[str] = Field(default_factory=list)
    # tools this worker cannot run (no network, no credentials), decided once at task start
    unavailable_tools: list[str] | None = None
    unavailable_tools_why: dict[str, str] | None = None
    # messages the user sent (`say`) that have not reached the model yet, oldest first (workflow.patched "steer-v1")
    inbox: list[str] = Field(default_factory=list)
    # the MCP servers' tools, listed once at task start (workflow.patched "mcp-tools-v1"); None: not listed
    mcp_tools: list[McpTool] | None = None
    # the user paused the task: no LLM or tool call starts until `resume` (workflow.patched "pause-v1")
    paused: bool = False
    # tools the user approved for the rest of the task (`decide` approve_all; workflow.patched "approvals-v1")
    approved_tools: list[str] = Field(default_factory=list)


class TaskInput(BaseModel):
    """Input of `TaskWorkflow`. Only `description` is required; `title` defaults to its first line."""

    title: str = ""
    description: str = Field(min_length=1, max_length=20_000)
    model: str | None = None
    repo_url: str | None = Field(default=None, max_length=2000, description="git remote for git_push (no credentials)")
    limits: TaskLimits = Field(default_factory=TaskLimits)
    budget: Budget = Field(default_factory=Budget)
    timeouts: ActivityTimeouts = Field(default_factory=ActivityTimeouts)
    sandbox: SandboxOptions = Field(default_factory=SandboxOptions)
    resume: ResumeState | None = None
    # which calls wait for the user's yes; None: none do (a task started with `temporal workflow start` and no
    # policy). The API, the CLI and the demo fill in the server's default (MORGUS_APPROVAL_TOOLS/_COMMANDS).
    approvals: ApprovalPolicy | None = None

    def display_title(self) -> str:
        if self.title.strip():
            return self.title.strip()[:200]
        first_line = self.description.strip().splitlines()[0] if self.description.strip() else "Untitled task"
        return first_line[:80]


_TOOL_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class ApprovalPolicy(BaseModel):
    """Which calls need a human yes before they run (morgus/workflows/approvals.py applies it). A speed bump for an
    honest model, not a sandbox boundary: see docs/architecture.md for what the command patterns catch."""

    model_config = ConfigDict(extra="forbid")

    tools: list[Annotated[str, Field(pattern=_TOOL_NAME)]] = Field(
        default_factory=lambda: ["git_push", "cloudflare_deploy"],
        max_length=50,
        description="tools every call of which needs approval (`shell_exec` here: every command)",
    )
    commands: list[
        Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")]
    ] = Field(
        default_factory=lambda: ["npm publish", "curl", "wget", "git push", "ssh", "scp"],
        max_length=100,
        description="shell_exec commands that need approval: a program name, optionally followed by words "
        "that must come after it in the same command ('npm publish' matches `npm --tag x publish`)",
    )


class ApprovalDecision(BaseModel):
    """The `decide` update: the user's answer to the call waiting for approval."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=200)
    decision: Literal["approve", "deny", "approve_all"]
    reason: str = Field(default="", max_length=2000, description="why (for deny: the model reads it)")


class PendingApproval(BaseModel):
    """The call a task waits to have approved (the `status` query's `pending_approval`)."""

    call_id: str
    tool: str
    arguments: str = Field(description="the call's arguments as the model wrote them (cut at 4000 characters)")
    why: str = Field(description="which rule of the policy asks for approval")


class DecisionResult(BaseModel):
    """What the `decide` update did."""

    call_id: str
    tool: str
    decision: Literal["approve", "deny", "approve_all"]


class PauseResult(BaseModel):
    """What the `pause` and `resume` updates did."""

    paused: bool = Field(description="the task is now paused (or pausing: the running call finishes first)")
    message: str


class AnswerSignal(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)


class SayMessage(BaseModel):
    """A message to a running task (the `say` update and signal): it reaches the model at its next turn, or is the
    answer when the task waits for one. The same bounds as an answer."""

    text: str = Field(min_length=1, max_length=20_000)


class SayResult(BaseModel):
    """What became of a message: the answer to the question the task waited on, or queued for the model's next turn."""

    answered: bool = Field(description="the task was waiting for an answer and took the message as it")
    question: str | None = Field(
        default=None,
        description="the question answered, when `answered`; otherwise the question of Morgus's own (no work, "
        "iteration cap, budget, loop) the task waits on first: only an answer settles it, the message is read after",
    )
    waiting: int = Field(default=0, description="messages now waiting for the model's next turn, this one included")


class CancelSignal(BaseModel):
    reason: str = "cancelled by user"


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the provider served from its prefix cache
    cost_usd: float = 0.0

    def plus(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
        )


class TaskStatusView(BaseModel):
    """Result of the `status` query."""

    task_id: str
    status: TaskStatus
    phase: Phase | None
    pending_question: str | None
    step_count: int
    iteration: int
    usage: TokenUsage
    error_message: str | None = None
    llm_calls: int = 0
    budget: Budget | None = None
    messages_waiting: int = 0  # messages sent with `say` that have not reached the model yet
    paused: bool = False  # pause requested: `status` becomes paused once the running call has finished
    pending_approval: PendingApproval | None = None


class TaskResult(BaseModel):
    task_id: str
    status: TaskStatus
    summary: str = ""
    error_message: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)


# ---------------------------------------------------------------- conversation


class ToolCall(BaseModel):
    id: str
    name: str
    digest: str = ""  # of the arguments, for loop detection when the arguments themselves are not carried
    # Raw JSON text exactly as the model produced it; None when too large to carry through workflow history,
    # in which case the tool activity reads it from the stored assistant message (claim-check).
    arguments: str | None


class AskUserArgs(BaseModel):
    """Arguments of `ask_user`, which the workflow itself handles (it waits for the `answer` signal)."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=4000, description="The question to ask the user.")


class ChatMessage(BaseModel):
    """One OpenAI chat message, stored in `task_messages` at `seq`."""

    seq: int
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    # Not sent to the model: what the activity that wrote this slot reported (usage, steps written, ok), so a
    # retried activity that finds its slot filled can return the same result without repeating the side effect.
    meta: dict[str, Any] = Field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.role == "assistant" and self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.role == "tool":
            msg["tool_call_id"] = self.tool_call_id
        return msg

    def full_arguments(self, call_id: str) -> str:
        for c in self.tool_calls:
            if c.id == call_id and c.arguments is not None:
                return c.arguments
        raise KeyError(call_id)


# ---------------------------------------------------------------- projection


class StepRecord(BaseModel):
    """A row of `task_steps`. `seq` is allocated by the workflow; the row id is derived from (task, seq)."""

    seq: int
    phase: Phase | None
    type: StepType
    content: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class ArtifactRecord(BaseModel):
    type: Literal["deployment", "repository", "file", "log"]
    name: str
    url: str | None = None
    path: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskRowUpdate(BaseModel):
    """Absolute values for the `tasks` row (never increments), so re-applying an update is harmless."""

    status: TaskStatus | None = None
    phase: Phase | None = None
    pending_question: str | None = None
    clear_question: bool = False
    error_message: str | None = None
    usage: TokenUsage | None = None
    step_count: int | None = None
    completed: bool = False


class ProjectionBatch(BaseModel):
    task_id: str
    workflow_id: str
    title: str
    description: str
    model: str | None
    update: TaskRowUpdate = Field(default_factory=TaskRowUpdate)
    steps: list[StepRecord] = Field(default_factory=list)


# ---------------------------------------------------------------- activities


class LlmRequest(BaseModel):
    task_id: str
    phase: Phase
    model: str | None
    # Slots [0, message_count) are filled, in Postgres or by `append` (small messages the workflow adds: phase
    # openings, answers, rejected calls); the reply goes to slot `message_count`.
    message_count: int
    append: list[ChatMessage] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    step_seq: int  # seq for the LLM_RESPONSE step; TOOL_CALL steps follow it
    pending_steps: list[StepRecord] = Field(default_factory=list)  # workflow steps written with this turn
    usage_before: TokenUsage = Field(default_factory=TokenUsage)
    mcp_tools: list[McpTool] = Field(default_factory=list)  # the schemas of the MCP tools in `tools`


class CondenseRequest(BaseModel):
    task_id: str
    phase: Phase
    model: str | None
    message_count: int
    append: list[ChatMessage] = Field(default_factory=list)


class CondenseResult(BaseModel):
    upto_seq: int
    condensed_messages: int
    usage: TokenUsage


class LlmTurn(BaseModel):
    seq: int  # where the assistant message was stored
    content: str | None
    tool_calls: list[ToolCall]
    usage: TokenUsage
    model: str
    steps_written: int


class ToolRequest(BaseModel):
    task_id: str
    phase: Phase
    call: ToolCall
    assistant_seq: int  # the message holding the call, read when `call.arguments` is None
    sandbox: SandboxRef | None = None  # set for tools that run in the sandbox
    repo_url: str | None = None  # the task's git remote, for git_push
    result_seq: int  # conversation seq for the tool message
    step_seq: int  # seq for the TOOL_RESULT step
    # parallel-tools-v1: the call has exactly one step slot (its TOOL_RESULT); its other steps (a notification) are
    # returned in ToolOutcome.extra_steps for the workflow to write after the turn's results
    defer_extra_steps: bool = False


class SandboxCreate(BaseModel):
    task_id: str
    workflow_id: str
    options: SandboxOptions


class TaskCapabilitiesRequest(BaseModel):
    task_id: str
    repo_url: str | None = None


class TaskCapabilities(BaseModel):
    unavailable: dict[str, str] = Field(default_factory=dict)  # tool -> why it cannot work here


class ToolOutcome(BaseModel):
    ok: bool
    preview: str  # the first few hundred characters, for the workflow's logs and the status view
    steps_written: int
    digest: str = ""  # of the whole result, for loop detection
    changed: bool = False  # the workspace changed (a file written, a command that wrote): BUILD's work is shown
    ran: bool = False  # the tool ran (its arguments were valid), whatever its outcome: a test run that failed ran
    extra_steps: list[StepRecord] = Field(default_factory=list)  # with defer_extra_steps: steps not written (seq -1)


class McpToolsRequest(BaseModel):
    task_id: str


class McpToolList(BaseModel):
    tools: list[McpTool] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # a server down, a tool left out: said in a step


class McpCallRequest(ToolRequest):
    server: str
    tool: str
    timeout_s: float = 60.0


ResumeState.model_rebuild()
LlmRequest.model_rebuild()
TaskInput.model_rebuild()
