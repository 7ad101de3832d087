"""/api/tasks/{id}/files, /files/content and /archive: a task's workspace, read-only (morgus/app/workspace_files.py
does the reading, beneath the workspace, never following a link; this module maps it to HTTP).

Every read runs in a thread: the file system is never touched on the event loop. A refused path (absolute, `..`,
NUL, a link, a folder given as a file, a FIFO or device) is a 400 with one sentence; a path that is not there, or
a task without a workspace on this host, a 404. Downloads are always `application/octet-stream` with `nosniff` and
a sandbox CSP: a page the sandbox wrote must never run on the API's origin, where the console keeps the token.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from morgus.activities.tools import safe_fs
from morgus.activities.tools.workspace import ToolError
from morgus.app import workspace_files as wf
from morgus.app.api_deps import SettingsDep, StoreDep, row_or_404, task_id_of, view
from morgus.app.api_errors import errors, json_errors
from morgus.app.api_models import FileView, FolderView

router = APIRouter()

FILE_ERRORS = errors(400, 401, 404, 413, 422)
STREAM_ERRORS = json_errors(400, 401, 404, 413, 422)
PATH_MAX = 4096
_UNSAVED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, format (bidi, zero-width), surrogates, separators

# Bytes of the sandbox's making: never rendered, never sniffed into HTML, never given the API origin's powers.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "no-store",
}

T = TypeVar("T")


async def _read(fn: Callable[..., T], *args: Any) -> T:
    """`fn` in a thread, its refusals as HTTP errors."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (safe_fs.Missing, wf.NoWorkspace) as e:
        raise HTTPException(404, _sentence(e)) from None
    except safe_fs.TooLarge as e:
        raise HTTPException(413, _sentence(e)) from None
    except ToolError as e:
        raise HTTPException(400, _sentence(e)) from None


def _sentence(e: Exception) -> str:
    # safe_fs speaks to the model ("use file_list to see what is there"): the API's client has no such tool
    return str(e).replace("; use file_list to see what is there", " in the workspace")


def _attachment(filename: str) -> str:
    """A Content-Disposition no name can break: an ASCII fallback and the name percent-encoded (RFC 6266), exact but
    for control, invisible-format and bidi characters (and undecodable bytes), which become '_': the name is the
    sandbox's, and "invoice\u202efdp.exe" would be saved reading as "invoiceexe.pdf"."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename) or "file"
    shown = "".join("_" if unicodedata.category(c) in _UNSAVED else c for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(shown, safe='')}"


async def _closing(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, each read in a thread; the generator is closed (its descriptors with it) however the response
    ends, a client that went away included."""
    try:
        async for chunk in iterate_in_threadpool(chunks):
            if chunk:
                yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # only os.close calls: quick


async def _workspace(task_id: str, settings: SettingsDep, store: StoreDep) -> tuple[str, Any]:
    tid = task_id_of(task_id)
    await row_or_404(store, tid)
    return tid, settings.workspace_for(tid)


@router.get("/tasks/{task_id}/files", response_model=FolderView, responses=FILE_ERRORS)
async def list_files(
    task_id: str,
    settings: SettingsDep,
    store: StoreDep,
    path: str = Query(
        default="", max_length=PATH_MAX, description="a folder, relative to the workspace; '' is its top"
    ),
) -> FolderView:
    """One folder of the task's workspace: its entries (lstat only; links are listed, never followed)."""
    _, root = await _workspace(task_id, settings, store)
    entries, truncated = await _read(wf.list_folder, root, path)
    return view(FolderView, {"path": path, "entries": [vars(e) for e in entries], "truncated": truncated})


@router.get(
    "/tasks/{task_id}/files/content",
    response_model=FileView,
    responses=FILE_ERRORS | {200: {"content": {"application/octet-stream": {}}}},
)
async def file_content(
    task_id: str,
    settings: SettingsDep,
    store: StoreDep,
    path: str = Query(max_length=PATH_MAX, description="a regular file, relative to the workspace"),
    download: bool = Query(default=False, description="the raw bytes as an attachment instead of the JSON view"),
) -> Any:
    """One regular file: its text as JSON (`binary` and no text when it is not UTF-8; the first MiB), or with
    `download=1` its bytes (up to 1 GiB). Links, FIFOs, devices and hard-linked files are refused."""
    _, root = await _workspace(task_id, settings, store)
    if not download:
        return view(FileView, vars(await _read(wf.read_text, root, path)))
    fd, st = await _read(wf.open_file, root, path)
    if st.st_size > wf.MAX_DOWNLOAD_BYTES:
        await asyncio.to_thread(os.close, fd)
        raise HTTPException(413, f"the file has {st.st_size} bytes, more than the {wf.MAX_DOWNLOAD_BYTES} served")
    name = safe_fs.split_rel(path)[-1]
    return StreamingResponse(
        _closing(wf.file_chunks(fd, st.st_size)),
        media_type="application/octet-stream",
        headers=DOWNLOAD_HEADERS | {"Content-Disposition": _attachment(name)},
    )


@router.get(
    "/tasks/{task_id}/archive",
    response_class=StreamingResponse,
    responses=STREAM_ERRORS | {200: {"content": {"application/gzip": {}}, "description": "the workspace, .tar.gz"}},
)
async def archive(task_id: str, settings: SettingsDep, store: StoreDep) -> StreamingResponse:
    """The whole workspace as a streamed .tar.gz under `task-<id>/`: folders and regular files only. Links (never
    followed), FIFOs, sockets, devices, hard-linked files and `.git` are left out (a sandbox-written .git/config or
    hook would run commands on the machine of whoever runs git in the extracted folder)."""
    tid, root = await _workspace(task_id, settings, store)
    await _read(wf.check_archive, root)
    top = f"task-{tid}"
    return StreamingResponse(
        _closing(wf.archive_chunks(root, top)),
        media_type="application/gzip",
        headers=DOWNLOAD_HEADERS | {"Content-Disposition": _attachment(f"{top}.tar.gz")},
    )
