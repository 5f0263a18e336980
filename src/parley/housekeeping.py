"""The housekeeping sweep: what parley keeps only for a while is deleted once it is old.

Without it, every raw delivery (about 5 KB a webhook, kept verbatim) and every finished
job would stay forever, and a busy store's database would grow by gigabytes a month. The
sweep is a periodic job (:mod:`parley.jobs.periodic`), so any number of worker processes
run it once per tick between them. It deletes in small batches, each its own short
transaction with a rest after it: on SQLite a transaction holds the one writer, and a
webhook should never wait behind a month of deletions.

What goes, and when (``PARLEY_WEBHOOK_RETENTION_DAYS``, ``PARLEY_JOB_RETENTION_DAYS``):
- raw deliveries past the webhook retention (default 14 days). A delivery's row is also
  its dedupe key, the only replay defence for Shopify, Twilio and Meta, which sign no
  timestamp; platforms retry for up to 3 days (Meta up to 7), so the retention cannot be
  set under 3 days. The store events a delivery carried stay in the store's timeline.
- done and cancelled jobs past the job retention (default 7 days). Failed and dead jobs
  are the dead letter and stay until someone deals with them, as does the job a message
  held for review would be sent again through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.db import Database
from parley.held_messages import jobs_held_messages_need
from parley.jobs import queue
from parley.jobs.periodic import Schedule
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Retry
from parley.store_events.service import prune_deliveries

log = logging.getLogger(__name__)

SWEEP_KIND = "housekeeping.sweep"
SWEEP_SCHEDULE = Schedule(kind=SWEEP_KIND, every=timedelta(minutes=10))
MIN_WEBHOOK_RETENTION = timedelta(days=3)
"""Shorter than the platforms' retry horizon, a late retry would be taken in again."""
PRUNE_BATCH = 200
"""Rows deleted to a transaction: a few milliseconds of holding SQLite's one writer."""
REST_SECONDS = 0.1
"""The pause after each batch, and at least as long as the batch took. A writer that has
waited a while for SQLite's lock (a webhook in another process) looks again every 100 ms,
so a shorter pause would let the sweep take the lock back before it looked: measured
(``bench/sweep.py``), back-to-back batches of 500 kept webhooks waiting seconds (p99
3.9 s at 200/s)."""
BUDGET_SECONDS = 20.0
"""One sweep job deletes for this long at most, well inside a job's lease (60 s by
default), then hands what is left to a follow-up job of the same tick."""


@dataclass(frozen=True)
class Retention:
    """How long raw deliveries and finished jobs are kept."""

    webhooks: timedelta = timedelta(days=14)
    finished_jobs: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.webhooks < MIN_WEBHOOK_RETENTION:
            raise ValueError(
                f"raw deliveries must be kept at least {MIN_WEBHOOK_RETENTION.days} days: "
                "they are the dedupe keys that stop a platform's late retry being taken in "
                "again"
            )
        if self.finished_jobs <= timedelta(0):
            raise ValueError("finished jobs must be kept for some time")


@dataclass(frozen=True)
class Swept:
    """What one sweep deleted, and whether it stopped at its budget with more to do."""

    deliveries: int
    jobs: int
    more: bool = False


def sweep(
    db: Database,
    retention: Retention,
    *,
    now: datetime | None = None,
    budget_seconds: float | None = None,
) -> Swept:
    """Delete everything past its retention, a batch to a transaction with a rest after
    each, until none is left or ``budget_seconds`` (of the monotonic clock) have passed."""
    now = now or utc_now()
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    deliveries, more = _in_batches(
        db,
        lambda session: prune_deliveries(
            session, received_before=now - retention.webhooks, limit=PRUNE_BATCH
        ),
        deadline,
    )
    if more:
        return Swept(deliveries=deliveries, jobs=0, more=True)
    with db.transaction() as session:
        needed = jobs_held_messages_need(session)
    jobs, more = _in_batches(
        db,
        lambda session: queue.prune_finished(
            session, finished_before=now - retention.finished_jobs, limit=PRUNE_BATCH, keep=needed
        ),
        deadline,
    )
    return Swept(deliveries=deliveries, jobs=jobs, more=more)


def _in_batches(
    db: Database, prune: Callable[[Session], int], deadline: float | None
) -> tuple[int, bool]:
    """Rows deleted, and whether the deadline came with more left."""
    total = 0
    while True:
        started = time.monotonic()
        with db.transaction() as session:
            deleted = prune(session)
        total += deleted
        if deleted < PRUNE_BATCH:
            return total, False
        took = time.monotonic() - started
        if deadline is not None and time.monotonic() + REST_SECONDS >= deadline:
            return total, True
        time.sleep(max(REST_SECONDS, took))


class SweepTask:
    """The sweep as a job: it reads nothing up front, and deletes in ``perform``, where no
    transaction of the worker's is open, in transactions of its own. A sweep that used its
    budget with more to delete enqueues the next part of its tick, due at once."""

    kind = SWEEP_KIND

    def __init__(
        self, db: Database, retention: Retention, *, budget_seconds: float | None = None
    ) -> None:
        """``budget_seconds``: a part's deleting time, :data:`BUDGET_SECONDS` unless given
        (``parley serve`` and ``parley worker`` keep it under a third of the job lease)."""
        self.db = db
        self.retention = retention
        self.budget_seconds = budget_seconds

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> datetime:
        return utc_now()

    async def perform(self, work: datetime) -> Swept:
        budget = BUDGET_SECONDS if self.budget_seconds is None else self.budget_seconds
        return await asyncio.to_thread(
            sweep, self.db, self.retention, now=work, budget_seconds=budget
        )

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, _, result in items:
            if not isinstance(result, Swept):
                log.error("housekeeping sweep (job %s) failed", job.id, exc_info=result)
                outcomes.append(Retry(f"{type(result).__name__}: {result}"))
                continue
            if result.deliveries or result.jobs:
                log.info(
                    "housekeeping: deleted %s raw deliveries and %s finished jobs%s",
                    result.deliveries,
                    result.jobs,
                    "; more to delete in the next part" if result.more else "",
                )
            if result.more:
                tick, part = job.payload["tick"], job.payload.get("part", 0) + 1
                queue.enqueue(
                    session,
                    kind=SWEEP_KIND,
                    payload={"tick": tick, "part": part},
                    idempotency_key=f"{SWEEP_SCHEDULE.key(datetime.fromisoformat(tick))}:{part}",
                )
            outcomes.append(Done())
        return outcomes
