import { useEffect, useState } from "react";
import { api, PHASES, STATUSES, subscribe, type TaskList } from "./api";
import { StatusBadge } from "./components";

export function Dashboard() {
  const [status, setStatus] = useState("");
  const [phase, setPhase] = useState("");
  const [q, setQ] = useState("");
  const [data, setData] = useState<TaskList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const params: Record<string, string> = { limit: "100" };
    if (status) params.status = status;
    if (phase) params.phase = phase;
    if (q.trim()) params.q = q.trim();
    api.list(params).then((d) => { setData(d); setError(null); }).catch((e) => setError(e.message));
  }, [status, phase, q, tick]);

  useEffect(() => subscribe(null, (kind) => { if (kind === "task") setTick((t) => t + 1); }), []);
  useEffect(() => { const t = setInterval(() => setTick((n) => n + 1), 10000); return () => clearInterval(t); }, []);

  return (
    <div>
      <div className="counts">
        {STATUSES.map((s) => (
          <button key={s} className={`count ${status === s ? "active" : ""}`} onClick={() => setStatus(status === s ? "" : s)}>
            <StatusBadge status={s} /> <strong>{data?.counts[s] ?? 0}</strong>
          </button>
        ))}
      </div>
      <div className="filters">
        <input aria-label="search" placeholder="Search title and description" value={q} onChange={(e) => setQ(e.target.value)} />
        <select aria-label="status filter" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">all statuses</option>
          {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        <select aria-label="phase filter" value={phase} onChange={(e) => setPhase(e.target.value)}>
          <option value="">all phases</option>
          {PHASES.map((p) => <option key={p} value={p}>{p}</option>)}
        </select>
      </div>
      {error && <p className="error">{error}</p>}
      {!data && !error && <p className="loading">Loading tasks…</p>}
      {data && data.tasks.length === 0 && <p className="empty">No tasks match. <a href="#/new">Start one.</a></p>}
      {data && data.tasks.length > 0 && (
        <table className="tasks">
          <thead><tr><th>Task</th><th>Status</th><th>Phase</th><th>Steps</th><th>Tokens</th><th>Created</th></tr></thead>
          <tbody>
            {data.tasks.map((t) => (
              <tr key={t.id} onClick={() => (location.hash = `#/tasks/${t.id}`)}>
                <td><a href={`#/tasks/${t.id}`}>{t.title}</a></td>
                <td><StatusBadge status={t.status} /></td>
                <td>{t.phase ?? "–"}</td>
                <td>{t.step_count}</td>
                <td>{t.total_tokens}</td>
                <td>{new Date(t.created_at).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
