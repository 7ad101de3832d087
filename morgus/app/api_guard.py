"""Browser-facing checks every request passes before routing: the Host name, and for mutating requests the JSON
content type and the Origin.

- Host (DNS rebinding): a page on evil.example whose name is re-pointed at 127.0.0.1 reaches a loopback API with
  `Host: evil.example`; only the configured names (MORGUS_API_ALLOWED_HOSTS, plus the bind address) pass.
- Body size: a mutating request's body is read here, up to MAX_BODY_BYTES, before any route (or its token check)
  sees it; a larger one is a 413.
- Cross-site writes: an HTML form can POST `text/plain`, `application/x-www-form-urlencoded` or
  `multipart/form-data` to any site without a CORS preflight, but never `application/json`; so every mutating
  request must say `Content-Type: application/json` (the body itself may be empty). A browser always sends
  `Origin` on a cross-origin POST: when present it must be this server's own origin (its host and port match the
  Host header).

Starlette's TrustedHostMiddleware answers in plain text; this one answers `{"error": ...}` like every other error.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# FastAPI reads and parses a route's body before its dependencies run, the token check among them: without this
# cap anyone reaching the port could make the API hold any body in memory before the 401. The largest real body
# (a task, 20,000 characters of description, at most 12 bytes each as JSON escapes) is far under it.
MAX_BODY_BYTES = 1 << 20


def host_name(host_header: str) -> str:
    """`example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host_name(host) not in self.allowed_hosts:
            await send_error(
                send,
                400,
                "this server does not answer to that Host name (add it to MORGUS_API_ALLOWED_HOSTS if it is yours)",
            )
            return
        if scope["method"] not in SAFE_METHODS:
            content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                await send_error(
                    send, 415, "requests that change something must be sent with Content-Type: application/json"
                )
                return
            origin = headers.get("origin")
            if origin is not None and not _same_origin(origin, host):
                await send_error(send, 403, "cross-site requests are refused (the Origin is not this server)")
                return
            declared = headers.get("content-length", "").strip()
            body = None if declared.isdigit() and int(declared) > MAX_BODY_BYTES else await _capped_body(receive)
            if body is None:
                await send_error(send, 413, f"the request body is too large (at most {MAX_BODY_BYTES} bytes)")
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


async def _capped_body(receive: Receive) -> list[Message] | None:
    """The body's messages, read whole up to MAX_BODY_BYTES; None as soon as it is larger (the rest is never read)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client went away: the app hears it
            return messages
        size += len(message.get("body", b""))
        if size > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that answers the messages already read first, then the client's own (a later disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _same_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin.strip())
        return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()
    except ValueError:
        return False
