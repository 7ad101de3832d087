"""The API's routes, one module per resource. `api_router()` is the ONLY way routes reach the app under /api, and
it puts the token check (`authorized`) on the router itself, so a route added to any of these modules is guarded
with no line of its own (tests/test_api_routes.py checks every route of the built app).

- health.py: /healthz (open: a load balancer's probe, it reveals nothing about tasks)
- meta.py: /api/config
- tasks.py: /api/tasks and a task's steps, artifacts, answer and cancel
- files.py: /api/tasks/{id}/files, /files/content, /archive: the task's workspace, read-only
- git.py: /api/tasks/{id}/git/log, the task's commits
- events.py: /api/events, the live Server-Sent Events stream
- memory.py: /api/memory, what Morgus remembers (list, inspect, delete)
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from morgus.app.api_deps import authorized
from morgus.app.api_routes import events, files, git, health, memory, meta, tasks

__all__ = ["api_router", "open_router"]


def api_router() -> APIRouter:
    api = APIRouter(prefix="/api", dependencies=[Depends(authorized)])
    for module in (meta, tasks, files, git, events, memory):
        api.include_router(module.router)
    return api


def open_router() -> APIRouter:
    """The routes outside /api that need no token."""
    return health.router
