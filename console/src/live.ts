// Live text: a call in flight (the model's reply being generated, a command's output as it runs), kept per step seq
// until the durable step with that seq lands. Pieces come from the event stream (`event: live`): a snapshot of the
// text so far when the stream (re)connects, then pieces placed at an `offset` (UTF-16 units: a JS string's length).
// A piece of a higher `run` (a new attempt) starts the text over; a lower run's piece is a dead attempt's, dropped.
// Within a run the text only grows, so the longer text is the newer one: pieces that overlap what is shown add only
// what extends it, and a piece past its end (a piece was missed) asks the caller to read GET /api/tasks/{id}/live.
import type { components } from "./api-types";

export type LiveEntry = Pick<components["schemas"]["LiveEntryView"], "seq" | "kind" | "phase" | "run" | "attempt" | "text">;
export interface LivePiece extends LiveEntry {
  offset: number;
  snapshot: boolean;
}
export type LiveMap = Record<number, LiveEntry>;

/** `live` with one piece applied; `gap` when the piece starts past the text shown (re-read the live text then). */
export function applyLive(live: LiveMap, p: LivePiece): { live: LiveMap; gap: boolean } {
  const cur = live[p.seq];
  if (cur && p.run < cur.run) return { live, gap: false };
  const newer = !cur || p.run > cur.run;
  const base = newer ? "" : cur.text;
  let text: string;
  if (p.snapshot || p.offset === 0 && newer) {
    text = newer || p.text.length >= base.length ? p.text : base;
  } else if (p.offset > base.length) {
    return { live, gap: true };
  } else if (p.offset + p.text.length <= base.length) {
    return { live, gap: false }; // already shown
  } else {
    text = base + p.text.slice(base.length - p.offset);
  }
  const entry: LiveEntry = { seq: p.seq, kind: p.kind, phase: p.phase, run: p.run, attempt: p.attempt, text };
  return { live: { ...live, [p.seq]: entry }, gap: false };
}

/** `live` with the rows of GET /api/tasks/{id}/live applied, each as a snapshot. */
export function mergeLive(live: LiveMap, rows: LiveEntry[]): LiveMap {
  return rows.reduce((acc, r) => applyLive(acc, { ...r, offset: 0, snapshot: true }).live, live);
}

/** The entries still in flight: not yet replaced by their step, and only while the task runs. */
export function inFlight(live: LiveMap, stepSeqs: Set<number>, running: boolean): LiveEntry[] {
  if (!running) return [];
  return Object.values(live).filter((e) => !stepSeqs.has(e.seq)).sort((a, b) => a.seq - b.seq);
}
