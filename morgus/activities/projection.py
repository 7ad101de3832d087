"""The projection activity: mirrors the workflow's own progress (status, phase, question, end) into Postgres."""

from __future__ import annotations

from temporalio import activity

from morgus.activities.common import with_db_retry
from morgus.config import Settings
from morgus.contracts import ProjectionBatch
from morgus.db.store import Store
from morgus.log import activity_logger


class ProjectionActivities:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    @activity.defn(name="project")
    async def project(self, batch: ProjectionBatch) -> None:
        await with_db_retry(lambda: self.store.apply_projection(batch), give_up_after_s=self.settings.db_retry_s, what="projection")
        activity_logger(batch.task_id).debug(
            "projected", status=batch.update.status, phase=batch.update.phase, steps=len(batch.steps)
        )
