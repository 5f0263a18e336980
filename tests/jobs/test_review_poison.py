"""A poison job, one that kills the worker running it every time, among healthy jobs.

A worker claims a batch, so the jobs claimed with a poison job die with it and their
leases run out together. Taken back together, they would die with it again on every
attempt, and end in the dead letter beside it, never run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from parley.clock import FrozenClock
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Worker, WorkerConfig
from support import rows

LEASE = timedelta(seconds=60)
KIND = "test.maybe_poison"


class WorkerKilled(BaseException):
    """What the poison job does to its worker's process (out of memory, a crash in a C
    extension): nothing of the round is recorded, and the process is gone."""


@dataclass
class PoisonTask:
    """Kills its worker while preparing the job whose payload says ``poison``."""

    kind: str = KIND
    performed: list[int] = field(default_factory=list)

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> int:
        if job.payload["poison"]:
            raise WorkerKilled
        return job.id

    async def perform(self, work: int) -> str:
        self.performed.append(work)
        return "done"

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        return [Done() for _ in items]


def test_a_poison_job_dies_alone_and_the_jobs_claimed_with_it_run_once(
    db, frozen_clock: FrozenClock
):
    # Given three jobs of three attempts, the middle one poison
    with db.transaction() as session:
        queue.enqueue_many(
            session,
            [{"kind": KIND, "payload": {"poison": n == 1}, "max_attempts": 3} for n in range(3)],
        )
    healthy_first, poison, healthy_last = sorted(job.id for job in rows(db, Job))
    task = PoisonTask()

    # When each worker that meets the poison job dies, and another starts in its place
    for restart in range(10):
        worker = Worker(db, [task], WorkerConfig(batch_size=10, lease=LEASE), name=f"w{restart}")
        try:
            asyncio.run(worker.run_until_idle())
        except WorkerKilled:
            frozen_clock.advance(LEASE + timedelta(seconds=1))

    # Then the healthy jobs ran once each and are done; only the poison job is dead
    assert sorted(task.performed) == [healthy_first, healthy_last]
    assert {job.id: (job.status, job.attempts) for job in rows(db, Job)} == {
        healthy_first: (JobStatus.DONE, 2),
        poison: (JobStatus.DEAD, 4),
        healthy_last: (JobStatus.DONE, 2),
    }
