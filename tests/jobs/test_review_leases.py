"""A claim's lease while its round's sends go on: renewed, or the send not made.

A round's jobs share one lease, counted from the claim, but their sends go out in waves
(``concurrency`` at a time, across every round in flight). With a provider slow to answer
(200 jobs a round, two rounds, 64 at a time: seven waves of a 10 s timeout) the last
waves start after the lease ran out, when another worker may have taken their jobs back
and be sending them too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from parley.clock import FrozenClock
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Worker, WorkerConfig
from support import rows

LEASE = timedelta(seconds=60)
KIND = "test.slow_send"


@dataclass
class SlowSendTask:
    """Each send waits for the test to open its gate (when ``gated``); every send of every
    worker is noted in ``sent``, shared between the workers' tasks."""

    sent: list[int]
    gated: bool = True
    kind: str = KIND
    gates: asyncio.Queue[asyncio.Event] = field(default_factory=asyncio.Queue)

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> int:
        return job.id

    async def perform(self, work: int) -> str:
        self.sent.append(work)
        if self.gated:
            gate = asyncio.Event()
            self.gates.put_nowait(gate)
            await gate.wait()
        return f"sent {work}"

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        return [Done() for _ in items]


def _enqueue(db: Any, n: int) -> list[int]:
    with db.transaction() as session:
        queue.enqueue_many(session, [{"kind": KIND, "payload": {"n": i}} for i in range(n)])
    return sorted(job.id for job in rows(db, Job))


def _worker(db: Any, task: SlowSendTask, name: str) -> Worker:
    config = WorkerConfig(batch_size=10, concurrency=1, lease=LEASE)
    return Worker(db, [task], config, name=name)


def test_a_send_started_late_in_a_round_renews_the_lease_so_no_other_worker_sends_it_too(
    db, frozen_clock: FrozenClock
):
    # Given two jobs claimed by one worker that sends one at a time, to a slow provider
    first_job, second_job = _enqueue(db, 2)
    sent: list[int] = []
    slow = SlowSendTask(sent)
    worker = _worker(db, slow, "w1")
    other = _worker(db, SlowSendTask(sent, gated=False), "w2")

    async def rounds() -> None:
        round_ = asyncio.create_task(worker.run_once())
        first_gate = await slow.gates.get()
        # When the first send takes 40 s, the second starts with 20 s of the lease left
        frozen_clock.advance(timedelta(seconds=40))
        first_gate.set()
        second_gate = await slow.gates.get()
        # and takes 30 s: meanwhile, past the claim's lease, another worker looks for work
        frozen_clock.advance(timedelta(seconds=30))
        assert await other.run_once() == 0
        second_gate.set()
        assert await round_ == 2

    asyncio.run(rounds())

    # Then each job was sent once, by the worker that claimed it, and settled by it
    assert sent == [first_job, second_job]
    assert {(job.id, job.status, job.attempts) for job in rows(db, Job)} == {
        (first_job, JobStatus.DONE, 1),
        (second_job, JobStatus.DONE, 1),
    }


def test_a_send_whose_job_another_claim_took_back_before_it_started_is_not_made(
    db, frozen_clock: FrozenClock
):
    # Given two jobs claimed by one worker that sends one at a time
    first_job, second_job = _enqueue(db, 2)
    sent: list[int] = []
    slow = SlowSendTask(sent)
    worker = _worker(db, slow, "w1")

    async def rounds() -> None:
        round_ = asyncio.create_task(worker.run_once())
        first_gate = await slow.gates.get()
        # When, while the first send takes 40 s, the second job is taken back by
        # another claim (its lease ran out: the worker stalled before sending it)
        frozen_clock.advance(timedelta(seconds=40))
        with db.transaction() as session:
            session.execute(
                update(Job)
                .where(Job.id == second_job)
                .values(locked_by="w2/1", attempts=Job.attempts + 1)
            )
        first_gate.set()
        assert await round_ == 2

    asyncio.run(rounds())

    # Then the second send is not made by the worker that lost it, which leaves the job
    # to the claim holding it
    assert sent == [first_job]
    assert {(job.id, job.status, job.locked_by) for job in rows(db, Job)} == {
        (first_job, JobStatus.DONE, "w1/1"),
        (second_job, JobStatus.RUNNING, "w2/1"),
    }
