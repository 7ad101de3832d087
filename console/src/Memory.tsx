import { useEffect, useState } from "react";
import { api, type MemoryNote } from "./api";

/** What Morgus remembers across tasks (docs/memory.md): every note, newest first, each one deletable. */
export function NoteList({ notes, onDelete }: { notes: MemoryNote[]; onDelete: (id: string) => void }) {
  if (notes.length === 0) return <p className="empty">Nothing remembered yet: notes are kept when a task finishes.</p>;
  return (
    <table className="tasks memory">
      <thead><tr><th>Kind</th><th>Note</th><th>Task</th><th>Owner</th><th>Created</th><th></th></tr></thead>
      <tbody>
        {notes.map((n) => (
          <tr key={n.id}>
            <td>{n.kind}</td>
            <td>{n.content}</td>
            <td>{n.task_id ? <a href={`#/tasks/${n.task_id}`}>{n.task_id.slice(0, 8)}</a> : "–"}</td>
            <td>{n.owner_id ? n.owner_id.slice(0, 8) : "local"}</td>
            <td>{new Date(n.created_at).toLocaleString()}</td>
            <td><button aria-label={`forget note ${n.id}`} onClick={() => onDelete(n.id)}>Forget</button></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Memory() {
  const [notes, setNotes] = useState<MemoryNote[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    api.memory().then((p) => { setNotes(p.notes); setError(null); }).catch((e) => setError(e.message));
  }, [tick]);

  async function forget(id: string) {
    if (!window.confirm("Forget this note? Later tasks will no longer recall it.")) return;
    try {
      await api.forget(id);
      setTick((t) => t + 1);
    } catch (e) {
      setError((e as Error).message);
    }
  }

  return (
    <div>
      <h2>Memory</h2>
      {error && <p className="error">{error}</p>}
      {!notes && !error && <p className="loading">Loading notes…</p>}
      {notes && <NoteList notes={notes} onDelete={forget} />}
    </div>
  );
}
