// Server-Sent Events over fetch: EventSource cannot send an Authorization header, and a token in the URL would
// end up in logs and history. This reads the stream itself, remembers the last event id and resumes from it.

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

/** Parses complete events out of `buffer`; returns them and the incomplete tail to keep for the next chunk. */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const text = buffer.replace(/\r\n?/g, "\n");
  const blocks = text.split("\n\n");
  const rest = blocks.pop() ?? "";
  const events: SseEvent[] = [];
  for (const block of blocks) {
    let id: string | null = null;
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue; // a comment (the server's keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ id, event, data: data.join("\n") });
  }
  return { events, rest };
}

export interface StreamOptions {
  url: string;
  headers: () => Record<string, string>;
  onEvent: (e: SseEvent) => void;
  /** Called on a 401; resolves true when a new token was given (then the stream reconnects at once). */
  onUnauthorized: () => Promise<boolean>;
  fetchImpl?: typeof fetch;
  retryMs?: (attempt: number) => number;
}

/** Streams until the returned function is called; reconnects after errors, resuming after the last event id. */
export function streamEvents(opts: StreamOptions): () => void {
  const controller = new AbortController();
  const doFetch = opts.fetchImpl ?? fetch;
  const delay = opts.retryMs ?? ((n: number) => Math.min(1000 * 2 ** n, 15000));
  let lastId: string | null = null;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  (async () => {
    let attempt = 0;
    while (!controller.signal.aborted) {
      try {
        const headers = { ...opts.headers(), ...(lastId ? { "Last-Event-ID": lastId } : {}) };
        const resp = await doFetch(opts.url, { headers, signal: controller.signal, cache: "no-store" });
        if (resp.status === 401) {
          if (await opts.onUnauthorized()) continue;
          return; // no token given: stop (the page's other calls show the error)
        }
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        attempt = 0;
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const parsed = parseSse(buffer + decoder.decode(value, { stream: true }));
          buffer = parsed.rest;
          for (const e of parsed.events) {
            if (e.id) lastId = e.id;
            opts.onEvent(e);
          }
        }
      } catch {
        if (controller.signal.aborted) return;
      }
      await sleep(delay(attempt++));
    }
  })();
  return () => controller.abort();
}
