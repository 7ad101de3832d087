"""The memory activities: recall notes for a phase's opening message, and distil a finished task into notes.

Memory never fails a task: an embedding server that is down (or not configured) comes back as a result the
workflow turns into a step, and the task goes on without memory. A distil is idempotent: an attempt that finds the
task's notes already stored returns them without calling the model again, and the notes of one attempt are stored
in one transaction, keyed by (task, note key).
"""

from __future__ import annotations

import openai
from temporalio import activity

from morgus.activities.common import activity_store, heartbeating
from morgus.activities.llm_errors import classify_error
from morgus.activities.llm_reply import usage_of
from morgus.config import Settings
from morgus.db.knowledge import Knowledge
from morgus.db.store import Store
from morgus.log import activity_logger
from morgus.memory.contracts import (
    MemoryDistilRequest,
    MemoryDistilResult,
    MemoryRecall,
    MemoryRecallRequest,
    RecalledNote,
)
from morgus.memory.embeddings import Embedder, EmbeddingUnavailable, vector_literal
from morgus.memory.notes import DISTIL_PROMPT, NOTE_MAX, parse_notes, task_record
from morgus.models import choose_model, model_info

ALL_MESSAGES = 2**31 - 1


def recalled(row: dict) -> RecalledNote:
    return RecalledNote(
        id=str(row["id"]),
        kind=row["kind"],
        content=row["content"][:NOTE_MAX],
        task_id=str(row["task_id"]) if row["task_id"] else None,
        distance=round(float(row["distance"]), 4),
    )


async def search_notes(
    knowledge: Knowledge, embedder: Embedder, task_id: str, query: str, limit: int, max_distance: float | None
) -> list[RecalledNote]:
    """The task owner's notes nearest to `query` (raises EmbeddingUnavailable)."""
    owner = await knowledge.owner_of(task_id)
    [vector] = await embedder.embed([query], "query")
    rows = await knowledge.search(owner, vector_literal(vector), limit=limit, max_distance=max_distance)
    return [recalled(r) for r in rows]


class MemoryActivities:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = activity_store(store, settings)
        self.knowledge = Knowledge(self.store)
        self.settings = settings
        self.embedder = Embedder(settings)
        self.llm = openai.AsyncOpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key or "not-needed",
            max_retries=0,
            timeout=settings.llm_timeout_s,
        )

    @activity.defn(name="memory_recall")
    async def recall(self, req: MemoryRecallRequest) -> MemoryRecall:
        if not self.embedder.enabled:
            return MemoryRecall(enabled=False)
        try:
            notes = await search_notes(
                self.knowledge,
                self.embedder,
                req.task_id,
                req.query,
                self.settings.memory_recall,
                self.settings.memory_max_distance,
            )
        except EmbeddingUnavailable as e:
            activity_logger(req.task_id).warning("memory unavailable", reason=str(e))
            return MemoryRecall(enabled=True, unavailable=str(e))
        return MemoryRecall(enabled=True, notes=notes)

    @activity.defn(name="memory_distil")
    async def distil(self, req: MemoryDistilRequest) -> MemoryDistilResult:
        log = activity_logger(req.task_id)
        if not self.embedder.enabled:
            return MemoryDistilResult(enabled=False)
        stored = await self.knowledge.notes_of_task(req.task_id)
        if stored:
            log.info("notes already stored; not distilling again", notes=len(stored))
            return MemoryDistilResult(enabled=True, saved=len(stored), kinds=[r["kind"] for r in stored])
        try:  # no model call is paid for notes that could not be stored
            await self.embedder.embed([req.title], "passage")
        except EmbeddingUnavailable as e:
            return MemoryDistilResult(enabled=True, unavailable=str(e))
        messages = await self.store.load_messages(req.task_id, ALL_MESSAGES)
        model = choose_model(req.phase, req.model, self.settings.model, self.settings.code_model)
        async with heartbeating():
            try:
                resp = await self.llm.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": DISTIL_PROMPT},
                        {"role": "user", "content": task_record(req.title, req.description, messages)},
                    ],
                    max_tokens=self.settings.llm_max_tokens or openai.omit,
                )
            except Exception as e:  # noqa: BLE001 - every provider error becomes a classified Temporal error
                raise classify_error(e) from e
        usage = usage_of(resp, model_info(model, self.settings.model_config_file))
        notes = parse_notes(resp.choices[0].message.content if resp.choices else None)
        if not notes:
            return MemoryDistilResult(enabled=True, usage=usage)
        try:
            vectors = await self.embedder.embed([n.content for n in notes], "passage")
        except EmbeddingUnavailable as e:
            return MemoryDistilResult(enabled=True, unavailable=str(e), usage=usage)
        await self.knowledge.save_notes(
            task_id=req.task_id,
            owner_id=await self.knowledge.owner_of(req.task_id),
            phase=req.phase.value,
            model=self.settings.embedding_model,
            notes=[(n.kind, n.content, n.key, vector_literal(v)) for n, v in zip(notes, vectors, strict=True)],
        )
        log.info("notes stored", notes=len(notes), kinds=[n.kind for n in notes])
        return MemoryDistilResult(enabled=True, saved=len(notes), kinds=[n.kind for n in notes], usage=usage)
