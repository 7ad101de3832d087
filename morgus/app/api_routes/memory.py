"""/api/memory: what Morgus remembers (semantic memory's notes, morgus/db/knowledge.py): list, inspect, delete.

The operator's token sees every owner's notes; `owner` narrows the list to one owner (a uuid) or to the local
single-user scope (`local`, the notes of tasks without an owner). A delete, like every write, is sent with
Content-Type: application/json (the API's guard against cross-site requests).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from morgus.app.api_auth import current_owner
from morgus.app.api_deps import StoreDep, view
from morgus.app.api_errors import READ_ERRORS, WRITE_ERRORS
from morgus.app.api_models import RESPONSE, OkView
from morgus.db.knowledge import Knowledge

router = APIRouter()


class MemoryNoteView(BaseModel):
    """One note (a row of `knowledge`, its embedding left out)."""

    model_config = RESPONSE

    id: UUID
    owner_id: UUID | None
    task_id: UUID | None
    kind: str = Field(description="preference, decision, fix, deployment or fact")
    phase: str | None
    content: str
    embedding_model: str | None
    created_at: datetime


class MemoryPage(BaseModel):
    model_config = RESPONSE

    notes: list[MemoryNoteView]


def _mine(row: dict) -> bool:
    """The operator reads every note; a signed-in user (a Supabase JWT) only those of their own tasks: another
    owner's note is a 404, as another user's task is."""
    user = current_owner()
    return user is None or str(row.get("owner_id") or "") == user


def _note_id(note_id: str) -> str:
    try:
        return str(UUID(note_id))
    except ValueError:
        raise HTTPException(404, "no note with that id (expected a uuid)") from None


@router.get("/memory", response_model=MemoryPage, responses=READ_ERRORS)
async def list_memory(
    store: StoreDep,
    owner: str | None = Query(
        default=None,
        pattern=r"^(local|[0-9a-fA-F-]{36})$",
        description="an owner's uuid, or 'local' for tasks without one",
    ),
    task_id: UUID | None = Query(default=None, description="only the notes of this task"),
    limit: int = Query(default=50, ge=1, le=200),
) -> MemoryPage:
    if owner not in (None, "local"):
        try:
            UUID(owner)
        except ValueError:
            raise HTTPException(422, "owner: not a uuid (or 'local')") from None
    user = current_owner()
    if user is not None:  # a signed-in user sees their own notes only, whatever `owner` asks for
        owner = user
    rows = await Knowledge(store).list_notes(
        owner=None if owner in (None, "local") else owner,
        local_only=owner == "local",
        task_id=str(task_id) if task_id else None,
        limit=limit,
    )
    return view(MemoryPage, {"notes": rows})


@router.get("/memory/{note_id}", response_model=MemoryNoteView, responses=READ_ERRORS)
async def get_memory(note_id: str, store: StoreDep) -> MemoryNoteView:
    row = await Knowledge(store).get_note(_note_id(note_id))
    if row is None or not _mine(row):
        raise HTTPException(404, f"no note with id {note_id}")
    return view(MemoryNoteView, row)


@router.delete("/memory/{note_id}", response_model=OkView, responses=WRITE_ERRORS)
async def delete_memory(note_id: str, store: StoreDep) -> OkView:
    knowledge = Knowledge(store)
    row = await knowledge.get_note(_note_id(note_id))
    if row is None or not _mine(row) or not await knowledge.delete_note(_note_id(note_id)):
        raise HTTPException(404, f"no note with id {note_id}")
    return OkView(ok=True)
