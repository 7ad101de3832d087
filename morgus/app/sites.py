"""The static server for locally deployed sites: MORGUS_HOME/sites/<task id>/ at MORGUS_SITES_URL/<task id>/.

A stand-in until the HTTP API serves them; read-only, loopback by default. What it serves was written by
sandboxed code (deploy_local copies only regular files, but this server holds on its own): every request path is
opened beneath the sites folder one component at a time with O_NOFOLLOW (safe_fs), and only a regular file is
sent. A link, a FIFO, a socket, a device, `..` or a folder without index.html is a 404; there are no listings.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from morgus.activities.tools import safe_fs
from morgus.activities.tools.workspace import ToolError


class SiteHandler(BaseHTTPRequestHandler):
    server_version = "morgus-sites"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body are two writes; with Nagle the body waits for a delayed ACK

    def __init__(self, *args: object, root: Path, **kwargs: object) -> None:
        self.root = root
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _plain(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        try:
            names = [n for n in unquote(path, errors="strict").split("/") if n]
        except UnicodeDecodeError:
            return self._plain(404, "not found\n")
        if not names or any(n in (".", "..") or "\x00" in n for n in names):
            return self._plain(404, "not found\n")
        try:
            fd, st = self._open(names, path.endswith("/"))
        except _Redirect:
            return self._plain(301, "moved\n", {"Location": path + "/"})
        except (ToolError, OSError):
            return self._plain(404, "not found\n")
        with safe_fs.closing_fd(fd):
            name = names[-1] if not path.endswith("/") else "index.html"
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.send_response(200)
            self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype.startswith("text/") else ""))
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            left = st.st_size
            while send_body and left > 0:
                chunk = os.read(fd, min(safe_fs.COPY_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _open(self, names: list[str], folder: bool) -> tuple[int, os.stat_result]:
        with safe_fs.closing_fd(os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as rfd:
            dirs, last = (names, "index.html") if folder else (names[:-1], names[-1])
            with safe_fs.closing_fd(safe_fs.open_dir(rfd, dirs)) as dfd:
                if not folder and stat.S_ISDIR(os.stat(last, dir_fd=dfd, follow_symlinks=False).st_mode):
                    raise _Redirect
                return safe_fs.open_regular_at(dfd, last, "/".join(names))


class _Redirect(Exception):
    pass


def serve_sites(root: Path, url: str) -> ThreadingHTTPServer:
    """Serve `root` in a daemon thread at the host and port of `url` (`deploy.sites_url(settings)`, MORGUS_SITES_URL)."""
    parts = urlsplit(url)
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(SiteHandler, root=root.resolve())
    server = ThreadingHTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="morgus-sites", daemon=True).start()
    return server
