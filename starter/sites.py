"""The static server for locally deployed sites: MORGUS_HOME/sites/<task id>/ at MORGUS_SITES_URL/<task id>/.

A stand-in until the HTTP API serves them; read-only, loopback by default.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from activities.tools.deploy import sites_url


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_sites(root: Path, url: str | None = None) -> ThreadingHTTPServer:
    """Serve `root` in a daemon thread at the host and port of `url` (default MORGUS_SITES_URL)."""
    parts = urlsplit(url or sites_url())
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="morgus-sites", daemon=True).start()
    return server
