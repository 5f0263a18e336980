"""The ``inbox.apply_status`` task: a receipt that arrived before its send was recorded.

A provider may post "sent" for a message before the worker has committed the provider's
answer (the id the receipt names). The webhook then schedules this task, which applies the
receipt once the id is known, a few times with backoff. A receipt still naming no message
after that is about one parley never sent (a store's staff writing in the provider's own
app, which parley never records, and the read receipts for it): it ends done, logged,
since there is nothing for anyone to fix and the dead letter would raise an alert.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from parley.inbox import service as inbox
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Outcome, RetryLater

log = logging.getLogger(__name__)


class ApplyStatusLater:
    kind = inbox.RETRY_STATUS

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: None) -> None:
        assert job.workspace_id is not None
        status = inbox.status_from_payload(job.payload)
        if inbox.apply_status(session, workspace_id=job.workspace_id, status=status):
            return
        if job.attempts < job.max_attempts:
            raise RetryLater(f"no message has provider id {status.provider_message_id} yet")
        log.info(
            "%s %s receipt: no message has provider id %s; dropped after %s attempts",
            status.channel,
            status.status,
            status.provider_message_id,
            job.attempts,
        )

    async def perform(self, work: Any) -> None:
        return None

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        return []
