import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { childPath, displayName, entryAction, FileViewer, FolderTree, type FolderState, formatSize, lineNumbers, Preview, previewUrl } from "./Files";
import { dispositionName, type Artifact, type FileEntry, type FileText, type Folder } from "./api";

const entry = (name: string, kind: FileEntry["kind"], extra: Partial<FileEntry> = {}): FileEntry =>
  ({ name, kind, size: kind === "file" ? 120 : null, mtime: "2026-01-01T00:00:00Z", escaped: false, ...extra });
const ok = (path: string, entries: FileEntry[], truncated = false): FolderState =>
  ({ status: "ok", folder: { path, entries, truncated } satisfies Folder });
const noop = () => {};
const tree = (folders: Record<string, FolderState>, expanded: string[] = [], selected: string | null = null) =>
  renderToStaticMarkup(<FolderTree path="" folders={folders} expanded={new Set(expanded)} selected={selected} onToggle={noop} onOpen={noop} />);
const text = (over: Partial<FileText> = {}): FileText =>
  ({ path: "src/a.js", size: 12, mtime: "2026-01-01T00:00:00Z", binary: false, truncated: false, text: "one\ntwo\n", ...over });

describe("FolderTree", () => {
  it("shows folders as expandable buttons and files as buttons, with sizes", () => {
    const html = tree({ "": ok("", [entry("src", "dir"), entry("index.html", "file", { size: 2048 })]) });
    expect(html).toContain('aria-expanded="false"');
    expect(html).toContain("src/</button>");
    expect(html).toContain("index.html</button>");
    expect(html).toContain("2.0 KiB");
  });

  it("shows an expanded folder's entries beneath it, and only the loaded ones", () => {
    const folders = { "": ok("", [entry("src", "dir"), entry("docs", "dir")]), src: ok("src", [entry("app.js", "file")]) };
    const html = tree(folders, ["src"], "src/app.js");
    expect(html).toContain('aria-expanded="true"');
    expect(html).toContain('aria-label="folder src"');
    expect(html).toContain('aria-current="true"');
    expect(html).toContain("app.js</button>");
    expect(html).not.toContain('aria-label="folder docs"'); // collapsed: not listed
    expect(tree({ "": ok("", [entry("src", "dir")]), src: { status: "loading" } }, ["src"])).toContain("Loading…");
  });

  it("renders untrusted names as text, never as markup", () => {
    const html = tree({ "": ok("", [entry('<img src=x onerror="alert(1)">', "file"), entry("<script>x</script>", "dir")]) });
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
  });

  it("shows control and bidi characters in names as visible escapes", () => {
    expect(displayName("invoice\u202efdp.exe")).toBe("invoice\\u202efdp.exe");
    expect(displayName("a\nb\u001b[31m\u200b")).toBe("a\\u000ab\\u001b[31m\\u200b");
    expect(displayName("café ü.txt")).toBe("café ü.txt");
    const html = tree({ "": ok("", [entry("invoice\u202efdp.exe", "file")]) });
    expect(html).not.toContain("\u202e");
    expect(html).toContain("invoice\\u202efdp.exe");
  });

  it("shows escaped names, links and devices but makes none of them clickable", () => {
    const html = tree({
      "": ok("", [
        entry("bad\\xff.txt", "file", { escaped: true }),
        entry("bad\\xfe", "dir", { escaped: true }),
        entry("up", "link"),
        entry("pipe", "other"),
      ]),
    });
    expect(html).not.toContain("<button");
    expect(html).toContain("bad\\xff.txt");
    expect(html).toContain("name not UTF-8, cannot be opened");
    expect(html).toContain("link, not followed");
    expect(html).toContain("FIFO, socket or device");
    expect(entryAction(entry("x", "dir", { escaped: true }))).toBe("none");
    expect(entryAction(entry("x", "link"))).toBe("none");
    expect(entryAction(entry("x", "dir"))).toBe("folder");
    expect(entryAction(entry("x", "file"))).toBe("file");
  });

  it("says when a folder is empty, cut, or could not be read", () => {
    expect(tree({ "": ok("", []) })).toContain("The workspace is empty.");
    expect(tree({ "": ok("", [entry("a", "file")], true) })).toContain("More entries than the API lists");
    expect(tree({ "": { status: "error", error: "the task has no workspace on this host (yet)" } })).toContain("no workspace");
  });

  it("joins paths beneath the top", () => {
    expect(childPath("", "src")).toBe("src");
    expect(childPath("src/lib", "a.js")).toBe("src/lib/a.js");
  });
});

describe("FileViewer", () => {
  const view = (state: Parameters<typeof FileViewer>[0]["state"]) => renderToStaticMarkup(<FileViewer state={state} onDownload={noop} />);

  it("shows text with one line number per line", () => {
    const html = view({ status: "ok", file: text() });
    expect(html).toContain('<pre class="gutter" aria-hidden="true">1\n2</pre>');
    expect(html).toContain("one\ntwo\n");
    expect(html).toContain("Download");
    expect(lineNumbers("a")).toBe("1");
    expect(lineNumbers("a\nb\nc")).toBe("1\n2\n3");
    expect(lineNumbers("\n\n")).toBe("1\n2");
  });

  it("renders file text as text", () => {
    const html = view({ status: "ok", file: text({ path: "<b>x</b>.html", text: "<script>alert(1)</script>" }) });
    expect(html).not.toContain("<script>");
    expect(html).not.toContain("<b>");
    // highlighted (an .html file): the text is still all there, as text, once highlight.js's spans are taken out
    expect(html.replace(/<\/?span[^>]*>/g, "")).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  });

  it("says a binary file is not shown and offers its download", () => {
    const html = view({ status: "ok", file: text({ path: "logo.png", binary: true, text: null, size: 5000 }) });
    expect(html).toContain("Binary file (4.9 KiB): not shown as text");
    expect(html).toContain("Download</button>");
    expect(html).not.toContain("gutter");
  });

  it("says a truncated file is cut", () => {
    const html = view({ status: "ok", file: text({ truncated: true, size: 3 << 20, text: "x".repeat(1 << 20) }) });
    expect(html).toContain("Only the first 1.0 MiB of 3.0 MiB is shown");
  });

  it("shows the empty, loading and error states", () => {
    expect(view(null)).toContain("Choose a file");
    expect(view({ status: "ok", file: text({ text: "", size: 0 }) })).toContain("Empty file.");
    expect(view({ status: "loading", path: "a" })).toContain("Loading…");
    expect(view({ status: "error", path: "a", error: "not found" })).toContain("not found");
  });

  it("formats sizes", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1536)).toBe("1.5 KiB");
    expect(formatSize(200 * 1024 * 1024)).toBe("200 MiB");
    expect(formatSize(null)).toBe("");
  });
});

describe("downloads", () => {
  it("takes the exact name from Content-Disposition, else the plain one, else the fallback", () => {
    expect(dispositionName(`attachment; filename="caf_.txt"; filename*=UTF-8''caf%C3%A9.txt`, "f")).toBe("café.txt");
    expect(dispositionName(`attachment; filename="a.txt"`, "f")).toBe("a.txt");
    expect(dispositionName(`attachment; filename="b.txt"; filename*=UTF-8''%E0%A4%A`, "f")).toBe("b.txt");
    expect(dispositionName(null, "task-1.tar.gz")).toBe("task-1.tar.gz");
  });
});

describe("Preview", () => {
  const art = (type: Artifact["type"], url: string | null): Artifact =>
    ({ type, name: "site", url, path: null, metadata: {}, id: "a", task_id: "t", created_at: "2026-01-01T00:00:00Z" });

  it("frames the latest http(s) deployment only", () => {
    expect(previewUrl([])).toBeNull();
    expect(previewUrl([art("repository", "https://example.com/r")])).toBeNull();
    expect(previewUrl([art("deployment", "javascript:alert(1)")])).toBeNull();
    expect(previewUrl([art("deployment", "data:text/html,<b>x</b>")])).toBeNull();
    expect(previewUrl([art("deployment", "not a url")])).toBeNull();
    expect(previewUrl([art("deployment", "http://127.0.0.1:8090/t/"), art("deployment", "https://x.pages.dev/")]))
      .toBe("https://x.pages.dev/");
  });

  it("sandboxes the frame: scripts, but no same origin, pop-ups, forms or top navigation", () => {
    const html = renderToStaticMarkup(<Preview url="http://127.0.0.1:8090/t/" />);
    expect(html).toContain('sandbox="allow-scripts"');
    expect(html).not.toContain("allow-same-origin");
    expect(html).toContain('referrerPolicy="no-referrer"');
    expect(html).toContain('src="http://127.0.0.1:8090/t/"');
  });
});
