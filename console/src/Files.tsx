// The task page's view of what the agent built: its workspace's folders (each listed through the API when it is
// first opened), one file's text, downloads, and a sandboxed live preview of the deployed site.
//
// Every name, path and text here was written by untrusted code in the sandbox: it is only ever rendered as React
// text (never as HTML), a name the API had to escape (`escaped`, not UTF-8) cannot be opened by name and is shown
// inert, and links and devices are listed but never opened.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, type Artifact, type FileEntry, type FileText, type Folder } from "./api";
import { highlight, languageFor } from "./highlight";

export type FolderState = { status: "loading" } | { status: "error"; error: string } | { status: "ok"; folder: Folder };

/** The workspace-relative path of `name` inside the folder `parent` ('' is the workspace's top). */
export function childPath(parent: string, name: string): string {
  return parent ? `${parent}/${name}` : name;
}

/**
 * A name as it is shown: control and invisible format characters (a newline, an escape, a right-to-left override
 * that makes "invoice\u202efdp.exe" read as "invoiceexe.pdf") written as visible \u escapes. The API is still asked for the
 * real name.
 */
export function displayName(name: string): string {
  return name.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`);
}

/** What a click on an entry does: open a folder, view a file, or nothing (an escaped name, a link, a device). */
export function entryAction(e: FileEntry): "folder" | "file" | "none" {
  if (e.escaped) return "none";
  return e.kind === "dir" ? "folder" : e.kind === "file" ? "file" : "none";
}

/** An entry's React key: its kind, name and whether the name is escaped (a name that is not UTF-8, "a\\xff" once
 * escaped, and a real name spelt "a\\xff" look alike; without `escaped` React would mix the two up). */
export function entryKey(e: FileEntry): string {
  return `${e.kind}:${e.escaped ? "escaped" : "name"}:${e.name}`;
}

const INERT_NOTE: Record<string, string> = {
  link: "link, not followed",
  other: "FIFO, socket or device, not opened",
};

export function formatSize(n: number | null | undefined): string {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "1\n2\n…" for the gutter beside a text: one number per line (a final newline does not start a line). */
export function lineNumbers(text: string): string {
  let lines = text.split("\n").length;
  if (text.endsWith("\n") && lines > 1) lines--;
  return Array.from({ length: lines }, (_, i) => String(i + 1)).join("\n");
}

type TreeProps = {
  path: string;
  folders: Record<string, FolderState>;
  expanded: ReadonlySet<string>;
  selected: string | null;
  onToggle: (path: string) => void;
  onOpen: (path: string) => void;
};

/** One folder's entries and, beneath each expanded sub-folder, its own (as far as they are loaded). */
export function FolderTree(props: TreeProps) {
  const { path, folders, expanded, selected, onToggle, onOpen } = props;
  const state = folders[path];
  if (!state || state.status === "loading") return <p className="tree-note loading">Loading…</p>;
  if (state.status === "error") return <p className="tree-note error">{state.error}</p>;
  const { entries, truncated } = state.folder;
  if (entries.length === 0) return <p className="tree-note empty">{path ? "Empty folder." : "The workspace is empty."}</p>;
  return (
    <ul className="tree" aria-label={path ? `folder ${path}` : "workspace"}>
      {entries.map((e) => {
        const p = childPath(path, e.name);
        const action = entryAction(e);
        const open = action === "folder" && expanded.has(p);
        return (
          <li key={entryKey(e)} className={`tree-entry tree-${e.kind}${e.escaped ? " tree-escaped" : ""}`}>
            {action === "folder" ? (
              <button type="button" className="tree-item" aria-expanded={open} onClick={() => onToggle(p)}>
                <span aria-hidden>{open ? "▾ " : "▸ "}</span>{`${displayName(e.name)}/`}
              </button>
            ) : action === "file" ? (
              <button type="button" className="tree-item" aria-current={selected === p ? "true" : undefined} onClick={() => onOpen(p)}>
                <span aria-hidden>{"  "}</span>{displayName(e.name)}
              </button>
            ) : (
              <span className="tree-item tree-inert" title={e.escaped ? "not valid UTF-8: shown escaped, cannot be opened" : undefined}>
                <span aria-hidden>{"  "}</span>{e.kind === "dir" ? `${displayName(e.name)}/` : displayName(e.name)}
              </span>
            )}
            <span className="tree-meta">
              {e.escaped ? "name not UTF-8, cannot be opened" : INERT_NOTE[e.kind] ?? formatSize(e.size)}
            </span>
            {open && <FolderTree {...props} path={p} />}
          </li>
        );
      })}
      {truncated && <li className="tree-note">More entries than the API lists; download the archive for all of them.</li>}
    </ul>
  );
}

export type FileState = { status: "loading"; path: string } | { status: "error"; path: string; error: string } | { status: "ok"; file: FileText };

/** One file: its text with line numbers, or why it is not shown (binary), or a note that it is cut. */
export function FileViewer({ state, onDownload }: { state: FileState | null; onDownload: (path: string) => void }) {
  if (!state) return <p className="viewer-note empty">Choose a file to see it.</p>;
  const path = state.status === "ok" ? state.file.path : state.path;
  const head = (extra?: React.ReactNode) => (
    <header className="viewer-head">
      <code className="viewer-path">{path.split("/").map(displayName).join("/")}</code>
      {extra}
      <button type="button" onClick={() => onDownload(path)}>Download</button>
    </header>
  );
  if (state.status === "loading") return <div className="viewer">{head()}<p className="viewer-note loading">Loading…</p></div>;
  if (state.status === "error") return <div className="viewer">{head()}<p className="viewer-note error">{state.error}</p></div>;
  const f = state.file;
  const size = <span className="viewer-size">{formatSize(f.size)}</span>;
  if (f.binary || f.text == null) {
    return (
      <div className="viewer">
        {head(size)}
        <p className="viewer-note binary">{`Binary file (${formatSize(f.size)}): not shown as text. Use Download to save it.`}</p>
      </div>
    );
  }
  return (
    <div className="viewer">
      {head(size)}
      {f.truncated && (
        <p className="viewer-note truncated">
          {`Only the first ${formatSize(new TextEncoder().encode(f.text).length)} of ${formatSize(f.size)} is shown; `}
          download the file for all of it.
        </p>
      )}
      {f.text === "" ? (
        <p className="viewer-note empty">Empty file.</p>
      ) : (
        <div className="code" tabIndex={0} aria-label={`contents of ${f.path}`}>
          <pre className="gutter" aria-hidden>{lineNumbers(f.text)}</pre>
          <pre className="text hljs" data-language={languageFor(f.path) ?? "text"}>{highlight(f.text, languageFor(f.path))}</pre>
        </div>
      )}
    </div>
  );
}

/** The workspace browser: a lazily loaded folder tree, a file view, downloads of one file and of everything. */
export function FilesPanel({ taskId, refreshKey }: { taskId: string; refreshKey?: string }) {
  const [folders, setFolders] = useState<Record<string, FolderState>>({});
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [file, setFile] = useState<FileState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const wanted = useRef<string | null>(null); // the file last asked for: a slower, older answer is dropped
  const expandedRef = useRef(expanded);
  expandedRef.current = expanded;

  const load = useCallback(async (path: string, quiet = false) => {
    if (!quiet) setFolders((cur) => ({ ...cur, [path]: { status: "loading" } }));
    try {
      const folder = await api.folder(taskId, path);
      setFolders((cur) => ({ ...cur, [path]: { status: "ok", folder } }));
    } catch (e) {
      setFolders((cur) => ({ ...cur, [path]: { status: "error", error: (e as Error).message } }));
    }
  }, [taskId]);

  const open = useCallback(async (path: string) => {
    wanted.current = path;
    setFile((cur) => (cur?.status === "ok" && cur.file.path === path ? cur : { status: "loading", path }));
    try {
      const f = await api.file(taskId, path);
      if (wanted.current === path) setFile({ status: "ok", file: f });
    } catch (e) {
      if (wanted.current === path) setFile({ status: "error", path, error: (e as Error).message });
    }
  }, [taskId]);

  // The top on first show, and again (with every open folder and the open file) when the task moves on.
  useEffect(() => {
    load("", true);
    for (const p of expandedRef.current) load(p, true);
    if (wanted.current) open(wanted.current);
  }, [load, open, refreshKey]);

  function toggle(path: string) {
    const next = new Set(expanded);
    if (next.has(path)) next.delete(path);
    else {
      next.add(path);
      if (folders[path]?.status !== "ok") load(path);
    }
    setExpanded(next);
  }

  async function save(what: string, run: () => Promise<string>) {
    setBusy(what);
    setError(null);
    try {
      await run();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(null);
    }
  }

  function refresh() {
    load("", true);
    for (const p of expanded) load(p, true);
    if (wanted.current) open(wanted.current);
  }

  return (
    <section className="files" aria-labelledby="files-title">
      <header className="files-head">
        <h3 id="files-title">Files</h3>
        <button type="button" className="secondary" onClick={refresh}>Refresh</button>
        <button type="button" className="secondary" disabled={busy === "archive"}
          onClick={() => save("archive", () => api.downloadArchive(taskId))}>
          {busy === "archive" ? "Preparing archive…" : "Download workspace (.tar.gz)"}
        </button>
      </header>
      {error && <p className="error" role="alert">{error}</p>}
      <div className="files-body">
        {/* not a <nav>: the page's top bar styles every nav element */}
        <div className="files-tree" role="navigation" aria-label="workspace files">
          <FolderTree path="" folders={folders} expanded={expanded} selected={file?.status === "ok" ? file.file.path : file?.path ?? null}
            onToggle={toggle} onOpen={open} />
        </div>
        <FileViewer state={file} onDownload={(p) => save(`file:${p}`, () => api.downloadFile(taskId, p))} />
      </div>
    </section>
  );
}

/** The URL of the task's latest deployment, when it is an http(s) URL (anything else is never framed). */
export function previewUrl(artifacts: Artifact[]): string | null {
  for (const a of [...artifacts].reverse()) {
    if (a.type !== "deployment" || !a.url) continue;
    try {
      const u = new URL(a.url);
      if (u.protocol === "http:" || u.protocol === "https:") return u.href;
    } catch {
      /* not a URL: not framed */
    }
  }
  return null;
}

/**
 * The deployed site, live, in a sandboxed frame: scripts run (a site needs them) but in an opaque origin (no
 * allow-same-origin), so the page can reach neither the console's storage (where the token is) nor its own
 * origin's, and it cannot navigate the console, open pop-ups or submit forms.
 */
export function Preview({ url }: { url: string }) {
  const [reloads, setReloads] = useState(0);
  return (
    <section className="preview" aria-labelledby="preview-title">
      <header className="preview-head">
        <h3 id="preview-title">Preview</h3>
        <a href={url} target="_blank" rel="noreferrer noopener">{url} ↗</a>
        <button type="button" className="secondary" onClick={() => setReloads(reloads + 1)}>Reload</button>
      </header>
      <iframe key={reloads} className="preview-frame" src={url} sandbox="allow-scripts" referrerPolicy="no-referrer"
        title="Live preview of the deployed site" />
    </section>
  );
}
