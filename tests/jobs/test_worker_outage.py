"""A worker through a database outage: after each failure in a row it pauses twice as
long, up to a cap, and logs one line (the traceback only for a new failure); it works
again as soon as the database does, and a stop does not wait out a pause."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from parley.db import Database
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.periodic import Schedule
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Worker, WorkerConfig
from support import rows

KIND = "test.outage"
WENT_AWAY = "OperationalError: (builtins.ConnectionRefusedError) the database went away"


class FinishingTask:
    """Finishes every job in ``prepare``, noting its id."""

    kind = KIND

    def __init__(self) -> None:
        self.seen: list[int] = []

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> None:
        self.seen.append(job.id)

    async def perform(self, work: Any) -> Any:
        raise AssertionError("prepare finished the job")

    def finish_batch(self, session: Session, items: list[Any]) -> list[Any]:
        raise AssertionError("prepare finished the job")


class Outage:
    """Every statement on the database fails while ``down``, as when its server is gone."""

    def __init__(self, db: Database) -> None:
        self.down = True
        event.listen(db.engine, "before_cursor_execute", self._refuse)

    def _refuse(self, *_args: Any) -> None:
        if self.down:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database went away"))


async def _until(condition: Callable[[], object], *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


def _logged(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(prefix)]


def _first(what: str, pause: float) -> tuple[str, bool]:
    """A new failure: logged with its traceback."""
    return f"{what} failed: {WENT_AWAY}; trying again in {pause:g} s", True


def _again(what: str, failures: int, pause: float) -> tuple[str, bool]:
    """The same failure again: one line."""
    return (
        f"{what} failed again ({failures} in a row): {WENT_AWAY}; trying again in {pause:g} s",
        False,
    )


def test_failed_rounds_pause_twice_as_long_each_time_up_to_the_cap_then_work_again(db, caplog):
    caplog.set_level(logging.WARNING, logger="parley.jobs.worker")
    task = FinishingTask()
    worker = Worker(db, [task], WorkerConfig(poll_seconds=0.01, outage_pause_cap_seconds=0.04))
    outage = Outage(db)

    async def through_two_outages() -> None:
        running = asyncio.create_task(worker.run_forever())
        await _until(lambda: len(_logged(caplog, "worker round")) == 5)
        # The round is pausing now: the database comes back before it tries again.
        outage.down = False
        with db.transaction() as session:
            queue.enqueue(session, kind=KIND, payload={})
        await _until(lambda: _logged(caplog, "worker round works again"))
        outage.down = True
        await _until(lambda: len(_logged(caplog, "worker round")) == 7)
        worker.stop()
        await asyncio.wait_for(running, timeout=5)
        outage.down = False

    asyncio.run(through_two_outages())

    records = _logged(caplog, "worker round")
    assert [(r.levelname, r.getMessage(), r.exc_info is not None) for r in records] == [
        ("ERROR", *_first("worker round", 0.01)),
        ("ERROR", *_again("worker round", 2, 0.02)),
        ("ERROR", *_again("worker round", 3, 0.04)),
        ("ERROR", *_again("worker round", 4, 0.04)),
        ("ERROR", *_again("worker round", 5, 0.04)),
        ("WARNING", "worker round works again after 5 failures in a row", False),
        ("ERROR", *_first("worker round", 0.01)),
    ]
    assert records[5].created - records[0].created >= 0.01 + 0.02 + 0.04 * 3
    [job] = rows(db, Job)
    assert (job.id, job.status) == (task.seen[0], JobStatus.DONE)
    assert task.seen == [job.id]


def test_failed_enqueues_of_ticks_pause_twice_as_long_each_time_up_to_the_cap(db, caplog):
    caplog.set_level(logging.WARNING, logger="parley.jobs.worker")
    schedule = Schedule(kind=KIND, every=timedelta(minutes=10))
    worker = Worker(
        db,
        [FinishingTask()],
        WorkerConfig(poll_seconds=0.004, outage_pause_cap_seconds=0.4),
        schedules=[schedule],
    )
    Outage(db)

    async def through_an_outage() -> None:
        running = asyncio.create_task(worker.run_forever())
        await _until(lambda: len(_logged(caplog, "enqueueing periodic ticks")) == 4)
        worker.stop()
        await asyncio.wait_for(running, timeout=5)

    asyncio.run(through_an_outage())

    records = _logged(caplog, "enqueueing periodic ticks")
    assert [(r.getMessage(), r.exc_info is not None) for r in records] == [
        _first("enqueueing periodic ticks", 0.1),
        _again("enqueueing periodic ticks", 2, 0.2),
        _again("enqueueing periodic ticks", 3, 0.4),
        _again("enqueueing periodic ticks", 4, 0.4),
    ]


def test_a_stop_does_not_wait_out_the_pause_after_a_failed_round(db):
    worker = Worker(db, [FinishingTask()], WorkerConfig(poll_seconds=30))
    Outage(db)

    async def stopped_while_pausing() -> float:
        running = asyncio.create_task(worker.run_forever())
        await _until(lambda: worker._round_outage.failures == 1)
        started = time.monotonic()
        worker.stop()
        await asyncio.wait_for(running, timeout=5)
        return time.monotonic() - started

    assert asyncio.run(stopped_while_pausing()) < 1
