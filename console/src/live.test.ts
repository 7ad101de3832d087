import { describe, expect, it } from "vitest";
import { applyLive, inFlight, mergeLive, type LiveMap, type LivePiece } from "./live";

const piece = (over: Partial<LivePiece>): LivePiece =>
  ({ seq: 5, kind: "llm", phase: "BUILD", run: 10, attempt: 1, offset: 0, text: "", snapshot: false, ...over });

function apply(pieces: LivePiece[], start: LiveMap = {}): { live: LiveMap; gaps: number } {
  let live = start;
  let gaps = 0;
  for (const p of pieces) {
    const r = applyLive(live, p);
    live = r.live;
    gaps += r.gap ? 1 : 0;
  }
  return { live, gaps };
}

describe("applyLive", () => {
  it("appends pieces in order", () => {
    const { live } = apply([piece({ text: "Hello" }), piece({ offset: 5, text: ", wor" }), piece({ offset: 10, text: "ld" })]);
    expect(live[5].text).toBe("Hello, world");
  });
  it("keeps what extends the text when a snapshot overlaps pieces queued before it", () => {
    const { live, gaps } = apply([
      piece({ text: "Hello, world", snapshot: true }), // the text so far, read after the pieces below were queued
      piece({ offset: 5, text: ", wor" }), // already in the snapshot
      piece({ offset: 10, text: "ld and more" }), // overlaps, then extends
    ]);
    expect(live[5].text).toBe("Hello, world and more");
    expect(gaps).toBe(0);
  });
  it("starts over for a new attempt and drops the dead attempt's late pieces", () => {
    const { live } = apply([
      piece({ text: "first try, cut" }),
      piece({ run: 20, attempt: 2, text: "second" }),
      piece({ offset: 14, text: " off" }), // the dead attempt again
    ]);
    expect(live[5]).toMatchObject({ text: "second", run: 20, attempt: 2 });
  });
  it("reports a gap instead of placing a piece past the end", () => {
    const { live, gaps } = apply([piece({ text: "abc" }), piece({ offset: 10, text: "xyz" })]);
    expect(live[5].text).toBe("abc");
    expect(gaps).toBe(1);
  });
  it("counts offsets as a JS string does (an emoji is two units)", () => {
    const { live } = apply([piece({ text: "a😀" }), piece({ offset: 3, text: "b" })]);
    expect(live[5].text).toBe("a😀b");
  });
  it("takes a hostile text as text", () => {
    const { live } = apply([piece({ text: "<script>alert(1)</script>\u0000\u001b[31m" })]);
    expect(live[5].text).toContain("<script>");
  });
  it("merges the API's rows as snapshots, never shortening the text", () => {
    const { live } = apply([piece({ text: "Hello, world" })]);
    const merged = mergeLive(live, [{ seq: 5, kind: "llm", phase: "BUILD", run: 10, attempt: 1, text: "Hello" }]);
    expect(merged[5].text).toBe("Hello, world");
  });
});

describe("inFlight", () => {
  it("hides an entry once its step has landed, and all of them when the task has ended", () => {
    const { live } = apply([piece({ seq: 7, text: "b" }), piece({ seq: 5, text: "a" })]);
    expect(inFlight(live, new Set([5]), true).map((e) => e.seq)).toEqual([7]);
    expect(inFlight(live, new Set(), true).map((e) => e.seq)).toEqual([5, 7]);
    expect(inFlight(live, new Set(), false)).toEqual([]);
  });
});
