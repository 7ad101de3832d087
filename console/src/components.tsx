import { useEffect, useRef, useState } from "react";
import { PHASES, type Phase, type Step, type TaskStatus } from "./api";
import { DiffView, stepDiff } from "./Changes";
import type { LiveEntry } from "./live";

const STATUS_LABEL: Record<TaskStatus, string> = {
  pending: "pending", running: "running", waiting_for_input: "waiting for input",
  waiting_for_approval: "waiting for approval", paused: "paused",
  completed: "completed", error: "error", cancelled: "cancelled",
};

/** A status's label: known ones as named above, any other (a status a newer server added) from its own name. */
export function statusLabel(status: string): string {
  return (STATUS_LABEL as Record<string, string>)[status] ?? status.replace(/_/g, " ");
}

export function StatusBadge({ status }: { status: TaskStatus | string }) {
  const known = status in STATUS_LABEL;
  const cls = known ? `badge-${status}` : "badge-other";
  return <span className={`badge ${cls}`} data-status={status}>{statusLabel(status)}</span>;
}

export function PhaseProgress({ phase, status }: { phase: Phase | null; status: TaskStatus }) {
  const current = phase ? PHASES.indexOf(phase) : -1;
  const finished = status === "completed";
  return (
    <ol className="phases" aria-label="phases">
      {PHASES.map((p, i) => {
        const state = finished || i < current ? "done" : i === current ? "current" : "todo";
        return <li key={p} className={`phase phase-${state}`} data-state={state}>{p}</li>;
      })}
    </ol>
  );
}

// Plain symbols that every font has (emoji fonts are often missing on servers and in headless browsers).
export const STEP_ICONS: Record<string, string> = {
  TASK_START: "▶", PHASE_START: "■", LLM_RESPONSE: "◆", TOOL_CALL: "→", TOOL_RESULT: "←",
  NOTIFICATION: "!", QUESTION: "?", ANSWER: "✎", USER_MESSAGE: "»", ERROR: "✗", TASK_END: "✓",
  PAUSED: "‖", RESUMED: "▷", APPROVAL: "⚠", DECISION: "✔",
};

const COLLAPSIBLE = new Set(["TOOL_CALL", "TOOL_RESULT", "LLM_RESPONSE"]);

export function StepItem({ step }: { step: Step }) {
  const long = COLLAPSIBLE.has(step.type) && step.content.length > 160;
  const [open, setOpen] = useState(false);
  const failed = step.type === "TOOL_RESULT" && step.metadata?.ok === false;
  const content = step.type === "LLM_RESPONSE" && !step.content ? "(calls tools)" : step.content;
  const text = long && !open ? content.slice(0, 160) + "…" : content;
  const diff = step.type === "TOOL_RESULT" ? stepDiff(step) : null;
  return (
    <li className={`step step-${step.type.toLowerCase()}${failed ? " step-failed" : ""}`} data-seq={step.seq}>
      <span className="step-icon" aria-hidden>{failed ? "✗" : STEP_ICONS[step.type] ?? "·"}</span>
      <span className="step-type">{step.type.replace("_", " ").toLowerCase()}</span>
      <pre className="step-content">{text}</pre>
      {long && <button className="link" onClick={() => setOpen(!open)}>{open ? "less" : "more"}</button>}
      {diff && <DiffView diff={diff} />}
    </li>
  );
}

/** A call in flight: the reply as it is generated, or the command's output as it runs, until its step lands. */
export function LiveItem({ entry }: { entry: LiveEntry }) {
  const ref = useRef<HTMLPreElement>(null);
  // a command's output follows its end, as a terminal does
  useEffect(() => { if (ref.current) ref.current.scrollTop = ref.current.scrollHeight; }, [entry.text]);
  const llm = entry.kind === "llm";
  return (
    <li className={`step step-live step-live-${entry.kind}`} data-seq={entry.seq} data-run={entry.run}>
      <span className="step-icon" aria-hidden>{llm ? STEP_ICONS.LLM_RESPONSE : "$"}</span>
      <span className="step-type">{llm ? "replying…" : "running…"}{entry.attempt > 1 ? ` (attempt ${entry.attempt})` : ""}</span>
      <pre className="step-content live-text" ref={ref} aria-live="off">{entry.text}<span className="live-cursor" aria-hidden>▍</span></pre>
    </li>
  );
}

/** Steps grouped by phase, in order (steps before the first phase go under "Task"). */
export function groupByPhase<T extends { seq: number; phase?: string | null }>(steps: T[]): [string, T[]][] {
  const groups: [string, T[]][] = [];
  for (const s of [...steps].sort((a, b) => a.seq - b.seq)) {
    const name = s.phase ?? "Task";
    const last = groups[groups.length - 1];
    if (last && last[0] === name) last[1].push(s);
    else groups.push([name, [s]]);
  }
  return groups;
}

/** Merge new steps into a list without duplicates, ordered by seq. */
export function mergeSteps(current: Step[], incoming: Step[]): Step[] {
  const bySeq = new Map(current.map((s) => [s.seq, s]));
  for (const s of incoming) bySeq.set(s.seq, s);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

type Row = { seq: number; phase: string | null; step?: Step; live?: LiveEntry };

/** The steps by phase, with the calls in flight (`live`) in their place: each where its step will land. */
export function Timeline({ steps, live = [] }: { steps: Step[]; live?: LiveEntry[] }) {
  if (steps.length === 0 && live.length === 0) return <p className="empty">No steps yet: the task is waiting for a worker.</p>;
  const rows: Row[] = [...steps.map((s) => ({ seq: s.seq, phase: s.phase, step: s })), ...live.map((e) => ({ seq: e.seq, phase: e.phase, live: e }))];
  return (
    <div className="timeline">
      {groupByPhase(rows).map(([phase, items], i) => (
        <section key={`${phase}-${i}`} className="phase-group">
          <h3>{phase}</h3>
          <ul>{items.map((r) => r.step ? <StepItem key={r.seq} step={r.step} /> : <LiveItem key={`live-${r.seq}`} entry={r.live!} />)}</ul>
        </section>
      ))}
    </div>
  );
}
