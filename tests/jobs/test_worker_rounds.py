"""Rounds in flight of one worker: each claim holds its jobs under a lease of its own.

``parley worker`` runs two rounds at once under one worker name. A round whose batch
outlives its lease must be refused as a worker of another name would be, or the job that
the other round took back would be settled twice (and a journey's step sent twice).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.clock import FrozenClock
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Worker, WorkerConfig
from parley.messaging.models import Message, MessageStatus
from support import (
    TWO_CONFIRMATIONS,
    deliveries,
    drain,
    edit_journey,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
)

LEASE = timedelta(seconds=60)


@dataclass
class GatedTask:
    """Each perform waits until the test opens its gate; each finish notes the attempt it
    records and the answer it was given."""

    kind: str = "test.gated"
    gates: asyncio.Queue[asyncio.Event] = field(default_factory=asyncio.Queue)
    finished: list[tuple[int, str]] = field(default_factory=list)

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> int:
        return job.attempts

    async def perform(self, work: int) -> str:
        gate = asyncio.Event()
        self.gates.put_nowait(gate)
        await gate.wait()
        return f"answer of attempt {work}"

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        self.finished.extend((job.attempts, result) for job, _, result in items)
        return [Done() for _ in items]


def test_each_claim_of_a_worker_holds_its_jobs_under_a_name_of_its_own(db, frozen_clock):
    with db.transaction() as session:
        for n in range(2):
            queue.enqueue(session, kind="test.gated", payload={"n": n})
    worker = Worker(db, [GatedTask()], WorkerConfig(batch_size=1), name="w1")

    first, second = worker._claim(), worker._claim()

    assert [job.locked_by for job in first + second] == ["w1/1", "w1/2"]
    assert {job.id: job.locked_by for job in rows(db, Job)} == {1: "w1/1", 2: "w1/2"}


def test_a_round_whose_lease_another_round_took_back_cannot_settle_the_job(
    db, frozen_clock: FrozenClock
):
    # Given one worker running two rounds, and one job
    with db.transaction() as session:
        queue.enqueue(session, kind="test.gated", payload={})
    task = GatedTask()
    worker = Worker(db, [task], WorkerConfig(batch_size=1, rounds_in_flight=2), name="w1")

    async def rounds() -> None:
        first = asyncio.create_task(worker.run_once())
        first_gate = await task.gates.get()
        # When the first round's call outlives its lease, the second round takes the job
        # back, and the first round's answer comes back before the second's
        frozen_clock.advance(LEASE + timedelta(seconds=1))
        second = asyncio.create_task(worker.run_once())
        second_gate = await task.gates.get()
        first_gate.set()
        assert await first == 1
        second_gate.set()
        assert await second == 1

    asyncio.run(rounds())

    # Then only the round holding the job records its answer and settles it
    assert task.finished == [(2, "answer of attempt 2")]
    [job] = rows(db, Job)
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.DONE, 2, "w1/2")


def test_a_journey_step_another_round_took_back_is_settled_by_that_round_only(
    db, frozen_clock: FrozenClock
):
    # Given a journey that sends twice in a row, and one worker's two rounds
    workspace_id = seed(db)
    edit_journey(db, "order_confirmation", workspace_id=workspace_id, steps=TWO_CONFIRMATIONS)
    post(db, deliveries("Ada")[0])
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    [first] = worker._claim()
    stalled = worker._prepare_all([first])
    answers = [asyncio.run(worker._perform(job, work)) for job, work in stalled]

    # When the first round's batch outlives its lease, the second round takes the job
    # back, the first round's answer comes back late, then the second round runs
    frozen_clock.advance(LEASE + timedelta(seconds=1))
    [second] = worker._claim()
    worker._finish_all(stalled, answers)
    walked_on = worker._prepare_all([second])
    answers = [asyncio.run(worker._perform(job, work)) for job, work in walked_on]
    worker._finish_all(walked_on, answers)
    drain(worker)

    # Then the late answer is dropped, so the first message is held for review as any
    # interrupted send is, and the round holding the job records the next step sent, once
    assert second.id == first.id
    messages = [(m.id, m.idempotency_key, m.status) for m in rows(db, Message)]
    assert messages == [
        (1, "journey:1:0", MessageStatus.HELD),
        (2, "journey:1:1", MessageStatus.SENT),
    ]
    # One provider call per message, each carrying its message's reference
    sent = [email.idempotency_key for email in adapters[ChannelKind.EMAIL].sent]
    assert sent == ["parley-1-1", "parley-1-2"]
    [job] = rows(db, Job)
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.DONE, 2, f"{worker.name}/2")
