"""Alert notifications: each change of an alert posted to the engineer's webhook.

The post is a job of its own (``alerts.notify``), queued in the watch's transaction, so a
receiver that is down is retried with backoff like any provider and ends in the dead
letter, never silently dropped; the job's key makes it one post per change. The body is
JSON (:meth:`parley.alerts.watch.Change.payload`) with the deployment's public URL as
``source`` and at the end of ``text``, which is what a Slack or Mattermost incoming
webhook shows.

An alert's posts go in the order its changes happened: a post waits while an earlier one
of the same alert is still to go (its receiver was down, and it waits out its backoff),
so a channel that comes back is not left saying "firing" about an alert that resolved
meanwhile.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx2
from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.alerts.rules import NOTIFY_KIND
from parley.channels.base import TransientChannelError
from parley.channels.http import error_for_exception, is_transient_status, parse_retry_after
from parley.clock import utc_now
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Fail, Later, Outcome, Retry

log = logging.getLogger(__name__)

RECEIVER = "the alert webhook"
AFTER_EARLIER = timedelta(seconds=5)
"""How long after the earlier post of its alert is due a waiting post looks again."""


class NotifyTask:
    """Posts one alert change to ``url`` with ``client`` (the runtime's, closed with it)."""

    kind = NOTIFY_KIND

    def __init__(self, url: str | None, client: httpx2.AsyncClient, *, source: str) -> None:
        """``source``: the deployment's public URL, so one channel can take the alerts of
        several deployments and tell them apart."""
        self.url = url
        self.client = client
        self.source = source

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(
        self, session: Session, job: ClaimedJob, batch: Any = None
    ) -> dict[str, Any] | Later:
        earlier = _earlier_post(session, job)
        if earlier is not None:
            return Later(
                max(earlier.due_at, utc_now()) + AFTER_EARLIER,
                f"the alert's earlier post (job {earlier.id}) goes first",
            )
        text = f"{job.payload['text']} ({self.source})"
        return {**job.payload, "text": text, "source": self.source}

    async def perform(self, payload: dict[str, Any]) -> Outcome:
        if self.url is None:
            log.info("alert %s not posted: no alert webhook is set", payload.get("alert"))
            return Done()
        try:
            response = await self.client.post(self.url, json=payload)
        except httpx2.HTTPError as exc:
            error = error_for_exception(exc, provider=RECEIVER)
            if isinstance(error, TransientChannelError):
                return Retry(error.reason)
            return Fail(error.reason)
        if response.is_success:
            return Done()
        reason = f"{RECEIVER} answered HTTP {response.status_code}: {response.text[:200]}"
        if is_transient_status(response.status_code):
            return Retry(reason, parse_retry_after(response.headers.get("Retry-After")))
        return Fail(reason)

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, _, result in items:
            if isinstance(result, BaseException):
                log.error("alert notification (job %s) failed", job.id, exc_info=result)
                outcomes.append(Retry(f"{type(result).__name__}: {result}"))
            else:
                outcomes.append(result)
        return outcomes


def _earlier_post(session: Session, job: ClaimedJob) -> Job | None:
    """The first post of the same alert queued before ``job`` and still to go (pending,
    or being posted now), if any. The deployment's own jobs still to go are few: the
    index on (workspace, status) finds them."""
    waiting = session.scalars(
        select(Job)
        .where(
            Job.workspace_id.is_(None),
            Job.status.in_((JobStatus.PENDING, JobStatus.RUNNING)),
            Job.kind == NOTIFY_KIND,
            Job.id < job.id,
        )
        .order_by(Job.id)
    )
    return next(
        (found for found in waiting if found.payload["alert"] == job.payload["alert"]), None
    )
