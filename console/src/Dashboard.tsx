// The task list: per task its status, phase, cost (or tokens when a model's price is unknown), how long it has run,
// and whether it waits for the user and for what; the counts by status above it, kept live.
//
// Live: the page holds the event stream it already has (/api/events) and, on a `task` event, reads the list again
// at most once a second (a busy server updates task rows at every step: one read per event would be a storm); a
// 10 s poll catches anything a reconnect missed. Keyboard: `/` focuses the search, Tab moves row to row, Enter opens
// one, ArrowUp/ArrowDown move between rows. Phone: the table becomes one card per task (styles.css).
import { useEffect, useRef, useState } from "react";
import { api, PHASES, STATUSES, subscribe, type Task, type TaskList } from "./api";
import { StatusBadge } from "./components";

const REFETCH_MIN_MS = 1000;
const QUESTION_CHARS = 90;

/** "1.2k tokens", "3.4M tokens". */
export function formatTokens(n: number): string {
  if (n < 1000) return `${n} tokens`;
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k tokens`;
  return `${(n / 1_000_000).toFixed(1)}M tokens`;
}

/** The task's cost when every model it uses has a known price, else its tokens (a cost of $0 would mislead). */
export function costOf(t: Pick<Task, "cost_usd" | "total_tokens" | "price_known">): string {
  if (!t.price_known) return formatTokens(t.total_tokens);
  const c = Number(t.cost_usd);
  return c >= 1 ? `$${c.toFixed(2)}` : `$${c.toFixed(4)}`;
}

/** "42s", "4m 05s", "1h 03m", "2d 4h": from created to finished, or to now while it runs. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function durationOf(t: Pick<Task, "created_at" | "completed_at">, now: number): string {
  const start = Date.parse(t.created_at);
  const end = t.completed_at ? Date.parse(t.completed_at) : now;
  return Number.isNaN(start) || Number.isNaN(end) ? "–" : formatDuration(end - start);
}

/** One line: whitespace (newlines included) collapsed, cut at `max` characters. */
export function shorten(text: string, max = QUESTION_CHARS): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** What the task waits for from the user, or null: its question, or (a status this console does not know that
 * says "waiting…", such as an approval) the status itself. */
export function waitsFor(t: Pick<Task, "status" | "pending_question">): string | null {
  const status = String(t.status);
  if (!status.startsWith("waiting")) return null;
  if (t.pending_question) return shorten(t.pending_question);
  return status.replace(/_/g, " ");
}

/** The statuses to count and filter by: the known ones, then any other the server reported (a newer server's). */
export function statusesOf(counts: Record<string, number> | undefined): string[] {
  const extra = Object.keys(counts ?? {}).filter((s) => !(STATUSES as readonly string[]).includes(s)).sort();
  return [...STATUSES, ...extra];
}

function open(id: string) {
  location.hash = `#/tasks/${id}`;
}

export function TaskRows({ tasks, now }: { tasks: Task[]; now: number }) {
  function keys(e: React.KeyboardEvent<HTMLTableRowElement>, id: string) {
    if (e.key === "Enter") open(id);
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const row = e.currentTarget;
      const next = (e.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling) as HTMLElement | null;
      if (next) {
        e.preventDefault();
        next.focus();
      }
    }
  }
  return (
    <table className="tasks">
      <thead>
        <tr><th>Task</th><th>Status</th><th>Phase</th><th>Cost</th><th>Duration</th><th>Created</th></tr>
      </thead>
      <tbody>
        {tasks.map((t) => {
          const waiting = waitsFor(t);
          return (
            <tr key={t.id} tabIndex={0} className={waiting ? "waiting" : undefined} aria-label={`open task ${t.title}`}
              onClick={() => open(t.id)} onKeyDown={(e) => keys(e, t.id)}>
              <td className="task-title" data-label="Task">
                {/* one tab stop per row: the row itself (Enter opens it); the link is for the mouse and "open in tab" */}
                <a href={`#/tasks/${t.id}`} tabIndex={-1}>{t.title}</a>
                {waiting && <span className="waits-for">{`Waits for you: ${waiting}`}</span>}
              </td>
              <td data-label="Status"><StatusBadge status={t.status} /></td>
              <td data-label="Phase">{t.phase ?? "–"}</td>
              <td data-label="Cost" className="num">{costOf(t)}</td>
              <td data-label="Duration" className="num">{durationOf(t, now)}</td>
              <td data-label="Created">{new Date(t.created_at).toLocaleString()}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function Dashboard() {
  const [status, setStatus] = useState("");
  const [phase, setPhase] = useState("");
  const [q, setQ] = useState("");
  const [data, setData] = useState<TaskList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [now, setNow] = useState(() => Date.now());
  const search = useRef<HTMLInputElement>(null);

  useEffect(() => {
    let live = true;
    const params: Record<string, string> = { limit: "100" };
    if (status) params.status = status;
    if (phase) params.phase = phase;
    if (q.trim()) params.q = q.trim();
    api.list(params)
      .then((d) => { if (live) { setData(d); setError(null); setNow(Date.now()); } })
      .catch((e) => { if (live) setError(e.message); });
    return () => { live = false; };
  }, [status, phase, q, tick]);

  // task events: one re-read per REFETCH_MIN_MS at most, however many arrive
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stop = subscribe(null, (kind) => {
      if (kind !== "task" || timer) return;
      timer = setTimeout(() => { timer = null; setTick((t) => t + 1); }, REFETCH_MIN_MS);
    });
    return () => { stop(); if (timer) clearTimeout(timer); };
  }, []);
  useEffect(() => { const t = setInterval(() => setTick((n) => n + 1), 10000); return () => clearInterval(t); }, []);
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), 1000); return () => clearInterval(t); }, []);

  // `/` focuses the search (unless the user is typing somewhere)
  useEffect(() => {
    function onKey(e: KeyboardEvent) {
      const el = e.target as HTMLElement | null;
      const typing = el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
      if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        search.current?.focus();
      }
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const statuses = statusesOf(data?.counts);
  return (
    <div className="dashboard">
      <div className="counts" role="group" aria-label="tasks by status (choose one to filter)">
        {statuses.map((s) => (
          <button key={s} type="button" className={`count ${status === s ? "active" : ""}`} aria-pressed={status === s}
            onClick={() => setStatus(status === s ? "" : s)}>
            <StatusBadge status={s} /> <strong data-count={s}>{(data?.counts as Record<string, number> | undefined)?.[s] ?? 0}</strong>
          </button>
        ))}
      </div>
      <div className="filters">
        <input ref={search} type="search" aria-label="search" aria-keyshortcuts="/" placeholder="Search title and description (press /)"
          value={q} onChange={(e) => setQ(e.target.value)} />
        <select aria-label="status filter" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">all statuses</option>
          {statuses.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        <select aria-label="phase filter" value={phase} onChange={(e) => setPhase(e.target.value)}>
          <option value="">all phases</option>
          {PHASES.map((p) => <option key={p} value={p}>{p}</option>)}
        </select>
      </div>
      {error && <p className="error">{error}</p>}
      {!data && !error && <p className="loading">Loading tasks…</p>}
      {data && data.tasks.length === 0 && <p className="empty">No tasks match. <a href="#/new">Start one.</a></p>}
      {data && data.tasks.length > 0 && <TaskRows tasks={data.tasks} now={now} />}
    </div>
  );
}
