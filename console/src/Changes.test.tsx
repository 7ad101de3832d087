import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { CommitList, DiffView, diffLineKind, stepDiff, type WriteDiff } from "./Changes";
import { StepItem } from "./components";
import { entryKey } from "./Files";
import type { GitLog, Step } from "./api";

const diff = (over: Partial<WriteDiff> = {}): WriteDiff => ({
  path: "site/index.html", new_file: false, binary: false, truncated: false, added: 1, removed: 1, old_bytes: 40,
  new_bytes: 48, note: null,
  text: "--- a/site/index.html\n+++ b/site/index.html\n@@ -1,3 +1,3 @@\n <!doctype html>\n-<h1>Crumb</h1>\n+<h1>Crumb &amp; Co.</h1>\n <p>Open</p>",
  ...over,
});
const step = (metadata: Record<string, unknown>): Step => ({
  id: "00000000-0000-0000-0000-000000000001", task_id: "00000000-0000-0000-0000-000000000002", seq: 7, phase: "BUILD",
  type: "TOOL_RESULT", content: "Wrote 48 bytes to site/index.html", metadata, created_at: "2026-01-01T00:00:00Z",
});

describe("DiffView", () => {
  it("is collapsed by default, with the path and the counts", () => {
    const html = renderToStaticMarkup(<DiffView diff={diff()} />);
    expect(html).toContain('aria-expanded="false"');
    expect(html).toContain("site/index.html · changed · ");
    expect(html).toContain("+1 −1");
    expect(html).not.toContain("diff-text");
  });

  it("colours added, removed, hunk and header lines, and shows markup in the diff as text", () => {
    const html = renderToStaticMarkup(<DiffView diff={diff()} defaultOpen />);
    expect(html).toContain('<span class="diff-line diff-del">-&lt;h1&gt;Crumb&lt;/h1&gt;');
    expect(html).toContain('<span class="diff-line diff-add">+&lt;h1&gt;Crumb &amp;amp; Co.&lt;/h1&gt;');
    expect(html).toContain('class="diff-line diff-hunk">@@ -1,3 +1,3 @@');
    expect(html).toContain('class="diff-line diff-head">--- a/site/index.html');
    expect(html).toContain('class="diff-line diff-ctx"> &lt;p&gt;Open&lt;/p&gt;');
    expect(html).not.toContain("<h1>");
  });

  it("says why there is no text, and when it is cut", () => {
    const binary = renderToStaticMarkup(<DiffView diff={diff({ binary: true, text: null, note: "binary file changed" })} defaultOpen />);
    expect(binary).toContain("binary file changed");
    expect(binary).toContain('<span class="diff-stats">binary</span>');
    expect(renderToStaticMarkup(<DiffView diff={diff({ truncated: true })} defaultOpen />)).toContain("The diff is cut here");
  });

  it("escapes invisible characters in the path", () => {
    expect(renderToStaticMarkup(<DiffView diff={diff({ path: "invoice\u202efdp.exe" })} />)).toContain("invoice\\u202efdp.exe");
  });

  it("a header-looking line past the headers is an added or removed line", () => {
    expect(diffLineKind("--- a/x", 0)).toBe("head");
    expect(diffLineKind("--- not a header", 5)).toBe("del");
    expect(diffLineKind("+++ b", 6)).toBe("add");
    expect(diffLineKind("\\ No newline at end of file", 6)).toBe("note");
  });
});

describe("stepDiff and the step", () => {
  it("shows the diff under a file_write's result step, and ignores a malformed one", () => {
    expect(stepDiff(step({ tool: "file_write", diff: diff() }))?.path).toBe("site/index.html");
    expect(stepDiff(step({ diff: { path: 3 } }))).toBeNull();
    expect(stepDiff(step({ diff: "text" }))).toBeNull();
    expect(stepDiff(step({ diff: { ...diff(), text: { html: "<b>" } } }))).toBeNull();
    expect(renderToStaticMarkup(<StepItem step={step({ tool: "file_write", diff: diff() })} />)).toContain("diff-toggle");
    expect(renderToStaticMarkup(<StepItem step={step({ tool: "shell_exec" })} />)).not.toContain("diff-toggle");
  });
});

describe("CommitList", () => {
  const log: GitLog = {
    has_repository: true, truncated: false,
    commits: [{
      sha: "a".repeat(40), author: "Morgus", email: "morgus@localhost", date: "2026-11-26T09:00:00+00:00",
      message: "Add the page <script>x</script>\n\nName and hours.", files_total: 2,
      files: [{ status: "A", path: "site/index.html" }, { status: "M", path: "we\nird" }],
    }],
  };
  it("lists commits with their subject, body and files, as text", () => {
    const html = renderToStaticMarkup(<CommitList log={log} />);
    expect(html).toContain("aaaaaaaaaa</code>");
    expect(html).toContain("Add the page &lt;script&gt;x&lt;/script&gt;");
    expect(html).toContain("Name and hours.");
    expect(html).toContain("2 files");
    expect(html).toContain("we\\u000aird");
    expect(html).not.toContain("<script>");
  });
  it("says when there is no repository or no commit", () => {
    expect(renderToStaticMarkup(<CommitList log={{ has_repository: false, commits: [], truncated: false }} />)).toContain("No git repository yet");
    expect(renderToStaticMarkup(<CommitList log={{ has_repository: true, commits: [], truncated: false }} />)).toContain("no commit yet");
  });
});

describe("entryKey", () => {
  it("keeps a name shown escaped apart from a real name spelt the same", () => {
    const e = { kind: "file" as const, size: 1, mtime: "2026-01-01T00:00:00Z" };
    expect(entryKey({ ...e, name: "a\\xff", escaped: true })).not.toBe(entryKey({ ...e, name: "a\\xff", escaped: false }));
  });
});
