import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import { costOf, durationOf, formatDuration, formatTokens, shorten, statusesOf, TaskRows, waitsFor } from "./Dashboard";
import { STATUSES, type Task } from "./api";

const task = (over: Partial<Task> = {}): Task => ({
  id: "00000000-0000-0000-0000-00000000000a", workflow_id: "task-a", title: "Bakery site", description: "d",
  status: "running", phase: "BUILD", model: null, pending_question: null, error_message: null, step_count: 12,
  prompt_tokens: 20_000, completion_tokens: 6_891, total_tokens: 26_891, cached_tokens: 0, cost_usd: 0.0612,
  created_at: "2026-11-26T09:00:00Z", updated_at: "2026-11-26T09:04:00Z", completed_at: null, price_known: true,
  ...over,
});
const NOW = Date.parse("2026-11-26T09:04:05Z");

describe("cost, tokens and duration", () => {
  it("shows the cost when the price is known, else the tokens", () => {
    expect(costOf(task())).toBe("$0.0612");
    expect(costOf(task({ cost_usd: 12.5 }))).toBe("$12.50");
    expect(costOf(task({ price_known: false, cost_usd: 0 }))).toBe("27k tokens");
    expect(formatTokens(950)).toBe("950 tokens");
    expect(formatTokens(1_234)).toBe("1.2k tokens");
    expect(formatTokens(3_400_000)).toBe("3.4M tokens");
  });
  it("measures from creation to the end, or to now while it runs", () => {
    expect(durationOf(task(), NOW)).toBe("4m 05s");
    expect(durationOf(task({ completed_at: "2026-11-26T09:00:42Z" }), NOW)).toBe("42s");
    expect(formatDuration(3_780_000)).toBe("1h 03m");
    expect(formatDuration(2 * 86_400_000 + 4 * 3_600_000)).toBe("2d 4h");
    expect(formatDuration(-5)).toBe("0s");
    expect(durationOf(task({ created_at: "not a date" }), NOW)).toBe("–");
  });
});

describe("what a task waits for", () => {
  it("is its question, on one line and shortened", () => {
    const q = "Which opening hours\nshould the page show? " + "x".repeat(200);
    const w = waitsFor(task({ status: "waiting_for_input", pending_question: q }))!;
    expect(w.startsWith("Which opening hours should the page show? x")).toBe(true);
    expect(w.length).toBe(90);
    expect(w.endsWith("…")).toBe(true);
    expect(waitsFor(task())).toBeNull();
    expect(shorten("  a \n b  ")).toBe("a b");
  });
  it("is the status itself for a waiting status this console does not know", () => {
    expect(waitsFor(task({ status: "waiting_for_approval" as Task["status"] }))).toBe("waiting for approval");
  });
});

describe("the task rows", () => {
  it("one focusable row per task, cells labelled for the phone layout, waits shown", () => {
    const html = renderToStaticMarkup(<TaskRows now={NOW} tasks={[
      task(),
      task({ id: "00000000-0000-0000-0000-00000000000b", status: "waiting_for_input", pending_question: "Which hours?", price_known: false }),
    ]} />);
    expect(html.match(/<tr tabindex="0"/g)?.length).toBe(2);
    expect(html).toContain('tabindex="-1"'); // the link is not a second tab stop
    expect(html).toContain('data-label="Cost" class="num">$0.0612');
    expect(html).toContain('data-label="Duration" class="num">4m 05s');
    expect(html).toContain("Waits for you: Which hours?");
    expect(html).toContain("27k tokens");
    expect(html).toContain('class="waiting"');
  });
  it("renders a status it does not know, and its title as text", () => {
    const html = renderToStaticMarkup(<TaskRows now={NOW} tasks={[task({ status: "archived" as Task["status"], title: "<img src=x onerror=alert(1)>" })]} />);
    expect(html).toContain('class="badge badge-other" data-status="archived">archived');
    expect(html).not.toContain("<img");
  });
  it("counts a newer server's statuses after the known ones", () => {
    expect(statusesOf({ running: 1, archived: 2 }).slice(-1)).toEqual(["archived"]);
    expect(statusesOf(undefined)).toHaveLength(STATUSES.length);
  });
});
