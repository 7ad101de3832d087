// Syntax highlighting for the file view, without ever treating the file as HTML: lowlight (highlight.js's grammar,
// maintained by the unified collective) returns a tree of nodes, not a string of markup, and this module turns it
// into React elements: each token a <span> with highlight.js's class, each piece of text a React text node (which
// React escapes). No innerHTML anywhere, so `<img src=x onerror=…>` in a file is only ever characters.
//
// Only a handful of languages are registered (the bundle stays small): what the agent typically writes for a site or
// a script.
import type { ReactNode } from "react";
import { createLowlight } from "lowlight";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const lowlight = createLowlight({ bash, css, javascript, json, markdown, python, typescript, xml, yaml });

/** Text larger than this is shown plain: highlighting a megabyte would stall the page. */
export const MAX_HIGHLIGHT_CHARS = 200_000;

const BY_EXTENSION: Record<string, string> = {
  html: "xml", htm: "xml", xml: "xml", svg: "xml", vue: "xml",
  css: "css",
  js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript",
  ts: "typescript", tsx: "typescript", mts: "typescript",
  json: "json", webmanifest: "json",
  md: "markdown", markdown: "markdown",
  py: "python",
  sh: "bash", bash: "bash",
  yml: "yaml", yaml: "yaml",
};

/** The registered language for a file name (by its extension), or null: shown as plain text. */
export function languageFor(path: string): string | null {
  const name = path.split("/").pop() ?? "";
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return null; // no extension, or a dot file such as .env
  return BY_EXTENSION[name.slice(dot + 1).toLowerCase()] ?? null;
}

type HastNode =
  | { type: "text"; value: string }
  | { type: "element"; properties?: { className?: unknown }; children: HastNode[] }
  | { type: string; children?: HastNode[]; value?: string };

function toReact(nodes: HastNode[], key: string): ReactNode[] {
  return nodes.map((n, i) => {
    if (n.type === "text") return (n as { value: string }).value;
    if (n.type === "element") {
      const el = n as { properties?: { className?: unknown }; children: HastNode[] };
      const cls = el.properties?.className;
      // only highlight.js's own class names (hljs-keyword…), never anything else a tree could carry
      const className = (Array.isArray(cls) ? cls : [])
        .filter((c): c is string => typeof c === "string" && /^hljs-[a-z_-]+$/.test(c))
        .join(" ");
      return <span key={`${key}.${i}`} className={className || undefined}>{toReact(el.children, `${key}.${i}`)}</span>;
    }
    return null;
  });
}

/** `text` highlighted as `language` (React nodes), or the text itself when there is no language or it is too big. */
export function highlight(text: string, language: string | null): ReactNode {
  if (!language || text.length > MAX_HIGHLIGHT_CHARS || !lowlight.registered(language)) return text;
  try {
    const tree = lowlight.highlight(language, text);
    return toReact(tree.children as HastNode[], "h");
  } catch {
    return text; // a grammar that throws: plain text is still correct
  }
}
