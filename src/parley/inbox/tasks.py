"""The ``inbox.apply_status`` task: a receipt that arrived before its send was recorded.

A provider may post "sent" for a message before the worker has committed the provider's
answer (the id the receipt names). The webhook then schedules this task, which applies the
receipt once the id is known, a few times with backoff, and gives up after that (the job
ends in the dead letter, visible, rather than retrying forever).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from parley.inbox import service as inbox
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Outcome, RetryLater


class ApplyStatusLater:
    kind = inbox.RETRY_STATUS

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: None) -> None:
        assert job.workspace_id is not None
        status = inbox.status_from_payload(job.payload)
        if not inbox.apply_status(session, workspace_id=job.workspace_id, status=status):
            raise RetryLater(f"no message has provider id {status.provider_message_id} yet")

    async def perform(self, work: Any) -> None:
        return None

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        return []
