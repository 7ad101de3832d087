"""One TLS context for the outgoing HTTP clients of tools (fetch_url, search_web, notify_user's webhook).

httpx builds a new context, loading the whole CA bundle, for every client it is not given one: ~46 ms of CPU on the
2-core bench machine, on the worker's event loop, for every fetch — five fetches of one turn started together held
each other (and every other activity of the worker) up by a quarter of a second. The context is built once, in a
thread; an SSLContext may be shared by any number of clients and connections.
"""

from __future__ import annotations

import asyncio
import functools
import ssl

import certifi


@functools.cache
def _context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())  # what httpx builds by default


async def tls_context() -> ssl.SSLContext:
    return await asyncio.to_thread(_context)
