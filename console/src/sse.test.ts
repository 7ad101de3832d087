import { describe, expect, it } from "vitest";
import { parseSse, streamEvents, type SseEvent } from "./sse";

describe("parseSse", () => {
  it("splits events, skips comments and keeps the incomplete tail", () => {
    const { events, rest } = parseSse(': connected\n\nid: 7\nevent: step\ndata: {"seq":1}\n\nid: 8\nevent: ta');
    expect(events).toEqual([{ id: "7", event: "step", data: '{"seq":1}' }]);
    expect(rest).toBe("id: 8\nevent: ta");
    const next = parseSse(rest + 'sk\ndata: {}\n\n');
    expect(next.events).toEqual([{ id: "8", event: "task", data: "{}" }]);
    expect(next.rest).toBe("");
  });

  it("accepts CRLF line ends and multi-line data", () => {
    expect(parseSse("event: x\r\ndata: a\r\ndata: b\r\n\r\n").events).toEqual([{ id: null, event: "x", data: "a\nb" }]);
  });
});

function streamResponse(text: string): Response {
  const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(text)); c.close(); } });
  return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
}

describe("streamEvents", () => {
  it("sends the token, asks for one on a 401, and resumes after the last event id", async () => {
    const calls: Record<string, string>[] = [];
    const responses = [
      new Response('{"error":"needs a token"}', { status: 401 }),
      streamResponse('id: 1\nevent: step\ndata: {}\n\nid: 2\nevent: task\ndata: {}\n\n'),
      streamResponse("id: 3\nevent: step\ndata: {}\n\n"),
    ];
    let token = "";
    const seen: SseEvent[] = [];
    const done = new Promise<void>((resolve) => {
      const stop = streamEvents({
        url: "/api/events",
        headers: (): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {}),
        onUnauthorized: async () => { token = "s3cret"; return true; },
        onEvent: (e) => { seen.push(e); if (seen.length === 3) { stop(); resolve(); } },
        retryMs: () => 0,
        fetchImpl: (async (_url: RequestInfo | URL, init?: RequestInit) => {
          calls.push({ ...(init?.headers as Record<string, string>) });
          return responses.shift() ?? new Promise(() => {});
        }) as typeof fetch,
      });
    });
    await done;
    expect(seen.map((e) => e.id)).toEqual(["1", "2", "3"]);
    expect(calls[0]).toEqual({});
    expect(calls[1]).toEqual({ Authorization: "Bearer s3cret" });
    expect(calls[2]).toEqual({ Authorization: "Bearer s3cret", "Last-Event-ID": "2" });
  });
});
