"""`morgus memory …`: list, show and delete what Morgus remembers (semantic memory's notes, docs/memory.md)."""

from __future__ import annotations

import uuid
from typing import Any

import typer
from rich.table import Table

from morgus.app.cli.common import out, run
from morgus.app.terminal import term_safe
from morgus.config import ConfigError, Settings

memory_app = typer.Typer(no_args_is_help=True, help="List, show and delete what Morgus remembers across tasks.")


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ConfigError(f"{what} must be a uuid, got {term_safe(value[:80])!r}") from None


async def _with_knowledge(settings: Settings, op: Any) -> Any:
    from morgus.app.client import open_store
    from morgus.db.knowledge import Knowledge

    store = await open_store(settings)
    try:
        return await op(Knowledge(store))
    finally:
        await store.close()


@memory_app.command("list")
def memory_list(
    owner: str | None = typer.Option(None, help="An owner's uuid, or 'local' for tasks without an owner."),
    task: str | None = typer.Option(None, help="Only the notes of this task (its id)."),
    limit: int = typer.Option(50, min=1, max=1000),
) -> None:
    """List notes, newest first."""
    owner_id = None if owner in (None, "local") else _uuid(owner, "--owner")
    task_id = _uuid(task.removeprefix("task-"), "--task") if task else None
    rows = run(
        lambda s: _with_knowledge(
            s, lambda k: k.list_notes(owner=owner_id, local_only=owner == "local", task_id=task_id, limit=limit)
        )
    )
    if not rows:
        out.print("nothing remembered yet")
        return
    table = Table("id", "kind", "task", "note", "created")
    for r in rows:
        table.add_row(
            str(r["id"]),
            term_safe(r["kind"], markup=True),
            str(r["task_id"] or "")[:8],
            term_safe(r["content"][:80], markup=True),
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


@memory_app.command("show")
def memory_show(note: str = typer.Argument(..., help="The note's id.")) -> None:
    """Show one note whole, with where it came from."""
    note_id = _uuid(note, "the note id")
    row = run(lambda s: _with_knowledge(s, lambda k: k.get_note(note_id)))
    if row is None:
        raise ConfigError(f"no note with id {note_id}")
    out.print(f"{row['id']}  ({term_safe(row['kind'])})", markup=False)
    out.print(term_safe(row["content"], newlines=True), markup=False)
    out.print(
        f"task {row['task_id'] or '-'}   phase {term_safe(row['phase'] or '-')}   owner {row['owner_id'] or 'local'}   "
        f"embedded by {term_safe(row['embedding_model'] or '-')}   {row['created_at']:%Y-%m-%d %H:%M:%S}",
        markup=False,
    )


@memory_app.command("delete")
def memory_delete(note: str = typer.Argument(..., help="The note's id.")) -> None:
    """Forget one note: later tasks no longer recall or find it."""
    note_id = _uuid(note, "the note id")
    if not run(lambda s: _with_knowledge(s, lambda k: k.delete_note(note_id))):
        raise ConfigError(f"no note with id {note_id}")
    out.print(f"deleted {note_id}")
