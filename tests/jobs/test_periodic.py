"""Periodic tasks: one job per tick however many workers reach it, run by one of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from parley.db import Database
from parley.jobs.models import Job, JobStatus
from parley.jobs.periodic import Schedule
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Worker, WorkerConfig
from support import rows

TEN_MINUTES = Schedule(kind="test.tick", every=timedelta(minutes=10))


class CountingTask:
    kind = "test.tick"

    def __init__(self) -> None:
        self.ticks: list[str] = []

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> str:
        return job.payload["tick"]

    async def perform(self, work: str) -> str:
        self.ticks.append(work)
        return work

    def finish_batch(self, session: Session, items: list[Any]) -> list[Outcome]:
        return [Done() for _ in items]


def _worker(db: Database, task: CountingTask, name: str) -> Worker:
    return Worker(db, [task], WorkerConfig(poll_seconds=0.01), name=name, schedules=[TEN_MINUTES])


def test_ticks_are_aligned_to_the_epoch_so_every_process_agrees_on_them():
    at = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)

    assert TEN_MINUTES.tick(at) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert TEN_MINUTES.next_tick(at) == datetime(2026, 3, 2, 10, 10, tzinfo=UTC)
    assert TEN_MINUTES.tick(datetime(2026, 3, 2, 10, 10, tzinfo=UTC)) == datetime(
        2026, 3, 2, 10, 10, tzinfo=UTC
    )
    assert TEN_MINUTES.key(TEN_MINUTES.tick(at)) == "periodic:test.tick:2026-03-02T10:00:00+00:00"


def test_a_schedule_shorter_than_a_second_is_refused():
    with pytest.raises(ValueError, match="at most once a second"):
        Schedule(kind="test.tick", every=timedelta(milliseconds=500))


def test_a_schedule_for_a_kind_no_task_runs_is_refused(db):
    with pytest.raises(ValueError, match="no task"):
        Worker(db, [], schedules=[TEN_MINUTES])


def test_two_workers_reaching_the_same_tick_run_it_once(db, frozen_clock):
    first, second = CountingTask(), CountingTask()
    workers = [_worker(db, first, "a"), _worker(db, second, "b")]

    async def both() -> None:
        for worker in workers:
            await worker.enqueue_due_ticks()
        await asyncio.gather(*(worker.run_until_idle() for worker in workers))

    asyncio.run(both())

    [job] = rows(db, Job)
    assert job.kind == "test.tick"
    assert job.status == JobStatus.DONE
    assert job.idempotency_key == "periodic:test.tick:2026-03-02T10:00:00+00:00"
    assert first.ticks + second.ticks == ["2026-03-02T10:00:00+00:00"]


def test_a_worker_enqueues_each_tick_once_and_the_next_tick_anew(db, frozen_clock):
    task = CountingTask()
    worker = _worker(db, task, "a")

    async def tick_and_drain() -> list[Schedule]:
        enqueued = await worker.enqueue_due_ticks()
        await worker.run_until_idle()
        return enqueued

    assert asyncio.run(tick_and_drain()) == [TEN_MINUTES]
    frozen_clock.advance(timedelta(minutes=9, seconds=59))
    assert asyncio.run(tick_and_drain()) == []
    frozen_clock.advance(timedelta(seconds=1))
    assert asyncio.run(tick_and_drain()) == [TEN_MINUTES]

    assert task.ticks == ["2026-03-02T10:00:00+00:00", "2026-03-02T10:10:00+00:00"]
    assert [job.status for job in rows(db, Job)] == [JobStatus.DONE, JobStatus.DONE]


def test_a_running_worker_enqueues_the_current_tick_and_runs_it(db, frozen_clock):
    task = CountingTask()
    worker = _worker(db, task, "a")

    async def run_until_ticked() -> None:
        running = asyncio.create_task(worker.run_forever())
        for _ in range(500):
            if task.ticks:
                break
            await asyncio.sleep(0.01)
        worker.stop()
        await asyncio.wait_for(running, timeout=5)

    asyncio.run(run_until_ticked())

    assert task.ticks == ["2026-03-02T10:00:00+00:00"]
    [job] = rows(db, Job)
    assert job.status == JobStatus.DONE
