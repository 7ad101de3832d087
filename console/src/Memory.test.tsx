import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { NoteList } from "./Memory";
import type { MemoryNote } from "./api";

const note = (id: string, content: string, owner: string | null = null): MemoryNote => ({
  id, content, owner_id: owner, task_id: "0b8f3c2e-1d2a-4c5b-9e8f-7a6b5c4d3e2f", kind: "preference", phase: "FINALIZE",
  embedding_model: "multilingual-e5-small-q4", created_at: "2026-11-26T10:00:00Z",
});

describe("NoteList", () => {
  it("shows each note as text, its task, its owner, and a way to forget it", () => {
    const html = renderToStaticMarkup(
      <NoteList notes={[note("a", "Blue <b>and</b> cream"), note("b", "x", "9d1e2f3a-0000-4000-8000-000000000000")]} onDelete={() => {}} />,
    );
    expect(html).toContain("Blue &lt;b&gt;and&lt;/b&gt; cream");
    expect(html).toContain('href="#/tasks/0b8f3c2e-1d2a-4c5b-9e8f-7a6b5c4d3e2f"');
    expect(html).toContain("local");
    expect(html).toContain("9d1e2f3a");
    expect(html.match(/forget note/g)).toHaveLength(2);
  });
  it("says when nothing is remembered", () => {
    expect(renderToStaticMarkup(<NoteList notes={[]} onDelete={() => {}} />)).toContain("Nothing remembered yet");
  });
});
