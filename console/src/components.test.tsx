import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { groupByPhase, mergeSteps, PhaseProgress, StatusBadge, StepItem, Timeline } from "./components";
import type { Step } from "./api";

const step = (seq: number, type: Step["type"], phase: Step["phase"], content = "x", metadata = {}): Step =>
  ({ id: String(seq), task_id: "t", seq, phase, type, content, metadata, created_at: "2026-01-01T00:00:00Z" });

describe("StatusBadge", () => {
  it("labels each status", () => {
    expect(renderToStaticMarkup(<StatusBadge status="waiting_for_input" />)).toContain("waiting for input");
    expect(renderToStaticMarkup(<StatusBadge status="error" />)).toContain("badge-error");
  });
});

describe("PhaseProgress", () => {
  it("marks done, current and remaining phases", () => {
    const html = renderToStaticMarkup(<PhaseProgress phase="BUILD" status="running" />);
    expect(html.match(/data-state="done"/g)).toHaveLength(2);
    expect(html).toContain('phase-current" data-state="current">BUILD');
    expect(html.match(/data-state="todo"/g)).toHaveLength(2);
  });
  it("marks every phase done when the task completed", () => {
    const html = renderToStaticMarkup(<PhaseProgress phase="FINALIZE" status="completed" />);
    expect(html.match(/data-state="done"/g)).toHaveLength(5);
  });
});

describe("steps", () => {
  it("groups steps by phase in order", () => {
    const groups = groupByPhase([step(2, "PHASE_START", "PLAN"), step(0, "TASK_START", null), step(1, "PHASE_START", "RESEARCH")]);
    expect(groups.map(([p, s]) => [p, s.map((x) => x.seq)])).toEqual([["Task", [0]], ["RESEARCH", [1]], ["PLAN", [2]]]);
  });
  it("merges live steps without duplicates", () => {
    const merged = mergeSteps([step(0, "TASK_START", null), step(1, "PHASE_START", "RESEARCH")],
                              [step(1, "PHASE_START", "RESEARCH"), step(2, "LLM_RESPONSE", "RESEARCH")]);
    expect(merged.map((s) => s.seq)).toEqual([0, 1, 2]);
  });
  it("collapses long tool output and marks failed results", () => {
    const html = renderToStaticMarkup(<StepItem step={step(3, "TOOL_RESULT", "BUILD", "y".repeat(500), { ok: false })} />);
    expect(html).toContain("step-failed");
    expect(html).toContain("more");
    expect(html).not.toContain("y".repeat(200));
  });
  it("shows an empty state", () => {
    expect(renderToStaticMarkup(<Timeline steps={[]} />)).toContain("No steps yet");
  });
});

describe("live text in the timeline", () => {
  it("shows a call in flight in its phase, where its step will land", () => {
    const html = renderToStaticMarkup(
      <Timeline steps={[step(3, "PHASE_START", "BUILD")]} live={[
        { seq: 4, kind: "llm", phase: "BUILD", run: 10, attempt: 1, text: "Writing the <page>…" },
        { seq: 6, kind: "shell", phase: "BUILD", run: 20, attempt: 2, text: "npm install\n" },
      ]} />,
    );
    expect(html.match(/<h3>/g)).toHaveLength(1);
    expect(html).toContain('class="step step-live step-live-llm" data-seq="4"');
    expect(html).toContain("replying…");
    expect(html).toContain("Writing the &lt;page&gt;…");
    expect(html).toContain("running… (attempt 2)"); // a retried call says so
    expect(html.indexOf('data-seq="3"')).toBeLessThan(html.indexOf('data-seq="4"'));
  });
  it("shows the live text alone before any step", () => {
    const html = renderToStaticMarkup(<Timeline steps={[]} live={[{ seq: 0, kind: "llm", phase: null, run: 10, attempt: 1, text: "hi" }]} />);
    expect(html).not.toContain("No steps yet");
    expect(html).toContain("hi");
  });
});
