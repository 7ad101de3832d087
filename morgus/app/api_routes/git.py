"""/api/tasks/{id}/git/log: the task's commits, read from the host-owned repository with the hardened git runner
(morgus/app/git_log.py)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException

from morgus.activities.tools.workspace import ToolError
from morgus.app.api_deps import SettingsDep, StoreDep, row_or_404, task_id_of, view
from morgus.app.api_errors import errors
from morgus.app.api_models import GitLogView
from morgus.app.git_log import LogError, read_log

router = APIRouter()


@router.get("/tasks/{task_id}/git/log", response_model=GitLogView, responses=errors(401, 404, 422, 503))
async def git_log(task_id: str, settings: SettingsDep, store: StoreDep) -> GitLogView:
    """The newest 100 commits of the task's repository, each with the files it changed. A task that has not run
    git_init yet has an empty log (`has_repository` false)."""
    tid = task_id_of(task_id)
    await row_or_404(store, tid)
    try:
        log = await read_log(settings, tid, settings.workspace_for(tid))
    except (ToolError, LogError) as e:  # git missing, over its deadline, or failing on the repository
        raise HTTPException(503, str(e)) from None
    return view(GitLogView, asdict(log))
