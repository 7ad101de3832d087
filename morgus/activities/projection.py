"""The projection activity: mirrors the workflow's own progress (status, phase, question, end) into Postgres."""

from __future__ import annotations

from temporalio import activity

from morgus.activities.common import activity_store
from morgus.config import Settings
from morgus.contracts import ProjectionBatch
from morgus.db.store import Store
from morgus.log import activity_logger


class ProjectionActivities:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = activity_store(store, settings)
        self.settings = settings

    @activity.defn(name="project")
    async def project(self, batch: ProjectionBatch) -> None:
        await self.store.apply_projection(batch)
        activity_logger(batch.task_id).debug(
            "projected", status=batch.update.status, phase=batch.update.phase, steps=len(batch.steps)
        )
