"""Browser-facing checks every request passes before routing: the Host name, and for mutating requests the JSON
content type and the Origin.

- Host (DNS rebinding): a page on evil.example whose name is re-pointed at 127.0.0.1 reaches a loopback API with
  `Host: evil.example`; only the configured names (MORGUS_API_ALLOWED_HOSTS, plus the bind address) pass.
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

from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin.strip())
        return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()
    except ValueError:
        return False
