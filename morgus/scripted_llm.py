"""A real HTTP server speaking the OpenAI chat-completions protocol with scripted replies.

Used by the tests and by `morgus demo`, so the production LLM code path (the `openai` SDK over HTTP) runs
unchanged without a provider. It is stateless where it matters: the reply to a request is chosen by the
scenario named in the system message (`[scenario:NAME]`) and by how many assistant messages the request already
holds, so a retried or replayed call gets the same reply. Like real providers it rejects conversations that
break the tool-call protocol (an assistant `tool_calls` message must be answered by one `tool` message per call).

Script: {"scenarios": {"NAME": [REPLY, ...]}}, REPLY = {"content": str, "tool_calls": [{"name": str,
"arguments": object | str}], "finish_reason": str, "delay_s": float, "fail": [{"status": int, "times": int, "message": str,
"retry_after": float}], "stream": STREAM}. A scenario with "repeat_last": true repeats its last reply forever; past
its end any scenario answers "Done." with no tool call (which ends a phase).

Streaming (`"stream": true` in the request) answers with Server-Sent Events as OpenAI does: `chat.completion.chunk`
objects (the role first, then content pieces, then each tool call as its id and name followed by argument pieces,
then the finish reason), with `stream_options.include_usage` a last chunk with no choices and the usage (every
earlier chunk then says `"usage": null`), then `data: [DONE]`. STREAM = {"chunk_chars": int (8), "delay_s": float
between chunks (0), "pause_after_chars": int (hold the stream there until `release(f"{scenario}#{n}")`, n counting this
reply's streamed requests from 1, so each attempt of a retried call has its own gate), "fail_after_chars": int (drop
the connection there, like a provider that fails mid-reply; a pause before it is held first), "fail_times": int (1),
"refuse": bool (answer 400 "streaming is not supported", like a server without streaming)}.

Longer than ~300 lines because it is one server with one job, the scripted model: its script format, the protocol
checks a real provider makes, and the request log tests read are kept together so a test author reads one file.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCENARIO_RE = re.compile(r"\[scenario:([A-Za-z0-9_.\-]+)\]")
CONDENSED_RE = re.compile(r"^\[condensed: (\d+) assistant turns\]")
CONDENSE_MARKER = "[morgus:condense]"
MEMORY_MARKER = "[morgus:memory]"  # morgus/memory/notes.py: a distil request answers from scenario "<name>.memory"


class ProtocolError(Exception):
    pass


def validate_messages(messages: list[dict[str, Any]]) -> None:
    """The checks OpenAI applies to a conversation with tool calls."""
    if not messages:
        raise ProtocolError("'messages' must contain at least one message.")
    open_calls: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool", "developer"):
            raise ProtocolError(f"Invalid value for 'messages[{i}].role': {role!r}.")
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                raise ProtocolError(
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    f"'tool_calls' (messages[{i}].tool_call_id={m.get('tool_call_id')!r})."
                )
            open_calls.remove(m["tool_call_id"])
            continue
        if open_calls:
            raise ProtocolError(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}"
            )
        if role == "assistant":
            open_calls = [c["id"] for c in m.get("tool_calls") or []]
    if open_calls:
        raise ProtocolError(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}"
        )


@dataclass
class Recorded:
    scenario: str
    index: int
    body: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class ScriptedLLM:
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_key: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    _failures: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _in_flight: dict[str, int] = field(default_factory=dict)
    _gates: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- script

    def add(
        self, name: str, replies: list[dict[str, Any]], *, repeat_last: bool = False, context_window: int | None = None
    ) -> str:
        """`context_window`: answer requests estimated above it (characters / 4) with the provider's
        context_length_exceeded error, as a real model would."""
        with self._lock:
            if name in self.scenarios:  # requests are recorded by scenario: a reused name mixes two tasks' traffic
                raise ValueError(f"scenario {name!r} already exists")
            self.scenarios[name] = {"replies": replies, "repeat_last": repeat_last, "context_window": context_window}
        return f"[scenario:{name}]"

    def load_file(self, path: Path) -> None:
        data = json.loads(Path(path).read_text())
        for name, spec in data["scenarios"].items():
            if isinstance(spec, list):
                self.add(name, spec)
            else:
                self.add(name, spec["replies"], repeat_last=spec.get("repeat_last", False))

    def in_flight(self, name: str) -> int:
        """Requests of this scenario being answered right now (a delayed reply is recorded when sent)."""
        with self._lock:
            return self._in_flight.get(name, 0)

    def gate(self, name: str) -> threading.Event:
        """Where a stream with `pause_after_chars` waits (`scenario#n`); `release(name)` opens it for good."""
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def release(self, name: str) -> None:
        self.gate(name).set()

    def requests_for(self, name: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.scenario == name]

    # ---------------------------------------------------------------- protocol

    def respond(self, body: dict[str, Any], auth: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        return self.respond_full(body, auth)[:3]

    def respond_full(
        self, body: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str], dict[str, Any] | None]:
        """The status, body and headers of the answer, and for a streamed 200 how to stream it: the reply's
        STREAM spec with its scenario's name and index."""
        status, payload, headers, plan = self._answer(body, auth)
        return status, payload, headers, (plan if status == 200 and body.get("stream") else None)

    def _answer(
        self, body: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str], dict[str, Any] | None]:
        if self.api_key and auth != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), {}, None
        messages = body.get("messages") or []
        text = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
        if CONDENSE_MARKER in text:
            return (*self._condense(body), {"_scenario": "_condense", "_index": 0})
        if MEMORY_MARKER in text:
            return (*self._distil(body), {"_scenario": "_distil", "_index": 0})
        match = SCENARIO_RE.search(text)
        name = match.group(1) if match else "default"
        # turns a summary replaced still count, so the script stays in step after a condensation
        index = sum(1 for m in messages if m.get("role") == "assistant") + sum(
            int(c.group(1))
            for m in messages
            if m.get("role") == "user" and (c := CONDENSED_RE.match(str(m.get("content") or "")))
        )
        with self._lock:
            spec = self.scenarios.get(name)
        if spec is None:
            return (
                *self._record(
                    name,
                    index,
                    body,
                    404,
                    _error(f"The model script {name!r} does not exist.", "invalid_request_error", "model_not_found"),
                ),
                None,
            )
        if not body.get("model"):
            return (
                *self._record(
                    name, index, body, 400, _error("you must provide a model parameter", "invalid_request_error", None)
                ),
                None,
            )
        try:
            validate_messages(messages)
        except ProtocolError as e:
            return (*self._record(name, index, body, 400, _error(str(e), "invalid_request_error", None)), None)
        window = spec.get("context_window")
        size = estimate(body)
        if window and size > window:
            return (
                *self._record(
                    name,
                    index,
                    body,
                    400,
                    _error(
                        f"This model's maximum context length is {window} tokens. However, your messages resulted in {size} tokens.",
                        "invalid_request_error",
                        "context_length_exceeded",
                    ),
                ),
                None,
            )

        replies = spec["replies"]
        if index < len(replies):
            reply = replies[index]
        elif spec["repeat_last"] and replies:
            reply = replies[-1]
        else:
            reply = {"content": "Done."}

        for k, fail in enumerate(reply.get("fail", [])):
            key = (name, index, k)
            with self._lock:
                used = self._failures.get(key, 0)
                failing = fail.get("times", 1) < 0 or used < fail.get("times", 1)
                if failing:
                    self._failures[key] = used + 1
            if failing:
                status = int(fail["status"])
                headers = {"Retry-After": str(fail["retry_after"])} if "retry_after" in fail else {}
                payload = _error(fail.get("message", f"scripted error {status}"), "server_error", fail.get("code"))
                return (*self._record(name, index, body, status, payload)[:2], headers, None)
        if body.get("stream") and (reply.get("stream") or {}).get("refuse"):
            return (
                *self._record(
                    name, index, body, 400, _error("streaming is not supported", "invalid_request_error", None)
                ),
                None,
            )
        if reply.get("delay_s"):
            with self._lock:
                self._in_flight[name] = self._in_flight.get(name, 0) + 1
            try:
                time.sleep(float(reply["delay_s"]))
            finally:
                with self._lock:
                    self._in_flight[name] -= 1
        payload = _completion(body["model"], index, reply, messages)
        return (
            *self._record(name, index, body, 200, payload),
            {**(reply.get("stream") or {}), "_scenario": name, "_index": index},
        )

    def _condense(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        transcript = str(body["messages"][-1].get("content") or "")
        reply = {"content": f"Condensed summary: {transcript.count(chr(10)) + 1} lines of earlier work (scripted)."}
        return self._record("_condense", 0, body, 200, _completion(body.get("model", ""), 0, reply, body["messages"]))

    def _distil(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The notes of a finished task: the first reply of scenario "<task's scenario>.memory", else none."""
        record = " ".join(str(m.get("content") or "") for m in body["messages"] if m.get("role") == "user")
        match = SCENARIO_RE.search(record)
        name = f"{match.group(1) if match else 'default'}.memory"
        with self._lock:
            spec = self.scenarios.get(name)
        reply = spec["replies"][0] if spec and spec["replies"] else {"content": '{"notes": []}'}
        return self._record(name, 0, body, 200, _completion(body.get("model", ""), 0, reply, body["messages"]))

    def _record(
        self, name: str, index: int, body: dict[str, Any], status: int, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(Recorded(name, index, body, status))
        return status, payload, {}

    # ---------------------------------------------------------------- streaming

    def _stream(
        self, handler: BaseHTTPRequestHandler, payload: dict[str, Any], plan: dict[str, Any], usage: bool
    ) -> None:
        """Send `payload` as a chunked SSE stream, pausing or failing where the plan says."""
        name = plan["_scenario"]
        pause_at = plan.get("pause_after_chars")
        fail_at = plan.get("fail_after_chars")
        key = (name, int(plan["_index"]), -1)  # -1: this reply's streamed requests, counted apart from "fail"
        with self._lock:
            number = self._failures.get(key, 0) + 1
            self._failures[key] = number
        if number > int(plan.get("fail_times", 1)):
            fail_at = None
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def write(data: str) -> None:
            raw = data.encode()
            handler.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            handler.wfile.flush()

        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            sent = 0
            for chunk, chars in stream_chunks(payload, usage, int(plan.get("chunk_chars", 8))):
                if pause_at is not None and sent >= pause_at:
                    self.gate(f"{name}#{number}").wait(timeout=120)
                    pause_at = None
                if fail_at is not None and sent >= fail_at:
                    # a provider that dies mid-reply: the body ends without its last chunk (an incomplete read)
                    handler.close_connection = True
                    with contextlib.suppress(OSError):
                        handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                write(f"data: {json.dumps(chunk)}\n\n")
                sent += chars
                if plan.get("delay_s"):
                    time.sleep(float(plan["delay_s"]))
            write("data: [DONE]\n\n")
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the client went away
        finally:
            with self._lock:
                self._in_flight[name] -= 1

    # ---------------------------------------------------------------- server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes on a kept-alive connection: with Nagle on, the body waited for
            # the client's delayed ACK, ~40 ms a reply (bench/orchestration.py counted it as orchestration)
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                if self.path.startswith("/_requests"):
                    with llm._lock:
                        return self._send(200, {"requests": [r.__dict__ for r in llm.requests]})
                self._send(404, _error("not found", "invalid_request_error", None))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, _error(f"unknown path {self.path}", "invalid_request_error", None))
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return self._send(400, _error("request body is not valid JSON", "invalid_request_error", None))
                status, payload, headers, plan = llm.respond_full(body, self.headers.get("Authorization"))
                if plan is None:
                    return self._send(status, payload, headers)
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                llm._stream(self, payload, plan, include_usage)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="scripted-llm", daemon=True).start()
        return f"http://{host}:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def estimate(body: dict[str, Any]) -> int:
    """The same count Morgus makes (morgus/context.py: o200k_base tokens, or characters / 4 without the
    tokenizer), so a test window means the same on both sides."""
    from morgus.context import estimate_tokens

    return estimate_tokens(body.get("messages") or [], body.get("tools") or [])


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _completion(model: str, index: int, reply: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [
        {
            "id": c.get("id") or f"call_{index}_{j}",
            "type": "function",
            "function": {
                "name": c["name"],
                "arguments": c["arguments"]
                if isinstance(c.get("arguments"), str)
                else json.dumps(c.get("arguments", {})),
            },
        }
        for j, c in enumerate(reply.get("tool_calls", []))
    ]
    content = reply.get("content")
    prompt_tokens = max(1, len(json.dumps(messages)) // 4)
    completion_tokens = max(1, len(json.dumps(calls) + (content or "")) // 4)
    # like a provider's prefix cache: everything before the newest turn was seen in the previous request
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    cached = len(json.dumps(messages[:last_assistant])) // 4 if last_assistant else 0
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-scripted-{index}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.get("finish_reason") or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def stream_chunks(
    completion: dict[str, Any], include_usage: bool, chunk_chars: int = 8
) -> Iterator[tuple[dict[str, Any], int]]:
    """A completion as OpenAI streams it: `chat.completion.chunk` objects, each with the characters of text or
    arguments it carries. The role first; content in pieces; each tool call as its index, id, type and name with
    empty arguments, then its arguments in pieces; the finish reason in an empty delta; with include_usage, a last
    chunk with no choices and the usage (the earlier ones say `"usage": null`)."""
    step = max(1, chunk_chars)
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return out | ({"usage": None} if include_usage else {})

    yield chunk({"role": "assistant", "content": "", "refusal": None}), 0
    content = message.get("content") or ""
    for i in range(0, len(content), step):
        yield chunk({"content": content[i : i + step]}), len(content[i : i + step])
    for n, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        head = {"index": n, "id": call["id"], "type": "function", "function": {"name": fn["name"], "arguments": ""}}
        yield chunk({"tool_calls": [head]}), 0
        args = fn["arguments"]
        for i in range(0, len(args), step):
            yield (
                chunk({"tool_calls": [{"index": n, "function": {"arguments": args[i : i + step]}}]}),
                len(args[i : i + step]),
            )
    yield chunk({}, choice["finish_reason"]), 0
    if include_usage:
        last = chunk({}) | {"choices": [], "usage": completion["usage"]}
        yield last, 0


def main() -> None:  # pragma: no cover - `python -m morgus.scripted_llm SCRIPT.json [PORT]`
    import sys

    llm = ScriptedLLM()
    llm.load_file(Path(sys.argv[1]))
    url = llm.start(port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
