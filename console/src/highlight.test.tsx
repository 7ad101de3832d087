import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { highlight, languageFor, MAX_HIGHLIGHT_CHARS } from "./highlight";
import { FileViewer } from "./Files";
import type { FileText } from "./api";

const html = (node: React.ReactNode) => renderToStaticMarkup(<pre>{node}</pre>);
const file = (path: string, text: string): FileText =>
  ({ path, size: text.length, mtime: "2026-01-01T00:00:00Z", binary: false, truncated: false, text });

describe("languageFor", () => {
  it("maps the registered extensions and nothing else", () => {
    expect(languageFor("site/index.html")).toBe("xml");
    expect(languageFor("src/app.TS")).toBe("typescript");
    expect(languageFor("a/b.py")).toBe("python");
    expect(languageFor(".env")).toBeNull();
    expect(languageFor("Makefile")).toBeNull();
    expect(languageFor("x.unknownext")).toBeNull();
  });
});

describe("highlight", () => {
  it("marks tokens with highlight.js classes", () => {
    const out = html(highlight("const a = 1; // note\n", "javascript"));
    expect(out).toContain('<span class="hljs-keyword">const</span>');
    expect(out).toContain('<span class="hljs-number">1</span>');
    expect(out).toContain('<span class="hljs-comment">// note</span>');
  });

  it("renders HTML in a file as text: an <img onerror> never becomes an element", () => {
    const evil = '<img src=x onerror="alert(1)">\n<script>alert(2)</script>\n';
    for (const lang of ["xml", "markdown", "javascript", null]) {
      const out = html(highlight(evil, lang));
      expect(out).not.toMatch(/<img|<script/);
      expect(out).toContain("&lt;");
    }
    const viewer = renderToStaticMarkup(<FileViewer state={{ status: "ok", file: file("evil.html", evil) }} onDownload={() => {}} />);
    expect(viewer).not.toMatch(/<img|<script/);
    expect(viewer).toContain('<span class="hljs-tag">&lt;<span class="hljs-name">img</span>');
    expect(viewer).toContain('data-language="xml"');
  });

  it("keeps the text exact (highlighting adds spans, never characters)", () => {
    const src = "def f(x):\n    return x * 2  # twice\n";
    const out = html(highlight(src, "python")).replace(/<[^>]+>/g, "").replace(/&#x27;/g, "'");
    expect(out).toBe(src);
  });

  it("leaves very large text plain", () => {
    const big = "let x = 1;\n".repeat(Math.ceil(MAX_HIGHLIGHT_CHARS / 11) + 1);
    expect(highlight(big, "javascript")).toBe(big);
  });
});
