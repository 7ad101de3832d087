"""TaskWorkflow: one task, five phases, each an agent loop of LLM and tool activities.

Deterministic and thin: it runs the phase loop and the agent loop, and waits for humans. The rules it applies live
in small pure modules, each tested without a server: morgus/workflows/budget.py (when a limit is reached, what "raise
it" means), morgus/workflows/loops.py (when the agent repeats itself), morgus/workflows/sandbox_lease.py (which sandbox
is held, and whether it is usable), morgus/workflows/inbound.py (its input and the user's answers, decoded and read),
morgus/workflows/ledger.py (every message and step sequence number). The conversation lives in Postgres; activities get its length, never its content, so
history grows linearly. Activities are called through their definitions (morgus/activities/*.py), so their results are
typed and their registered names, which the recorded histories hold, stay the same; tools (one activity per tool)
by their name `tool:<name>`.

The ledger alone decides sequence numbers: the workflow asks it for a turn's numbers and tells it what the turn wrote.

Longer than ~300 lines because the human waits (budget, loop, no work shown, iteration cap, ask_user) each need the
workflow's state and its durable wait.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    # Activities are called through their definitions (registered names unchanged) so their results are typed.
    from morgus.activities.capabilities import CapabilityActivities
    from morgus.activities.llm import LlmActivities
    from morgus.activities.mcp import McpActivities
    from morgus.activities.memory import MemoryActivities
    from morgus.activities.projection import ProjectionActivities
    from morgus.activities.sandbox import SandboxActivities
    from morgus.contracts import (
        PHASE_ORDER,
        AnswerSignal,
        ApprovalDecision,
        AskUserArgs,
        Budget,
        CancelSignal,
        CondenseRequest,
        DecisionResult,
        LlmRequest,
        LlmTurn,
        McpCallRequest,
        McpTool,
        McpToolList,
        McpToolsRequest,
        PauseResult,
        PendingApproval,
        Phase,
        ProjectionBatch,
        RaiseBudgetSignal,
        ResumeState,
        SandboxCreate,
        SandboxRef,
        SayResult,
        StepRecord,
        StepType,
        TaskCapabilitiesRequest,
        TaskResult,
        TaskRowUpdate,
        TaskStatus,
        TaskStatusView,
        ToolCall,
        ToolOutcome,
        ToolRequest,
    )
    from morgus.ids import task_id_from_workflow_id
    from morgus.memory.contracts import MemoryDistilRequest, MemoryRecall, MemoryRecallRequest
    from morgus.memory.notes import recall_block
    from morgus.phases import (
        ALL_TOOLS,
        PHASE_TOOLS_PATCH,
        PHASE_WORK_PATCH,
        PHASES,
        SANDBOX_TOOLS,
        PhaseSpec,
        allowed_tools,
        offered_tools,
        phase_tools,
        system_message,
    )
    from morgus.search_attributes import MORGUS_PHASE, MORGUS_STATUS
    from morgus.text import clean_json
    from morgus.workflows.approvals import approval_needed, shown_arguments
    from morgus.workflows.budget import BudgetPolicy, means_stop
    from morgus.workflows.inbound import (
        MOVE_ON_WORDS,
        STOP_WORDS,
        InvalidInput,
        decode_answer,
        decode_decision,
        decode_input,
        decode_say,
        inbox_problem,
        placeholder_input,
        starts_with,
    )
    from morgus.workflows.ledger import UNNUMBERED, Ledger, ToolSlots
    from morgus.workflows.loops import Loop, LoopDetector, text_mark, tool_mark
    from morgus.workflows.parallel import Touches, defers_too_much, touches, waits_for
    from morgus.workflows.sandbox_lease import SandboxLease
    from morgus.workflows.summary import DEPLOY_TOOLS, checked_facts

LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=["LlmRequestRejected"],
)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=5
)
# A command is never re-run behind the model's back: if the sandbox's worker dies, the workflow recreates the
# sandbox and runs the call once more itself.
SANDBOX_TOOL_RETRY = RetryPolicy(maximum_attempts=1)
SANDBOX_CREATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30), maximum_attempts=10
)
HOST_QUEUE_PICKUP = timedelta(seconds=30)  # how long a host queue may go unanswered before its worker counts as gone
# Projection must never give up: a database outage delays the mirror, it does not fail the task.
PROJECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=0
)


# ask_user arguments are cleaned (NUL, lone surrogates) before validation
ASK_USER_CLEAN_PATCH = "ask-user-clean-text"
# EXECUTE whose last command failed, with nothing deployed since, is told so once before it may end.
EXECUTE_FAILED_RUN_PATCH = "execute-failed-run-v1"
# said as what the reply was and naming deploy_local with its argument: a 1.5B model answered the first wording with
# prose 6/6 times and this one with deploy_local 5/6 (docs/eval.md)
FAILED_RUN_NUDGE = (
    "Your last command failed and nothing is deployed: any result or URL in your reply is not real. Reply now with "
    "only a tool call: deploy_local with the folder that holds the site (for a website), or shell_exec with a "
    "command that works. If the failure cannot be fixed in this phase, reply without a tool call and say why."
)
# FINALIZE that ends with nothing committed in the task and nothing told to the user in FINALIZE is told so once (a
# 1.5B model answered FINALIZE's opening with "Initialized repository. Committed changes…" and called no tool; a
# notify_user in BUILD, "Site deployed. URL is https://localhost:3000.", must not excuse it).
FINALIZE_NUDGE_PATCH = "finalize-nudge-v1"
FINALIZE_NUDGE = (
    "Nothing was committed and this phase told the user nothing: your reply called no tool, so what it says was "
    "not done. Reply now with only a tool call: git_init, then git_add and git_commit; then notify_user."
)
FINALIZE_WORK = frozenset({"git_commit", "notify_user"})
# EXECUTE that would end on a reply naming a URL, with nothing deployed, is told once that the URL does not exist:
# a 1.5B model ran its tests, then ended with "the site was deployed on the Morgus server. The URL is
# <https://crumbco.com>"; told this, it called deploy_local 6/6 times (docs/eval.md).
URL_CLAIM_PATCH = "execute-url-claim-v1"
URL_CLAIM_NUDGE = (
    "Nothing was deployed: your reply called no tool, and no tool returned the URL in it, so it does not exist. "
    "Reply with a deploy_local call now (its directory: the folder that holds the site), or, if the task asks for "
    "no deployment, end this phase in one line without a URL."
)
_URL = re.compile(r"https?://[^\s<>\"'`)\]]+")
# BUILD and EXECUTE open without how they end; it is said once their work is shown.
FINISH_AFTER_WORK_PATCH = "finish-after-work-v1"
# A completed task's summary ends with what the tools reported (files, runs, deployments, commits).
CHECKED_SUMMARY_PATCH = "checked-summary-v1"
# The loop question offers 'move on' (end the phase) and 'stop' (end the task) besides free words to the agent.
LOOP_CHOICES_PATCH = "loop-choices-v1"
# Messages the user sends (`say`) reach the model at its next turn; a phase does not end with one unread.
STEER_PATCH = "steer-v1"
# Cheap host tools run as local activities (issue 15): no activity task through the server, no extra workflow task
# per step. Only tools that do one bounded piece of work on this worker's own files or database: a local activity
# holds its workflow task while it runs and cannot heartbeat, so git, deploys, web and sandbox tools stay activities.
LOCAL_TOOLS_PATCH = "local-tools-v1"
LOCAL_TOOLS: frozenset[str] = frozenset({"file_read", "file_write", "file_list", "notify_user"})
USER_SAYS = "The user says: "
# The operator's MCP servers' tools (MORGUS_MCP_CONFIG), listed once at task start and offered in their phases.
MCP_PATCH = "mcp-tools-v1"
# A call with read-only or idempotent hints is retried if its server fails; any other call is made at most once
# (its effect may have happened before the failure), and the model hears the failure.
MCP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=3
)
MCP_ONCE = RetryPolicy(maximum_attempts=1)
MCP_START_GRACE_S = 30  # beyond a call's own deadline: starting a stdio server, connecting
# The user pauses the task (`pause`): no LLM or tool call starts until `resume`; the running one finishes.
PAUSE_PATCH = "pause-v1"
# A call the task's approval policy names waits for the user's decision (`decide`): approve, deny, approve_all.
APPROVALS_PATCH = "approvals-v1"
# A `;`, `|`, `&`... inside quotes no longer ends a command for the policy (`git -c 'a.b=;' push` asks). Marked only
# when it changes the answer, so a history without such a command replays as before.
APPROVALS_QUOTED_PATCH = "approvals-quoted-v1"
DENIED = "denied by the user: "
# Semantic memory: notes recalled into RESEARCH's and PLAN's openings (and memory_search offered), a finished task
# distilled into notes at FINALIZE. Never fails a task: memory that cannot be used is a step that says so.
MEMORY_PATCH = "memory-v1"
# The calls of one turn that share nothing run concurrently (morgus/workflows/parallel.py).
PARALLEL_TOOLS_PATCH = "parallel-tools-v1"
# A local tool (LOCAL_TOOLS) that fails every attempt is the model's to hear, as any other tool's failure.
LOCAL_TOOL_FAILURE_PATCH = "local-tool-failure-v1"
# At most this many calls of one turn run at once: a model's turn of 100 slow fetches would otherwise hold every
# activity slot of its worker (MORGUS_MAX_CONCURRENT_ACTIVITIES, 100) and stall every other task's calls there.
MAX_CALLS_IN_FLIGHT = 8
MEMORY_PHASES = (Phase.RESEARCH, Phase.PLAN)
MEMORY_TOOLS = frozenset({"memory_search"})
MEMORY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=3
)


# The task's first step (TASK_START, status running) is written by a local activity inside the first workflow task
# (issue 15, pickup): no round trip to the server to complete that task and hand out a projection activity before
# the user sees the task running. The same registered activity, retried for ever like the others; its result is a
# marker, so replay never writes it again, and a worker that dies before the workflow task completes re-runs it
# on the next (the row's id comes from the ledger's number: the same row, written once).
PICKUP_PATCH = "pickup-v1"


_T = TypeVar("_T")
# A call that failed: an activity's error, or a local activity's last failure (raised as the ApplicationError itself)
CallFailure = ActivityError | ApplicationError


class _Cancelled(Exception):
    pass


def _worker_lost(err: ActivityError) -> bool:
    """The activity timed out waiting for, or hearing from, the sandbox's worker."""
    return isinstance(err.cause, TemporalTimeout)


def _error_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _failure_message(err: BaseException) -> str:
    """The innermost error's message: what the provider or tool actually said."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    return getattr(err, "message", None) or str(err)


def _settled(task: asyncio.Task[_T]) -> _T | None:
    """What a call of a concurrent turn returned, None if it did not finish (cancelled, or it raised: reading its
    result would raise that error in place of the cancellation being handled)."""
    return task.result() if task.done() and not task.cancelled() and task.exception() is None else None


@workflow.defn(name="TaskWorkflow")
class TaskWorkflow:
    @workflow.init
    def __init__(self, inp: RawValue = None) -> None:  # type: ignore[assignment]
        # Raw, not TaskInput: the SDK would otherwise fail the workflow *task* (retried forever) on bad input.
        self._invalid_input: str | None = None
        try:
            self._input = decode_input(inp)
        except InvalidInput as e:
            self._invalid_input = str(e)
            self._input = placeholder_input(inp)
        self._state = (self._input.resume or ResumeState()).model_copy(deep=True)
        self._task_id = task_id_from_workflow_id(workflow.info().workflow_id)
        self._status = TaskStatus.running
        self._question: str | None = None
        self._answer: str | None = None
        self._cancel: CancelSignal | None = None
        self._error: str | None = None
        self._last_reply = ""
        # Message and step numbers; steps of calls the workflow rejected wait there for the next LLM turn.
        self._ledger = Ledger(self._state)
        self._lease = SandboxLease(self._state)  # the sandbox held and the supervisor keeping it alive
        self._current_tools = True
        self._memory = False  # MEMORY_PATCH
        self._work = False  # PHASE_WORK_PATCH: phases end on shown work, caps ask, cycles count, tools fit the worker
        self._mcp = False  # MCP_PATCH: the MCP servers' tools are listed at start and offered
        self._budget: Budget = self._state.budget or self._input.budget
        self._budget_raised = False
        self._ending = False  # the task is writing its end: it takes no more messages
        # The pending question is the agent's own (ask_user): a `say` answers it. One of Morgus's (no work shown, the
        # iteration cap, the budget, a loop) is not: its answers are commands ('no, use red' stops the task,
        # 'continue with blue' waives the phase's work, any words double the budget), so a message meant for the
        # agent waits in the inbox instead; only the `answer` update settles such a question.
        self._agent_asks = False
        # approvals-v1: the call waiting for the user's decision, and the decision once taken
        self._pending_approval: PendingApproval | None = None
        self._pause_gate = asyncio.Lock()  # parallel-tools-v1: the calls of a turn wait out a pause one at a time
        self._call_slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)  # parallel-tools-v1: a turn's calls in flight
        self._decision: ApprovalDecision | None = None

    # ------------------------------------------------------------------ signals and queries

    @workflow.signal(name="answer")
    def answer(self, signal: AnswerSignal) -> None:
        """Kept for the `temporal workflow signal` users: a signal cannot be refused, so a stray one is logged
        and dropped. `morgus task answer` and the API use the `answer` update, which refuses it to the sender."""
        if self._question is None:
            workflow.logger.warning("answer ignored: the task is not waiting for input")
            return
        self._answer = signal.text

    @workflow.update(name="answer")
    def answer_update(self, raw: RawValue) -> str:
        """Answer the pending question; returns the question answered. The validator refuses an answer with no
        question pending (or one already answered), and an empty, oversize or undecodable one."""
        self._answer_problem(raw)  # the state may have moved on between validation and this handler
        self._answer = decode_answer(raw).text
        assert self._question is not None
        return self._question

    @answer_update.validator
    def _validate_answer(self, raw: RawValue) -> None:
        self._answer_problem(raw)

    def _answer_problem(self, raw: RawValue) -> None:
        if self._question is None:
            raise ApplicationError(f"task {self._task_id} is not waiting for an answer", type="NotWaitingForAnswer")
        if self._answer is not None:
            raise ApplicationError(f"task {self._task_id} has already been answered", type="NotWaitingForAnswer")
        if not decode_answer(raw).text.strip():
            raise ApplicationError("the answer is empty; give the text to send to the agent", type="InvalidAnswer")

    @workflow.update(name="say")
    def say(self, raw: RawValue) -> SayResult:
        """A message to the running task: the answer if it waits on the agent's question (ask_user), else queued
        for the model's next turn (morgus/workflows/inbound.py bounds the queue). The validator refuses a blank,
        oversize or undecodable message, one the full queue cannot take, and any once the task is ending."""
        return self._take_message(self._say_checked(raw))  # checked again: the state may have moved on

    @say.validator
    def _validate_say(self, raw: RawValue) -> None:
        # Here, not in _say_checked: a validator is not part of history, so refusing in it needs no patch; the handler
        # and the signal (replayed) keep their recorded behaviour, and a message taken before the cancel is still
        # recorded, undelivered, at the end.
        if self._cancel is not None:
            raise ApplicationError(
                f"task {self._task_id} is being cancelled; it takes no more messages", type="TaskEnded"
            )
        self._say_checked(raw)

    @workflow.signal(name="say")
    def say_signal(self, raw: RawValue) -> None:
        """For `temporal workflow signal --name say`: a signal cannot be refused, so one the update would refuse
        is logged and dropped. `morgus task say` and the API use the update, which tells its sender."""
        try:
            self._take_message(self._say_checked(raw))
        except ApplicationError as e:
            workflow.logger.warning(f"message dropped: {e.message}")

    def _say_checked(self, raw: RawValue) -> str:
        if self._ending:
            raise ApplicationError(f"task {self._task_id} has ended; it takes no more messages", type="TaskEnded")
        text = decode_say(raw)
        problem = None if self._say_answers() else inbox_problem(self._state.inbox, text)
        if problem:
            raise ApplicationError(problem, type="TooManyMessages")
        return text

    def _waits_for_answer(self) -> bool:
        return self._question is not None and self._answer is None

    def _say_answers(self) -> bool:
        return self._waits_for_answer() and self._agent_asks

    def _take_message(self, text: str) -> SayResult:
        if self._say_answers():
            self._answer = text
            return SayResult(answered=True, question=self._question)
        self._state.inbox.append(text)
        pending = self._question if self._waits_for_answer() else None  # Morgus's: the sender must answer it
        return SayResult(answered=False, question=pending, waiting=len(self._state.inbox))

    # ------------------------------------------------------------------ pause and resume (PAUSE_PATCH)

    @workflow.update(name="pause")
    def pause(self, raw: RawValue = None) -> PauseResult:  # type: ignore[assignment]
        """Pause the task: no LLM or tool call starts until `resume`; the one running finishes first. The validator
        refuses a task already paused, ending or being cancelled. Any argument is ignored."""
        return self._paused()

    def _paused(self) -> PauseResult:
        self._pause_problem()
        self._state.paused = True
        running = self._status is TaskStatus.running
        return PauseResult(
            paused=True,
            message=f"task {self._task_id} pauses"
            + (" once its running call has finished" if running else "")
            + "; no LLM or tool call starts until it is resumed",
        )

    @pause.validator
    def _validate_pause(self, raw: RawValue = None) -> None:  # type: ignore[assignment]
        self._pause_problem()

    @workflow.signal(name="pause")
    def pause_signal(self, raw: RawValue = None) -> None:  # type: ignore[assignment]
        """For `temporal workflow signal --name pause`: one the update would refuse is logged and dropped."""
        try:
            self._paused()
        except ApplicationError as e:
            workflow.logger.warning(f"pause dropped: {e.message}")

    def _pause_problem(self) -> None:
        if self._ending:
            raise ApplicationError(f"task {self._task_id} has ended; there is nothing to pause", type="TaskEnded")
        if self._cancel is not None:
            raise ApplicationError(f"task {self._task_id} is being cancelled; it cannot be paused", type="TaskEnded")
        if self._state.paused:
            raise ApplicationError(f"task {self._task_id} is already paused", type="AlreadyPaused")

    @workflow.update(name="resume")
    def resume(self, raw: RawValue = None) -> PauseResult:  # type: ignore[assignment]
        """Resume a paused task where it stopped. The validator refuses a task that is not paused."""
        return self._resumed()

    def _resumed(self) -> PauseResult:
        self._resume_problem()
        self._state.paused = False
        return PauseResult(paused=False, message=f"task {self._task_id} resumes where it stopped")

    @resume.validator
    def _validate_resume(self, raw: RawValue = None) -> None:  # type: ignore[assignment]
        self._resume_problem()

    @workflow.signal(name="resume")
    def resume_signal(self, raw: RawValue = None) -> None:  # type: ignore[assignment]
        """For `temporal workflow signal --name resume`: one the update would refuse is logged and dropped."""
        try:
            self._resumed()
        except ApplicationError as e:
            workflow.logger.warning(f"resume dropped: {e.message}")

    def _resume_problem(self) -> None:
        if self._ending:
            raise ApplicationError(f"task {self._task_id} has ended; there is nothing to resume", type="TaskEnded")
        if self._cancel is not None:
            raise ApplicationError(f"task {self._task_id} is being cancelled; it cannot be resumed", type="TaskEnded")
        if not self._state.paused:
            raise ApplicationError(f"task {self._task_id} is not paused", type="NotPaused")

    # ------------------------------------------------------------------ approvals (APPROVALS_PATCH)

    @workflow.update(name="decide")
    def decide(self, raw: RawValue) -> DecisionResult:
        """The user's decision on the call waiting for approval: approve, deny (the reason is the call's result for
        the model) or approve_all (this call and every later call of that tool in this task). The validator refuses
        a decision for a call that is not waiting, and an unknown or undecodable decision."""
        return self._decided(raw)

    def _decided(self, raw: RawValue) -> DecisionResult:
        decision = self._decision_checked(raw)
        self._decision = decision
        assert self._pending_approval is not None
        return DecisionResult(call_id=decision.call_id, tool=self._pending_approval.tool, decision=decision.decision)

    @decide.validator
    def _validate_decide(self, raw: RawValue) -> None:
        self._decision_checked(raw)

    @workflow.signal(name="decide")
    def decide_signal(self, raw: RawValue) -> None:
        """For `temporal workflow signal --name decide`: one the update would refuse is logged and dropped."""
        try:
            self._decided(raw)
        except ApplicationError as e:
            workflow.logger.warning(f"decision dropped: {e.message}")

    def _decision_checked(self, raw: RawValue) -> ApprovalDecision:
        decision = decode_decision(raw)
        pending = self._pending_approval
        if pending is None or self._decision is not None:
            raise ApplicationError(f"task {self._task_id} has no call waiting for approval", type="NotPending")
        if decision.call_id != pending.call_id:
            raise ApplicationError(
                f"call {decision.call_id!r} is not waiting for approval; the waiting call is {pending.call_id!r} "
                f"({pending.tool})",
                type="NotPending",
            )
        return decision

    @workflow.signal(name="cancel")
    def cancel(self, signal: CancelSignal | None = None) -> None:
        self._cancel = signal or CancelSignal()

    @workflow.signal(name="raise_budget")
    def raise_budget(self, signal: RaiseBudgetSignal) -> None:
        self._budget = self._budget.model_copy(update=signal.model_dump(exclude_none=True))
        self._state.budget = self._budget
        self._budget_raised = True

    @workflow.query(name="status")
    def status(self) -> TaskStatusView:
        idx = self._state.phase_index
        return TaskStatusView(
            task_id=self._task_id,
            status=self._status,
            phase=PHASE_ORDER[idx] if idx < len(PHASE_ORDER) else None,
            pending_question=self._question,
            step_count=self._ledger.step_count,
            iteration=self._state.iteration,
            usage=self._state.usage,
            error_message=self._error,
            llm_calls=self._state.llm_calls,
            budget=self._budget,
            messages_waiting=len(self._state.inbox),
            paused=self._state.paused,
            pending_approval=self._pending_approval,
        )

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, inp: RawValue = None) -> TaskResult:  # type: ignore[assignment]
        if self._invalid_input is not None:
            await self._reject_input(self._invalid_input)
        task_input = self._input  # `inp` is the raw payload; __init__ decoded and validated it
        self._current_tools = workflow.patched(PHASE_TOOLS_PATCH)
        self._work = workflow.patched(PHASE_WORK_PATCH)
        self._mcp = self._work and workflow.patched(MCP_PATCH)
        self._memory = workflow.patched(MEMORY_PATCH)
        try:
            if task_input.resume is None:
                await self._set_status(
                    TaskStatus.running,
                    steps=[self._step(None, StepType.TASK_START, task_input.display_title())],
                    local=workflow.patched(PICKUP_PATCH),
                )
            if self._work and self._state.unavailable_tools is None:
                await self._learn_capabilities()
            elif self._lease.ref is not None:
                self._supervise(self._lease.ref)  # the previous run's supervisor ended with it
            while self._state.phase_index < len(PHASE_ORDER):
                spec = PHASES[PHASE_ORDER[self._state.phase_index]]
                if not self._state.phase_started:
                    await self._start_phase(spec)
                await self._agent_loop(spec)
                if spec.phase is Phase.FINALIZE and self._memory:
                    await self._distil(spec)
                self._state.phase_index += 1
                self._state.phase_started = False
                self._state.iteration = 0
            if self._work and self._input.limits.require_work and not (self._state.built or self._state.work_waived):
                raise ApplicationError(
                    "The task built nothing: no file was written or changed.", type="NothingBuilt", non_retryable=True
                )
            summary = self._last_reply or "Task completed."
            if self._work and workflow.patched(CHECKED_SUMMARY_PATCH):
                # the model's last words may claim a deployment or a commit no tool made: the summary ends with
                # what the tools reported
                summary = self._last_reply = (
                    f"{summary}\n\n{checked_facts(self._state.built, self._state.succeeded_tools)}"
                )
            await self._finish(TaskStatus.completed, summary)
            return self._result()
        except _Cancelled:
            reason = self._cancel.reason if self._cancel else "cancelled"
            await self._finish(TaskStatus.cancelled, f"Cancelled: {reason}")
            return self._result()
        except asyncio.CancelledError:
            # Cancelled through Temporal itself (UI / `temporal workflow cancel`): record it, then let it through.
            self._cancel = CancelSignal(reason="cancelled through Temporal")
            await self._finish(TaskStatus.cancelled, "Cancelled through Temporal")
            raise
        except (ActivityError, ApplicationError) as e:
            message = _failure_message(e)
            await self._finish(TaskStatus.error, message)
            raise ApplicationError(message, type="TaskFailed", non_retryable=True) from e

    async def _reject_input(self, message: str) -> None:
        """Fail at once, non-retryable, after an `error` row for the task (its id comes from the workflow id)."""
        self._ending = True
        self._error = message
        await self._set_status(
            TaskStatus.error, [self._step(None, StepType.ERROR, message)], completed=True, error_message=message
        )
        raise ApplicationError(message, type="TaskInputInvalid", non_retryable=True)

    async def _start_phase(self, spec: PhaseSpec) -> None:
        phase = spec.phase
        workflow.upsert_search_attributes([MORGUS_PHASE.value_set(phase.value)])
        await self._project(
            TaskRowUpdate(phase=phase), [self._step(phase, StepType.PHASE_START, f"Phase {phase.value} started")]
        )
        if self._input.sandbox.create_at == phase:
            await self._ensure_sandbox()
        if not self._ledger.has_messages:
            self._queue_message("system", system_message(self._input.display_title(), self._input.description))
        # BUILD and EXECUTE open without how they end, which is said once their work is shown: told both at once, a
        # 1.5B model answered BUILD's opening with the ending ("I wrote index.html", no call) 6/6 times, and with a
        # file_write call 6/6 times when the ending was left out (docs/eval.md)
        hold = (
            spec.needs_work is not None
            and self._input.limits.require_work
            and self._work
            and workflow.patched(FINISH_AFTER_WORK_PATCH)
        )
        opening = spec.opening_message(self._tools(spec), finish=not hold)
        if self._memory and phase in MEMORY_PHASES:
            opening += await self._recall(phase)
        self._queue_message("user", opening)
        self._state.phase_started = True
        self._state.iteration = 0
        self._state.phase_worked = self._state.work_nudged = False
        self._state.last_run_failed = self._state.failure_nudged = False
        self._state.finish_held = hold

    # ------------------------------------------------------------------ memory (MEMORY_PATCH)

    async def _recall(self, phase: Phase) -> str:
        """The owner's notes nearest to the task (and, for PLAN, to what RESEARCH found), as a block for the
        phase's opening message; a step says what was recalled, or that memory could not be used."""
        query = f"{self._input.display_title()}\n{self._input.description[:2000]}"
        if phase is Phase.PLAN and self._last_reply:
            query += f"\n{self._last_reply[:1000]}"
        try:
            recall = await workflow.execute_activity_method(
                MemoryActivities.recall,
                MemoryRecallRequest(task_id=self._task_id, phase=phase, query=query),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=MEMORY_RETRY,
            )
        except ActivityError as e:
            recall = MemoryRecall(enabled=True, unavailable=_failure_message(e))
        if recall.unavailable:
            self._ledger.defer_step(
                phase,
                StepType.NOTIFICATION,
                f"Memory unavailable ({recall.unavailable}); going on without it.",
                {"kind": "memory", "available": False},
            )
            return ""
        if recall.notes:
            self._ledger.defer_step(
                phase,
                StepType.NOTIFICATION,
                f"Memory: {len(recall.notes)} note(s) from earlier tasks recalled.",
                {"kind": "memory", "notes": [n.id for n in recall.notes]},
            )
        return recall_block(recall.notes)

    async def _distil(self, spec: PhaseSpec) -> None:
        """What is worth remembering from the task, stored as notes; a step says what was saved, or why not."""
        t = self._input.timeouts
        try:
            result = await self._cancellable(
                workflow.start_activity_method(
                    MemoryActivities.distil,
                    MemoryDistilRequest(
                        task_id=self._task_id,
                        phase=spec.phase,
                        model=self._input.model,
                        title=self._input.display_title(),
                        description=self._input.description[:4000],
                    ),
                    start_to_close_timeout=timedelta(seconds=t.llm_start_to_close),
                    heartbeat_timeout=timedelta(seconds=t.heartbeat),
                    retry_policy=MEMORY_RETRY,
                )
            )
        except ActivityError as e:
            text = f"Memory: nothing saved from this task ({_failure_message(e)})."
            self._ledger.defer_step(spec.phase, StepType.NOTIFICATION, text, {"kind": "memory", "saved": 0})
            return
        self._state.usage = self._state.usage.plus(result.usage)
        if not result.enabled:
            return
        if result.unavailable:
            text = f"Memory unavailable ({result.unavailable}); nothing saved from this task."
        elif result.saved:
            text = f"Memory: {result.saved} note(s) saved ({', '.join(sorted(set(result.kinds)))})."
        else:
            text = "Memory: nothing from this task worth remembering."
        self._ledger.defer_step(spec.phase, StepType.NOTIFICATION, text, {"kind": "memory", "saved": result.saved})

    async def _agent_loop(self, spec: PhaseSpec) -> None:
        limit = self._input.limits.max_iterations_per_phase
        while True:
            if self._cancel is not None:
                raise _Cancelled()
            if self._state.iteration >= limit and self._work:
                if await self._iteration_cap(spec, limit):
                    return
                continue
            if self._state.iteration >= limit:
                raise ApplicationError(
                    f"Phase {spec.phase.value} reached its iteration cap ({limit} LLM calls) without finishing; "
                    "raise limits.max_iterations_per_phase or make the task smaller.",
                    type="IterationCapReached",
                    non_retryable=True,
                )
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._lease.hand_over()  # the sandbox stays; the next run supervises it
                workflow.continue_as_new(self._input.model_copy(update={"resume": self._resume_state()}))

            reason = self._budget_policy().reason()
            if reason:
                await self._budget_reached(spec.phase, reason)
                continue
            turn = await self._call_llm(spec)
            if not turn.tool_calls:
                if self._state.inbox and workflow.patched(STEER_PATCH):
                    continue  # the user spoke during this turn: the model hears it before its phase may end
                if not self._work or await self._phase_may_end(spec, turn.content):
                    return
                continue
            fingerprints = await self._run_tool_calls(spec, turn)
            self._tell_how_to_end(spec)
            if await self._watch_for_loops(spec.phase, turn, fingerprints):
                return

    async def _call_llm(self, spec: PhaseSpec) -> LlmTurn:
        st = self._state
        await self._hold_if_paused(spec.phase)
        self._deliver_messages(spec.phase)
        slots = self._ledger.llm_slots()
        req = LlmRequest(
            task_id=self._task_id,
            phase=spec.phase,
            model=self._input.model,
            message_count=slots.message_count,
            append=slots.append,
            tools=list(self._offered(spec)),
            mcp_tools=self._mcp_tools(spec),
            step_seq=slots.step_seq,
            pending_steps=slots.pending_steps,
            usage_before=st.usage,
        )
        t = self._input.timeouts
        for condensations in range(3):
            try:
                turn = await self._cancellable(
                    workflow.start_activity_method(
                        LlmActivities.llm_call,
                        req,
                        start_to_close_timeout=timedelta(seconds=t.llm_start_to_close),
                        heartbeat_timeout=timedelta(seconds=t.heartbeat),
                        retry_policy=LLM_RETRY,
                    )
                )
                break
            except ActivityError as e:
                if _error_type(e) != "ContextOverflow" or condensations == 2:
                    raise
                await self._condense(spec, req)
        self._ledger.llm_turn_stored(slots, turn.seq, turn.steps_written)
        st.usage = st.usage.plus(turn.usage)
        st.iteration += 1
        st.llm_calls += 1
        if turn.content:
            self._last_reply = turn.content[:2000]
        return turn

    def _deliver_messages(self, phase: Phase) -> None:
        """The user's messages reach the model at this turn, in the order sent, each once: the ledger gives each
        its conversation slot and its USER_MESSAGE step, which this turn's LLM activity stores (a retried attempt
        stores the same slots again)."""
        if not self._state.inbox or not workflow.patched(STEER_PATCH):
            return
        for text in self._state.inbox:
            self._queue_message("user", f"{USER_SAYS}{text}")
            self._ledger.defer_step(phase, StepType.USER_MESSAGE, text, {"kind": "steer"})
        self._state.inbox = []

    async def _run_tool_calls(self, spec: PhaseSpec, turn: LlmTurn) -> list[str]:
        """Run the turn's calls; returns their fingerprints (tool, arguments, result) in call order, for loop
        detection. parallel-tools-v1: a turn of several calls runs the calls that share nothing concurrently
        (morgus/workflows/parallel.py); a turn that asks the user something, or whose notifications are too long to
        come back through the history, keeps running its calls one by one."""
        calls = turn.tool_calls
        if (
            len(calls) < 2
            or any(c.name == "ask_user" for c in calls)
            or defers_too_much([(c.name, c.arguments) for c in calls])
            or not workflow.patched(PARALLEL_TOOLS_PATCH)
        ):
            return [await self._run_tool_call(spec, call, turn.seq) for call in calls]
        return await self._run_concurrently(spec, calls, turn.seq)

    async def _run_tool_call(self, spec: PhaseSpec, call: ToolCall, assistant_seq: int) -> str:
        """Run one call; returns its fingerprint (tool, arguments, result) for loop detection."""
        if call.name == "ask_user" and call.name in self._tools(spec):
            await self._ask_user(spec.phase, call)
            # the same question again is a repeat however it was answered (call ids are unique, so not those)
            return f"ask_user:{call.digest}" if self._work else f"ask_user:{call.id}"
        refused = await self._refused(spec, call)
        if refused is not None:
            return refused
        slots = self._ledger.tool_slots()
        req = self._tool_request(spec, call, assistant_seq, slots)
        try:
            outcome = await self._dispatch(req)
        except (ActivityError, ApplicationError) as e:
            # A tool that keeps crashing is reported to the model, which can work around it; the task goes on. A local
            # activity's last failure is the ApplicationError itself: before local-tool-failure-v1 it ended the task
            # (a notification webhook down for 15 s failed the whole task).
            if not isinstance(e, ActivityError) and not workflow.patched(LOCAL_TOOL_FAILURE_PATCH):
                raise
            self._queue_tool_error(spec.phase, call, f"tool {call.name} failed: {_failure_message(e)}", req.result_seq)
            return f"{call.name}:{call.digest}:failed"
        self._ledger.tool_turn_stored(outcome.steps_written)
        if self._work:
            self._note_work(spec.phase, call, outcome)
        return f"{call.name}:{call.digest}:{outcome.digest}"

    async def _refused(self, spec: PhaseSpec, call: ToolCall) -> str | None:
        """The gate before a call runs: a tool the phase does not offer is refused, a paused task waits, a call
        the approval policy names waits for the user's decision. Returns the call's fingerprint if it may not run
        (its error or denial is queued for the model), None if it may."""
        tools = self._tools(spec)
        if call.name not in tools:
            known = "is not available" if call.name in ALL_TOOLS or self._mcp_tool(call.name) else "is an unknown tool"
            why = (self._state.unavailable_tools_why or {}).get(call.name) if self._work else None
            if why:
                known = f"cannot work here ({why}); it is not available"
            self._queue_tool_error(
                spec.phase, call, f"{call.name!r} {known} in phase {spec.phase.value}; available: {', '.join(tools)}"
            )
            return f"{call.name}:{call.digest}:rejected"
        await self._hold_if_paused(spec.phase)
        denied = await self._approval(spec.phase, call)
        if denied is not None:
            self._queue_message("tool", denied, tool_call_id=call.id)
            self._ledger.defer_step(
                spec.phase,
                StepType.TOOL_RESULT,
                denied,
                {"tool": call.name, "tool_call_id": call.id, "ok": False, "denied": True},
            )
            return f"{call.name}:{call.digest}:denied"
        await self._hold_if_paused(spec.phase)  # paused while it waited for the decision
        return None

    def _tool_request(self, spec: PhaseSpec, call: ToolCall, assistant_seq: int, slots: ToolSlots) -> ToolRequest:
        return ToolRequest(
            task_id=self._task_id,
            phase=spec.phase,
            call=call,
            assistant_seq=assistant_seq,
            result_seq=slots.result_seq,
            step_seq=slots.step_seq,
            repo_url=self._input.repo_url,
        )

    async def _dispatch(self, req: ToolRequest) -> ToolOutcome:
        """Run the call where its tool runs: an MCP server, the task's sandbox, this worker (local activity) or
        any worker."""
        mcp = self._mcp_tool(req.call.name)
        if mcp is not None:
            return await self._cancellable(self._start_mcp_call(req, mcp))
        if req.call.name in SANDBOX_TOOLS:
            return await self._run_in_sandbox(req)
        if req.call.name in LOCAL_TOOLS and workflow.patched(LOCAL_TOOLS_PATCH):
            return await self._cancellable(self._start_local_tool(req))
        return await self._cancellable(self._start_tool(req, TOOL_RETRY))

    async def _run_concurrently(self, spec: PhaseSpec, calls: list[ToolCall], assistant_seq: int) -> list[str]:
        """parallel-tools-v1. Every call passes the gate first, in order (refused, approved or denied one by one,
        so the user decides each before any runs), and is given its slots; then the calls run, each as soon as the
        earlier calls it depends on have finished. Their outcomes are taken in call order once all have finished.
        A worker that dies mid-turn loses nothing: the calls that finished are in the history and are not run
        again; the others are retried."""
        planned: list[ToolRequest | str] = []
        try:
            for call in calls:
                refused = await self._refused(spec, call)
                if refused is not None:
                    planned.append(refused)
                    continue
                req = self._tool_request(spec, call, assistant_seq, self._ledger.reserve_tool_slots())
                planned.append(req.model_copy(update={"defer_extra_steps": True}))
        except BaseException:  # cancelled while a later call waited for approval or a resume: none ran
            given = [p for p in planned if isinstance(p, ToolRequest)]
            self._unfinished(spec.phase, given, [None] * len(given))
            raise
        runs = [p for p in planned if isinstance(p, ToolRequest)]
        order = waits_for([self._touches(r.call.name) for r in runs])
        started: list[asyncio.Task[ToolOutcome | CallFailure]] = []
        for req, before in zip(runs, order, strict=True):
            started.append(asyncio.create_task(self._run_after([started[i] for i in before], spec.phase, req)))
        try:
            settled = await asyncio.gather(*started, return_exceptions=True)
        except asyncio.CancelledError:  # cancelled through Temporal: the task ends with the turn unfinished
            self._unfinished(spec.phase, runs, [_settled(t) for t in started])
            raise
        outcomes: list[ToolOutcome | CallFailure] = []
        for result in settled:
            if isinstance(result, BaseException) and not isinstance(result, CallFailure):
                # a cancellation (or a workflow error) ends the turn, once every call has settled
                self._unfinished(spec.phase, runs, settled)
                raise result
            outcomes.append(result)
        taken = iter(outcomes)  # in the order of `runs`, which is the calls' order
        return [p if isinstance(p, str) else self._took(spec.phase, p, next(taken)) for p in planned]

    def _unfinished(self, phase: Phase, runs: list[ToolRequest], settled: Sequence[object]) -> None:
        """The task ends mid-turn: a call that did not finish leaves its reserved TOOL_RESULT step empty, so a step
        says it did not run (steps are written once: a result its activity stored anyway is kept); a call that
        failed gets its error step, which its outcome would have given it."""
        for req, result in zip(runs, settled, strict=True):
            if isinstance(result, CallFailure):  # failed before the end: its error in its slots, as in a turn
                self._took(phase, req, result)
            elif not isinstance(result, ToolOutcome):
                self._ledger.defer_step(
                    phase,
                    StepType.TOOL_RESULT,
                    f"Not run: the task ended before {req.call.name} finished.",
                    {"tool": req.call.name, "tool_call_id": req.call.id, "ok": False, "unfinished": True},
                    seq=req.step_seq,
                )

    def _touches(self, name: str) -> Touches:
        mcp = self._mcp_tool(name)
        return touches(name, mcp.server, mcp.read_only) if mcp is not None else touches(name)

    async def _run_after(
        self, before: list[asyncio.Task[ToolOutcome | CallFailure]], phase: Phase, req: ToolRequest
    ) -> ToolOutcome | CallFailure:
        """One call of a concurrent turn: waits for the calls it depends on (whatever their outcome) and for one of
        the turn's MAX_CALLS_IN_FLIGHT slots, then for a pause taken meanwhile (one pause step for the turn, however
        many calls wait), then runs."""
        if before:
            await asyncio.gather(*before, return_exceptions=True)
        async with self._call_slots:  # a call that waited for a slot waited like one that waited for another call
            if self._cancel is not None:
                raise _Cancelled()
            if self._state.paused:  # taken while it waited (calls that start at once passed the gate just now)
                async with self._pause_gate:
                    if self._cancel is not None:  # cancelled while an earlier call of the turn held the pause
                        raise _Cancelled()
                    await self._hold_if_paused(phase)
            try:
                return await self._dispatch(req)
            except (ActivityError, ApplicationError) as e:  # a local activity's last failure is an ApplicationError
                return e

    def _took(self, phase: Phase, req: ToolRequest, result: ToolOutcome | CallFailure) -> str:
        """A concurrent call's outcome, taken in call order: its error in its own slots, or its deferred steps
        and what it shows of the phase's work."""
        call = req.call
        if isinstance(result, CallFailure):
            error = f"tool {call.name} failed: {_failure_message(result)}"
            self._queue_tool_error(phase, call, error, req.result_seq, step_seq=req.step_seq)
            return f"{call.name}:{call.digest}:failed"
        for s in result.extra_steps:
            self._ledger.defer_step(phase, s.type, s.content, s.metadata)
        if self._work:
            self._note_work(phase, call, result)
        return f"{call.name}:{call.digest}:{result.digest}"

    # ------------------------------------------------------------------ phase work and bounds (PHASE_WORK_PATCH)

    async def _learn_capabilities(self) -> None:
        caps = await workflow.execute_activity_method(
            CapabilityActivities.task_capabilities,
            TaskCapabilitiesRequest(task_id=self._task_id, repo_url=self._input.repo_url),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=TOOL_RETRY,
        )
        self._state.unavailable_tools = sorted(caps.unavailable)
        self._state.unavailable_tools_why = dict(caps.unavailable)
        if self._mcp:
            await self._learn_mcp_tools()

    async def _learn_mcp_tools(self) -> None:
        """The MCP servers' tools, fixed for the whole task (continue-as-new carries them): the same list in every
        turn keeps the run deterministic and the provider's prompt cache valid. A server down now stays out."""
        try:
            listed = await workflow.execute_activity_method(
                McpActivities.mcp_tools,
                McpToolsRequest(task_id=self._task_id),
                start_to_close_timeout=timedelta(minutes=3),  # each server's listing is bounded at 60 s
                heartbeat_timeout=timedelta(seconds=self._input.timeouts.heartbeat),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except ActivityError as e:  # the task does its work without them rather than failing at its start
            listed = McpToolList(notes=[f"MCP tools could not be listed ({_failure_message(e)}); none are offered."])
        self._state.mcp_tools = listed.tools
        for note in listed.notes:
            self._ledger.defer_step(None, StepType.NOTIFICATION, note, {"kind": "mcp"})

    def _mcp_tool(self, name: str) -> McpTool | None:
        if not self._mcp:
            return None
        return next((t for t in self._state.mcp_tools or () if t.name == name), None)

    def _mcp_names(self, phase: Phase) -> tuple[str, ...]:
        if not self._mcp:
            return ()
        return tuple(t.name for t in self._state.mcp_tools or () if phase in t.phases)

    def _mcp_tools(self, spec: PhaseSpec) -> list[McpTool]:
        """The schemas of the MCP tools offered in this phase, sent with the LLM request."""
        names = set(self._mcp_names(spec.phase))
        return [t for t in self._state.mcp_tools or () if t.name in names]

    def _start_mcp_call(self, req: ToolRequest, tool: McpTool) -> workflow.ActivityHandle[ToolOutcome]:
        return workflow.start_activity_method(
            McpActivities.mcp_call,
            McpCallRequest(**req.model_dump(), server=tool.server, tool=tool.tool, timeout_s=tool.timeout_s),
            start_to_close_timeout=timedelta(seconds=tool.timeout_s + MCP_START_GRACE_S),
            heartbeat_timeout=timedelta(seconds=self._input.timeouts.heartbeat),
            retry_policy=MCP_RETRY if tool.read_only or tool.idempotent else MCP_ONCE,
        )

    def _note_work(self, phase: Phase, call: ToolCall, outcome: ToolOutcome) -> None:
        """What a phase must show before it may end: BUILD a changed workspace, EXECUTE a command that ran (a
        failing test run is still a run) or a deployment."""
        st = self._state
        if outcome.changed:
            st.built = True
        if outcome.ok and call.name not in st.succeeded_tools:
            st.succeeded_tools = sorted({*st.succeeded_tools, call.name})
        if phase is Phase.BUILD and outcome.changed:
            st.phase_worked = True
        if phase is Phase.EXECUTE and (
            (call.name == "shell_exec" and outcome.ran) or (call.name in DEPLOY_TOOLS and outcome.ok)
        ):
            st.phase_worked = True
        if phase is Phase.EXECUTE and call.name == "shell_exec" and outcome.ran:
            st.last_run_failed = not outcome.ok
        if phase is Phase.EXECUTE and call.name in DEPLOY_TOOLS and outcome.ok:
            st.last_run_failed = False
        if phase is Phase.FINALIZE and outcome.ok and call.name in FINALIZE_WORK:
            st.finalize_worked = True

    def _tell_how_to_end(self, spec: PhaseSpec) -> None:
        """finish-after-work-v1: once the turn's calls have shown the phase's work, how the phase ends is said. After
        the whole turn, never between its tool results (a user message there breaks the protocol: every call of an
        assistant message is answered first; the scripted provider refused the demo's two-file turn). EXECUTE hears
        it after a run that worked or a deployment: told after a failed `npm test`, a 1.5B model ended the phase at
        once ("Tests run. URL is https://localhost:3000.")."""
        st = self._state
        if st.phase_worked and st.finish_held and not st.last_run_failed:
            st.finish_held = False
            self._queue_message("user", spec.finish)

    async def _phase_may_end(self, spec: PhaseSpec, reply: str | None = None) -> bool:
        """A reply without a tool call ends the phase once its work is shown. Otherwise the model is told once;
        if it still has nothing, the user decides: move on anyway, retry (their words reach the model), or stop."""
        st = self._state
        if (
            spec.phase is Phase.EXECUTE
            and st.phase_worked
            and not st.url_claim_nudged
            and not set(DEPLOY_TOOLS) & set(st.succeeded_tools)
            and self._input.limits.require_work
            and _URL.search(reply or "") is not None
            and workflow.patched(URL_CLAIM_PATCH)
        ):
            st.url_claim_nudged = True
            self._queue_message("user", URL_CLAIM_NUDGE)
            return False
        if (
            st.phase_worked
            and st.last_run_failed
            and not st.failure_nudged
            and self._input.limits.require_work
            and spec.phase is Phase.EXECUTE
            and workflow.patched(EXECUTE_FAILED_RUN_PATCH)
        ):
            # a failing run is EXECUTE's work, but ending on it leaves the task undeployed: said once (a 1.5B model
            # ran a missing script, exit 1, then wrote "Deploy 'site' with deploy_local" as text and stopped)
            st.failure_nudged = True
            self._queue_message("user", FAILED_RUN_NUDGE)
            return False
        if (
            spec.phase is Phase.FINALIZE
            and not st.work_nudged
            and not st.finalize_worked
            and "git_commit" not in st.succeeded_tools
            and self._input.limits.require_work
            and workflow.patched(FINALIZE_NUDGE_PATCH)
        ):
            st.work_nudged = True
            self._queue_message("user", FINALIZE_NUDGE)
            return False
        if spec.needs_work is None or not self._input.limits.require_work or st.phase_worked:
            return True
        if not st.work_nudged:
            st.work_nudged = True
            self._queue_message("user", spec.nudge)
            return False
        phase = spec.phase.value
        answer = await self._wait_for_human(
            spec.phase,
            f"{phase} produced no {spec.needs_work}. Continue anyway, retry, or stop? "
            "Answer 'continue' to go to the next phase, 'stop' to end the task, or anything else to "
            "retry (your words are passed to the agent).",
            {"kind": "no_work"},
        )
        assert answer is not None
        if starts_with(answer, STOP_WORDS):
            raise ApplicationError(
                f"Stopped by the user: {phase} produced no {spec.needs_work}.", type="NoWork", non_retryable=True
            )
        if starts_with(answer, ("continue", "yes", *MOVE_ON_WORDS)):
            st.work_waived = True
            return True
        said = "" if answer.strip().lower() == "retry" else f"The user says: {answer}\n"
        self._queue_message("user", f"{said}{spec.nudge}")
        return False

    async def _iteration_cap(self, spec: PhaseSpec, limit: int) -> bool:
        """The phase used its LLM calls. RESEARCH, PLAN and FINALIZE move on with what they have; BUILD and
        EXECUTE ask the user: more calls, move on, or stop. Returns True to end the phase."""
        phase = spec.phase.value
        if spec.needs_work is None:
            self._ledger.defer_step(
                spec.phase,
                StepType.NOTIFICATION,
                f"Phase {phase} reached its iteration cap ({limit} LLM calls); moving on with what it has.",
                {"kind": "iteration_cap"},
            )
            return True
        answer = await self._wait_for_human(
            spec.phase,
            f"Phase {phase} reached its iteration cap ({limit} LLM calls) without finishing. Answer "
            f"'continue' for {limit} more calls, 'move on' to go to the next phase, or 'stop'.",
            {"kind": "iteration_cap"},
        )
        assert answer is not None
        if starts_with(answer, STOP_WORDS):
            raise ApplicationError(
                f"Stopped by the user: phase {phase} reached its iteration cap ({limit} LLM calls).",
                type="IterationCapReached",
                non_retryable=True,
            )
        if starts_with(answer, MOVE_ON_WORDS):
            self._state.work_waived = self._state.work_waived or not self._state.phase_worked
            return True
        self._state.iteration = 0
        if answer.strip().lower() != "continue":
            self._queue_message("user", f"The user says how to proceed: {answer}")
        return False

    def _start_tool(
        self, req: ToolRequest, retry: RetryPolicy, queue: str | None = None
    ) -> workflow.ActivityHandle[ToolOutcome]:
        """Tools are registered one activity per tool, named `tool:<name>` (morgus/activities/tool_runner.py), so they are
        started by that name; the result type is given here so callers get a ToolOutcome."""
        timeouts = self._input.timeouts
        return workflow.start_activity(
            f"tool:{req.call.name}",
            req,
            result_type=ToolOutcome,
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=timeouts.tool_start_to_close),
            schedule_to_start_timeout=HOST_QUEUE_PICKUP if queue else None,
            heartbeat_timeout=timedelta(seconds=timeouts.heartbeat),
            retry_policy=retry,
        )

    def _start_local_tool(self, req: ToolRequest) -> workflow.ActivityHandle[ToolOutcome]:
        """A LOCAL_TOOLS call as a local activity on this worker: the same registered activity, retried by the worker
        (its result, or its last failure, is recorded as a marker, so replay never runs it again)."""
        return workflow.start_local_activity(
            f"tool:{req.call.name}",
            req,
            result_type=ToolOutcome,
            start_to_close_timeout=timedelta(seconds=min(self._input.timeouts.tool_start_to_close, 60)),
            retry_policy=TOOL_RETRY,
        )

    async def _run_in_sandbox(self, req: ToolRequest) -> ToolOutcome:
        """Run a sandbox tool on the worker that owns the sandbox; if that worker is gone, recreate the sandbox
        on another worker (same workspace) and run the call there, once."""
        for attempt in range(2):
            ref = await self._ensure_sandbox()
            try:
                return await self._cancellable(
                    self._start_tool(req.model_copy(update={"sandbox": ref}), SANDBOX_TOOL_RETRY, ref.host_queue)
                )
            except ActivityError as e:
                if attempt == 1 or not _worker_lost(e):
                    raise
                workflow.logger.warning("sandbox worker lost; recreating the sandbox elsewhere")
                self._lease.drop()
        raise AssertionError("unreachable")

    async def _ensure_sandbox(self) -> SandboxRef:
        held = self._lease.usable()
        if held is not None:
            return held
        self._lease.drop()
        ref = await workflow.execute_activity_method(
            SandboxActivities.create,
            SandboxCreate(task_id=self._task_id, workflow_id=workflow.info().workflow_id, options=self._input.sandbox),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=SANDBOX_CREATE_RETRY,
        )
        self._lease.hold(ref)
        self._supervise(ref)
        return ref

    def _supervise(self, ref: SandboxRef) -> None:
        self._lease.supervised_by(
            workflow.start_activity_method(
                SandboxActivities.supervise,
                ref,
                task_queue=ref.host_queue,
                start_to_close_timeout=timedelta(days=30),
                schedule_to_start_timeout=HOST_QUEUE_PICKUP,
                heartbeat_timeout=timedelta(seconds=self._input.timeouts.heartbeat),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        )

    async def _release_sandbox(self) -> None:
        """Remove the task's sandbox: through its own worker, else through any worker on the same Docker host
        (the reaper catches what neither can reach)."""
        released = self._lease.release()
        if released is None:
            return
        ref, queues = released
        for queue in queues:
            try:
                await workflow.execute_activity_method(
                    SandboxActivities.destroy,
                    ref,
                    task_queue=queue,
                    start_to_close_timeout=timedelta(seconds=60),
                    schedule_to_start_timeout=HOST_QUEUE_PICKUP,
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                return
            except ActivityError as e:
                workflow.logger.warning(f"could not remove sandbox {ref.name} via {queue or 'the shared queue'}: {e}")

    async def _ask_user(self, phase: Phase, call: ToolCall) -> None:
        try:
            args = json.loads(call.arguments or "")
            if workflow.patched(ASK_USER_CLEAN_PATCH):
                # a "\\ud800" escape decodes to a lone surrogate, which pydantic and every payload refuse: the
                # question is asked with U+FFFD instead of failing as a tool error
                args = clean_json(args)
            question = AskUserArgs.model_validate(args).question
        except (ValueError, ValidationError, RecursionError) as e:  # RecursionError: `[[[[…` arguments
            return self._queue_tool_error(phase, call, f'ask_user needs {{"question": "..."}}: {e}')
        answer = await self._wait_for_human(phase, question, {"tool_call_id": call.id})
        assert answer is not None
        self._queue_message("tool", answer, tool_call_id=call.id)

    async def _wait_for_human(
        self, phase: Phase, question: str, metadata: dict, unblock: Callable[[], bool] | None = None
    ) -> str | None:
        """Ask and wait, durably. Returns the answer, or None if `unblock` released the wait instead."""
        self._question, self._answer = question, None
        self._agent_asks = "tool_call_id" in metadata  # ask_user's question (see __init__)
        await self._set_status(
            TaskStatus.waiting_for_input,
            [self._step(phase, StepType.QUESTION, question, metadata)],
            pending_question=question,
        )
        await workflow.wait_condition(
            lambda: self._answer is not None or self._cancel is not None or bool(unblock and unblock())
        )
        if self._cancel is not None:
            raise _Cancelled()
        answer, self._question, self._answer = self._answer, None, None
        steps: list[StepRecord] = [self._step(phase, StepType.ANSWER, answer, metadata)] if answer is not None else []
        await self._set_status(TaskStatus.running, steps, clear_question=True)
        return answer

    async def _hold_if_paused(self, phase: Phase) -> None:
        """pause-v1: a paused task waits here, before its next LLM or tool call, and goes on from here when resumed
        (nothing re-run, nothing skipped). The state is in ResumeState, so a restarted worker waits here too."""
        if not self._state.paused or not workflow.patched(PAUSE_PATCH):
            return
        await self._set_status(
            TaskStatus.paused,
            [
                self._step(
                    phase,
                    StepType.PAUSED,
                    "Paused by the user: no LLM or tool call starts until the task is resumed.",
                    {"kind": "pause"},
                )
            ],
        )
        await workflow.wait_condition(lambda: not self._state.paused or self._cancel is not None)
        if self._cancel is not None:
            raise _Cancelled()
        await self._set_status(
            TaskStatus.running,
            [
                self._step(
                    phase,
                    StepType.RESUMED,
                    "Resumed by the user: the task goes on where it stopped.",
                    {"kind": "resume"},
                )
            ],
        )

    async def _approval(self, phase: Phase, call: ToolCall) -> str | None:
        """approvals-v1: a call the task's policy names waits for the user's decision. Returns the tool result the
        model gets when it is denied, None when the call may run."""
        policy = self._input.approvals
        if policy is None or not workflow.patched(APPROVALS_PATCH):
            return None
        why = approval_needed(policy, self._state.approved_tools, call.name, call.arguments)
        if why is None:
            why = approval_needed(policy, self._state.approved_tools, call.name, call.arguments, True)
            if why is None or not workflow.patched(APPROVALS_QUOTED_PATCH):
                return None
        pending = PendingApproval(call_id=call.id, tool=call.name, arguments=shown_arguments(call.arguments), why=why)
        self._pending_approval, self._decision = pending, None
        shown = f"{call.name}({pending.arguments})"
        await self._set_status(
            TaskStatus.waiting_for_approval,
            [
                self._step(
                    phase,
                    StepType.APPROVAL,
                    f"{shown} waits for approval: {why}",
                    {"kind": "approval", **pending.model_dump()},
                )
            ],
            pending_question=f"Approve {shown[:500]}? ({why})",
        )
        await workflow.wait_condition(lambda: self._decision is not None or self._cancel is not None)
        if self._cancel is not None:
            raise _Cancelled()
        decision, self._pending_approval, self._decision = self._decision, None, None
        assert decision is not None
        reason = decision.reason.strip()
        if decision.decision == "approve_all":
            self._state.approved_tools = sorted({*self._state.approved_tools, call.name})
        said = {
            "approve": f"Approved by the user: {call.name}",
            "approve_all": f"Approved by the user: {call.name}, and every later {call.name} call of this task",
            "deny": f"Denied by the user: {call.name}",
        }[decision.decision] + (f" ({reason})" if reason else "")
        await self._set_status(
            TaskStatus.running,
            [
                self._step(
                    phase,
                    StepType.DECISION,
                    said,
                    {
                        "kind": "decision",
                        "call_id": call.id,
                        "tool": call.name,
                        "decision": decision.decision,
                        "reason": reason,
                    },
                )
            ],
            clear_question=True,
        )
        if decision.decision == "deny":
            return f"{DENIED}{reason or 'no reason given'}"
        return None

    # ------------------------------------------------------------------ budget, loops, context

    def _budget_policy(self) -> BudgetPolicy:
        return BudgetPolicy(self._budget, self._state.usage, self._state.llm_calls)

    async def _budget_reached(self, phase: Phase, reason: str) -> None:
        """Not a failure: the user decides. Any answer but 'stop' doubles the limits that were reached; the
        `raise_budget` signal sets new limits directly."""
        self._budget_raised = False
        answer = await self._wait_for_human(
            phase,
            f"Budget reached ({reason}) — raise it or stop? Answer 'stop', or anything else to double it.",
            {"kind": "budget"},
            unblock=lambda: self._budget_raised,
        )
        if answer is None:
            return
        if means_stop(answer):
            self._cancel = CancelSignal(reason=f"stopped by the user at the budget ({reason})")
            raise _Cancelled()
        self._budget = self._budget_policy().doubled()
        self._state.budget = self._budget

    async def _watch_for_loops(self, phase: Phase, turn: LlmTurn, fingerprints: list[str]) -> bool:
        """The same calls with the same results, or the same reply, N turns in a row (or, with phase work, a
        cycle of turns repeated): tell the model once; if it goes on, ask the user how to proceed. Returns True
        when the user said to move on to the next phase."""
        detector = LoopDetector(self._state, self._input.limits.loop_repeats, cycles=self._work)
        loop = detector.observe(tool_mark(fingerprints), text_mark(turn.content))
        if loop is None:
            return False
        return await self._loop_detected(phase, turn, loop, detector)

    async def _loop_detected(self, phase: Phase, turn: LlmTurn, loop: Loop, detector: LoopDetector) -> bool:
        what, n = loop.what([c.name for c in turn.tool_calls]), loop.times
        if not detector.should_ask_user():
            # the way out is named first: a model that has done the phase's work often repeats its last call
            # because it does not see that a reply without a tool call ends the phase
            self._queue_message(
                "user",
                f"Loop detected: you have {what} {n} times in a row. Stop repeating it. If "
                "this phase's work is done, reply without a tool call to end the phase; "
                "otherwise try a different approach, or ask the user.",
            )
            return False
        choices = workflow.patched(LOOP_CHOICES_PATCH)
        question = (
            f"The agent seems stuck: it has {what} {n} times in a row, even after being told. How should it proceed?"
        )
        if choices:  # the same choices as the other questions a stuck phase asks, so a user can get it unstuck
            question += (
                " Answer 'move on' to go to the next phase, 'stop' to end the task, or anything else to "
                "tell the agent what to do."
            )
        answer = await self._wait_for_human(phase, question, {"kind": "loop"})
        assert answer is not None
        if choices and starts_with(answer, STOP_WORDS):
            raise ApplicationError(
                f"Stopped by the user: the agent was stuck in phase {phase.value} ({what}).",
                type="LoopStopped",
                non_retryable=True,
            )
        if choices and starts_with(answer, MOVE_ON_WORDS):
            self._state.work_waived = self._state.work_waived or not self._state.phase_worked
            return True
        self._queue_message("user", f"The user says how to proceed: {answer}")
        return False

    async def _condense(self, spec: PhaseSpec, req: LlmRequest) -> None:
        await self._hold_if_paused(spec.phase)
        t = self._input.timeouts
        result = await self._cancellable(
            workflow.start_activity_method(
                LlmActivities.condense,
                CondenseRequest(
                    task_id=self._task_id,
                    phase=spec.phase,
                    model=self._input.model,
                    message_count=req.message_count,
                    append=req.append,
                ),
                start_to_close_timeout=timedelta(seconds=t.llm_start_to_close),
                heartbeat_timeout=timedelta(seconds=t.heartbeat),
                retry_policy=LLM_RETRY,
            )
        )
        self._state.usage = self._state.usage.plus(result.usage)
        req.usage_before = self._state.usage

    # ------------------------------------------------------------------ helpers

    def _unavailable(self) -> set[str]:
        """Tools not offered: what this deployment cannot run, and tools newer than the task (its patches)."""
        return set(self._state.unavailable_tools or ()) | (set() if self._memory else set(MEMORY_TOOLS))

    def _tools(self, spec: PhaseSpec) -> tuple[str, ...]:
        """The tools this phase may call."""
        if self._work:
            return allowed_tools(spec.phase, self._unavailable()) + self._mcp_names(spec.phase)
        return tuple(t for t in phase_tools(spec.phase, self._current_tools) if t not in self._unavailable())

    def _offered(self, spec: PhaseSpec) -> tuple[str, ...]:
        """The tools the model is shown: the same in every phase (the prefix cache), the phase's own check is ours."""
        if self._work:
            return offered_tools(self._unavailable()) + self._mcp_names(spec.phase)
        return self._tools(spec)

    async def _cancellable(self, handle: workflow.ActivityHandle[_T]) -> _T:
        """Await an activity, abandoning it (and requesting its cancellation) if the task is cancelled."""
        await workflow.wait_condition(lambda: handle.done() or self._cancel is not None)
        if not handle.done():
            handle.cancel()
            raise _Cancelled()
        return await handle

    def _queue_message(self, role: str, content: str, tool_call_id: str | None = None, seq: int | None = None) -> None:
        """A small message the next LLM activity stores before calling the model."""
        self._ledger.queue_message(role, content, tool_call_id, seq)

    def _queue_tool_error(
        self, phase: Phase, call: ToolCall, error: str, seq: int | None = None, step_seq: int = UNNUMBERED
    ) -> None:
        """A call the workflow rejects: its error result and step are written by the next LLM activity (in the
        slots the call was given, if it was given any)."""
        self._queue_message("tool", f"Error: {error}", tool_call_id=call.id, seq=seq)
        self._ledger.defer_step(
            phase,
            StepType.TOOL_RESULT,
            f"Error: {error}",
            {"tool": call.name, "tool_call_id": call.id, "ok": False},
            seq=step_seq,
        )

    def _step(self, phase: Phase | None, type_: StepType, content: str, metadata: dict | None = None) -> StepRecord:
        return self._ledger.step(phase, type_, content, metadata)

    def _resume_state(self) -> ResumeState:
        carried = self._ledger.carried_steps()  # numbered first: the copied step_seq counts them
        return self._state.model_copy(update={"runs": self._state.runs + 1, "pending_steps": carried})

    async def _set_status(
        self, status: TaskStatus, steps: list[StepRecord] | None = None, *, local: bool = False, **update: Any
    ) -> None:
        self._status = status
        workflow.upsert_search_attributes([MORGUS_STATUS.value_set(status.value)])
        await self._project(TaskRowUpdate(status=status, **update), steps or [], local=local)

    async def _project(self, update: TaskRowUpdate, steps: list[StepRecord], *, local: bool = False) -> None:
        inp = self._input
        batch = ProjectionBatch(
            task_id=self._task_id,
            workflow_id=workflow.info().workflow_id,
            title=inp.display_title(),
            description=inp.description,
            model=inp.model,
            update=update,
            steps=steps,
        )
        timeout = timedelta(seconds=inp.timeouts.projection_start_to_close)
        if local:  # PICKUP_PATCH: written inside this workflow task, before it completes
            await workflow.execute_local_activity_method(
                ProjectionActivities.project, batch, start_to_close_timeout=timeout, retry_policy=PROJECTION_RETRY
            )
            return
        await workflow.execute_activity_method(
            ProjectionActivities.project, batch, start_to_close_timeout=timeout, retry_policy=PROJECTION_RETRY
        )

    async def _finish(self, status: TaskStatus, message: str) -> None:
        self._ending = True
        await self._release_sandbox()
        idx = self._state.phase_index
        phase = PHASE_ORDER[idx] if idx < len(PHASE_ORDER) else None
        if status is TaskStatus.error:
            self._error = message
        steps = self._ledger.take_deferred()
        if self._state.inbox and workflow.patched(STEER_PATCH):
            # a task that fails or is cancelled before its next turn still shows what the user said to it
            steps += [
                self._step(phase, StepType.USER_MESSAGE, text, {"kind": "steer", "delivered": False})
                for text in self._state.inbox
            ]
            self._state.inbox = []
        steps.append(self._step(phase, StepType.ERROR if status is TaskStatus.error else StepType.TASK_END, message))
        self._question = None
        self._pending_approval = None
        await self._set_status(
            status,
            steps=steps,
            completed=True,
            clear_question=True,
            usage=self._state.usage,
            error_message=message if status is TaskStatus.error else None,
        )

    def _result(self) -> TaskResult:
        return TaskResult(
            task_id=self._task_id,
            status=self._status,
            summary=self._last_reply,
            error_message=self._error,
            usage=self._state.usage,
        )
