import { useCallback, useEffect, useRef, useState } from "react";
import { api, subscribe, type Artifact, type Step, type Task } from "./api";
import { mergeSteps, PhaseProgress, StatusBadge, Timeline } from "./components";
import { FilesPanel, Preview, previewUrl } from "./Files";
import { Commits } from "./Changes";
import { applyLive, inFlight, mergeLive, type LiveMap, type LivePiece } from "./live";

export function TaskDetail({ id }: { id: string }) {
  const [task, setTask] = useState<Task | null>(null);
  const [steps, setSteps] = useState<Step[]>([]);
  const [artifacts, setArtifacts] = useState<Artifact[]>([]);
  const [live, setLive] = useState<LiveMap>({});
  // the live text as the event handler last left it (applyLive must see every piece in order, synchronously)
  const liveNow = useRef<LiveMap>({});
  const updateLive = useCallback((next: LiveMap) => { liveNow.current = next; setLive(next); }, []);
  const [answer, setAnswer] = useState("");
  const [message, setMessage] = useState("");
  const [sent, setSent] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reason, setReason] = useState("");
  const [note, setNote] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    try {
      const [t, s, a, l] = await Promise.all([api.get(id), api.steps(id), api.artifacts(id), api.live(id)]);
      setTask(t);
      setSteps((cur) => mergeSteps(cur, s.steps));
      setArtifacts(a.artifacts);
      updateLive(mergeLive(liveNow.current, l.live));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [id, updateLive]);

  useEffect(() => { refresh(); }, [refresh]);
  useEffect(() => { updateLive({}); }, [id, updateLive]);
  useEffect(() => subscribe(id, (kind, data) => {
    if (kind === "step") setSteps((cur) => mergeSteps(cur, [data as Step]));
    else if (kind === "task") setTask((cur) => (cur ? { ...cur, ...data } : (data as Task)));
    else if (kind === "artifact") setArtifacts((cur) => (cur.some((a) => a.id === data.id) ? cur : [...cur, data as Artifact]));
    else if (kind === "live") {
      const r = applyLive(liveNow.current, data as LivePiece);
      updateLive(r.live);
      // a piece was missed (the stream dropped one): the text so far, read again
      if (r.gap) api.live(id).then((l) => updateLive(mergeLive(liveNow.current, l.live))).catch(() => {});
    }
  }), [id, updateLive]);
  // The pause/resume note is about the status it changed: it goes once the status moves on.
  const status = task?.status;
  useEffect(() => { setNote(null); }, [status]);
  // A reconnect after the API restarts replays missed events; this also catches anything else.
  useEffect(() => { const t = setInterval(refresh, 15000); return () => clearInterval(t); }, [refresh]);

  if (!task) return error ? <p className="error">{error}</p> : <p className="loading">Loading task…</p>;
  const active = ["pending", "running", "waiting_for_input", "waiting_for_approval", "paused"].includes(task.status);
  const approval = task.status === "waiting_for_approval" ? pendingApproval(steps) : null;
  const preview = previewUrl(artifacts);
  // the workspace changes with tool calls: its open folders and file are listed again after each result
  const toolResults = steps.filter((s) => s.type === "TOOL_RESULT").length;
  // the log changes only with a commit: read it again after each git_commit result (each read runs git on the host)
  const commits = steps.filter((s) => s.type === "TOOL_RESULT" && s.metadata?.tool === "git_commit").length;
  // the calls in flight, each shown where its step will land, until that step arrives
  const flying = inFlight(live, new Set(steps.map((s) => s.seq)), active);

  async function send(e: React.FormEvent) {
    e.preventDefault();
    try {
      await api.answer(id, answer);
      setAnswer("");
    } catch (err) {
      setError((err as Error).message);
    }
  }

  // Steering: the agent reads the message at its next turn (it appears in the timeline then), or, when the task
  // waits for an answer, the message is the answer.
  async function say(e: React.FormEvent) {
    e.preventDefault();
    try {
      const r = await api.say(id, message);
      setMessage("");
      setSent(r.answered ? "Taken as the answer."
        : r.question ? "Sent, but the task first waits for your answer to its question above; the agent reads the message after."
        : "Sent: the agent reads it at its next turn.");
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  // Pause and resume: the update's answer says whether the running call finishes first.
  async function pauseOrResume(pause: boolean) {
    try {
      const r = pause ? await api.pause(id) : await api.resume(id);
      setNote(r.message);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function decide(decision: "approve" | "deny" | "approve_all") {
    if (!approval) return;
    try {
      await api.decide(id, { call_id: approval.call_id, decision, reason });
      setReason("");
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  return (
    <div className="task-detail">
      <header>
        <h2>{task.title}</h2>
        <StatusBadge status={task.status} />
        {task.temporal_url && <a className="temporal-link" href={task.temporal_url} target="_blank" rel="noreferrer">Temporal history ↗</a>}
        {active && task.status !== "paused" && <button onClick={() => pauseOrResume(true)}>Pause</button>}
        {task.status === "paused" && <button onClick={() => pauseOrResume(false)}>Resume</button>}
        {active && <button className="danger" onClick={() => api.cancel(id).catch((e) => setError(e.message))}>Cancel</button>}
      </header>
      <p className="description">{task.description}</p>
      <PhaseProgress phase={task.phase} status={task.status} />
      {task.status === "waiting_for_input" && task.pending_question && (
        <form className="question" onSubmit={send}>
          <p><strong>The agent asks:</strong> {task.pending_question}</p>
          <input aria-label="answer" value={answer} onChange={(e) => setAnswer(e.target.value)} placeholder="Your answer" />
          <button type="submit" disabled={!answer.trim()}>Answer</button>
        </form>
      )}
      {note && active && <p className="pause-note" role="status">{note}</p>}
      {approval && (
        <section className="approval" aria-label="approval">
          <p><strong>Waiting for your approval</strong> ({approval.why}):</p>
          <pre className="approval-call"><code>{approval.tool}({approval.arguments})</code></pre>
          <input aria-label="reason" value={reason} maxLength={2000} onChange={(e) => setReason(e.target.value)}
            placeholder="Reason (the agent reads it when you deny)" />
          <button onClick={() => decide("approve")}>Approve</button>
          <button onClick={() => {
            const warning = approveAllWarning(approval.tool);
            if (!warning || window.confirm(warning)) void decide("approve_all");
          }}>Approve all {approval.tool} calls</button>
          <button className="danger" onClick={() => decide("deny")}>Deny</button>
          {approveAllWarning(approval.tool) && <p className="approval-warning" role="note">{approveAllWarning(approval.tool)}</p>}
        </section>
      )}
      {active && (
        <form className="say" onSubmit={say}>
          <textarea aria-label="message to the agent" value={message} rows={2} maxLength={20000}
            onChange={(e) => { setMessage(e.target.value); setSent(null); }}
            placeholder="Tell the agent something while it works (e.g. use Tailwind instead)" />
          <button type="submit" disabled={!message.trim()}>Send</button>
          {sent && <span className="say-sent" role="status">{sent}</span>}
        </form>
      )}
      {task.error_message && <p className="error">{task.error_message}</p>}
      {error && <p className="error">{error}</p>}
      <section className="usage">
        tokens {task.total_tokens} (prompt {task.prompt_tokens}, cached {task.cached_tokens}, completion {task.completion_tokens})
        · {task.price_known ? `cost $${Number(task.cost_usd).toFixed(4)}` : "cost unknown (no price for its model)"} · {task.step_count} steps
      </section>
      {artifacts.length > 0 && (
        <section className="artifacts">
          <h3>Artifacts</h3>
          <ul>
            {artifacts.map((a) => (
              <li key={a.id}>
                <span className={`artifact-type artifact-${a.type}`}>{a.type}</span>{" "}
                {a.url ? <a href={a.url} target="_blank" rel="noreferrer">{a.name}</a> : <span>{a.name}</span>}
                {a.path && !a.url && <code> {a.path}</code>}
              </li>
            ))}
          </ul>
        </section>
      )}
      <FilesPanel taskId={id} refreshKey={`${task.status}:${task.phase}:${artifacts.length}:${toolResults}`} />
      <Commits taskId={id} refreshKey={`${task.status}:${commits}`} />
      <div className={preview ? "task-body with-preview" : "task-body"}>
        <Timeline steps={steps} live={flying} />
        {preview && <Preview url={preview} />}
      </div>
    </div>
  );
}

/** What "approve all" gives away for tools whose calls differ from one another: every later command runs unasked,
 * including those the policy names (curl, git push, npm publish…). Null for tools where one call is like the next. */
export function approveAllWarning(tool: string): string | null {
  if (tool !== "shell_exec") return null;
  return "Approving all shell_exec calls lets every later command of this task run without asking, " +
    "including the ones the approval policy names (curl, git push, npm publish…). Approve only this one to keep being asked.";
}

/** The call waiting for approval: the latest APPROVAL step with no DECISION on its call after it. */
export function pendingApproval(steps: Step[]): { call_id: string; tool: string; arguments: string; why: string } | null {
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i];
    if (s.type === "DECISION") return null;
    if (s.type === "APPROVAL") {
      const m = s.metadata ?? {};
      return { call_id: String(m.call_id ?? ""), tool: String(m.tool ?? ""), arguments: String(m.arguments ?? ""), why: String(m.why ?? "") };
    }
  }
  return null;
}
