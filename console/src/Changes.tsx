// What the agent changed: the diff of each file_write (kept in its step's metadata, shown collapsed under the
// step) and the task's git log (GET /api/tasks/{id}/git/log). Every text here is the sandbox's or the model's: it
// is rendered as React text only, and names are shown with their invisible characters escaped (displayName).
import { useEffect, useState } from "react";
import { api, type Commit, type GitLog, type Step } from "./api";
import { displayName } from "./Files";

/** A file_write's diff as the worker stored it (morgus/activities/tools/file_diff.py). */
export type WriteDiff = {
  path: string;
  new_file: boolean;
  binary: boolean;
  truncated: boolean;
  added: number;
  removed: number;
  old_bytes: number;
  new_bytes: number;
  text: string | null;
  note: string | null;
};

/** The diff in a step's metadata, when it has one of the right shape (a step from the event stream is untyped). */
export function stepDiff(step: Step): WriteDiff | null {
  const d = (step.metadata as Record<string, unknown> | undefined)?.diff as Partial<WriteDiff> | undefined;
  if (!d || typeof d !== "object" || typeof d.path !== "string") return null;
  if (typeof d.added !== "number" || typeof d.removed !== "number") return null;
  if (d.text != null && typeof d.text !== "string") return null;
  return d as WriteDiff;
}

/** The class of one diff line: the file headers, a hunk header, an added, removed or unchanged line, a note. */
export function diffLineKind(line: string, index: number): "head" | "hunk" | "add" | "del" | "note" | "ctx" {
  if (index < 2 && (line.startsWith("--- ") || line.startsWith("+++ "))) return "head";
  if (line.startsWith("@@")) return "hunk";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  if (line.startsWith("\\")) return "note";
  return "ctx";
}

/** A file_write's change: a summary line that opens (collapsed by default) onto the coloured unified diff. */
export function DiffView({ diff, defaultOpen = false }: { diff: WriteDiff; defaultOpen?: boolean }) {
  const [open, setOpen] = useState(defaultOpen);
  const stats = diff.binary ? "binary" : `+${diff.added} −${diff.removed}`;
  const what = diff.new_file ? "new file" : "changed";
  const lines = diff.text ? diff.text.split("\n") : [];
  return (
    <div className="diff">
      <button type="button" className="diff-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span aria-hidden>{open ? "▾ " : "▸ "}</span>
        {`diff · ${displayName(diff.path)} · ${what} · `}
        <span className="diff-stats">{stats}</span>
      </button>
      {open && (
        <div className="diff-body">
          {diff.note && <p className="diff-note">{diff.note}</p>}
          {lines.length > 0 && (
            <pre className="diff-text" tabIndex={0} aria-label={`diff of ${diff.path}`}>
              {lines.map((line, i) => (
                <span key={i} className={`diff-line diff-${diffLineKind(line, i)}`}>{line + "\n"}</span>
              ))}
            </pre>
          )}
          {diff.truncated && <p className="diff-note">The diff is cut here (it is longer than the console keeps).</p>}
        </div>
      )}
    </div>
  );
}

function shortDate(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

const FILE_STATUS: Record<string, string> = { A: "added", M: "modified", D: "deleted", T: "type changed" };

function CommitItem({ c }: { c: Commit }) {
  const [subject, ...rest] = c.message.split("\n");
  const body = rest.join("\n").trim();
  return (
    <li className="commit">
      <div className="commit-head">
        <code className="commit-sha" title={c.sha}>{c.sha.slice(0, 10)}</code>
        <span className="commit-subject">{subject}</span>
      </div>
      <div className="commit-meta">{`${c.author} · ${shortDate(c.date)} · ${c.files_total} file${c.files_total === 1 ? "" : "s"}`}</div>
      {body && <pre className="commit-body">{body}</pre>}
      <ul className="commit-files">
        {c.files.map((f, i) => (
          <li key={i}>
            <span className={`commit-status commit-status-${f.status}`} title={FILE_STATUS[f.status] ?? f.status}>{f.status}</span>{" "}
            <code>{displayName(f.path)}</code>
          </li>
        ))}
        {c.files_total > c.files.length && <li className="commit-more">{`and ${c.files_total - c.files.length} more`}</li>}
      </ul>
    </li>
  );
}

/** The commits of a loaded log, newest first, or why there are none. */
export function CommitList({ log }: { log: GitLog }) {
  if (!log.has_repository) return <p className="empty">No git repository yet: the agent commits in FINALIZE.</p>;
  if (log.commits.length === 0) return <p className="empty">The repository has no commit yet.</p>;
  return (
    <>
      <ol className="commits">{log.commits.map((c) => <CommitItem key={c.sha} c={c} />)}</ol>
      {log.truncated && <p className="empty">Older commits are not listed.</p>}
    </>
  );
}

/** The task page's "Commits" section, read again when `refreshKey` changes (a tool result, a status change). */
export function Commits({ taskId, refreshKey }: { taskId: string; refreshKey?: string }) {
  const [log, setLog] = useState<GitLog | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    api.gitLog(taskId)
      .then((l) => { if (live) { setLog(l); setError(null); } })
      .catch((e) => { if (live) setError((e as Error).message); });
    return () => { live = false; };
  }, [taskId, refreshKey]);
  return (
    <section className="commits-panel" aria-labelledby="commits-title">
      <h3 id="commits-title">Commits</h3>
      {error ? <p className="error">{error}</p> : log ? <CommitList log={log} /> : <p className="loading">Loading…</p>}
    </section>
  );
}
