"""The batch worker: prepare, perform, finish; what happens to a job at each kind of failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.db import Database
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import (
    Done,
    Fail,
    Later,
    Outcome,
    Retry,
    RetryLater,
    Worker,
    WorkerConfig,
)
from support import count, drain, rows


@dataclass
class RecordingTask:
    """Finishes every job in ``prepare`` and notes its id."""

    kind: str = "test.record"
    seen: list[int] = field(default_factory=list)
    pause: float = 0.0

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> None:
        if self.pause:
            time.sleep(self.pause)
        self.seen.append(job.id)

    async def perform(self, work: Any) -> Any:
        raise AssertionError("prepare finished the job")

    def finish_batch(self, session: Session, items: list[Any]) -> list[Outcome]:
        raise AssertionError("prepare finished the job")


@dataclass
class ScriptedTask:
    """Prepares a job's work, performs it (or raises), and ends it as ``outcome`` says.

    ``prepare_error`` / ``finish_error`` are raised on every try of a job's first attempt
    (for the ids in ``failing``, or for every job when it is None), as a real fault would
    be: the worker may prepare or finish a job twice within one round.
    """

    outcome: Outcome = field(default_factory=Done)
    prepare_error: Exception | None = None
    perform_error: Exception | None = None
    finish_error: Exception | None = None
    failing: set[int] | None = None
    kind: str = "test.scripted"
    performed: list[int] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> int:
        # A write that must be rolled back with this job's prepare if it fails.
        _side_effect(session, job, "prepare")
        if self.prepare_error is not None and self._fails(job):
            raise self.prepare_error
        return job.id

    async def perform(self, work: int) -> str:
        self.performed.append(work)
        if self.perform_error is not None:
            raise self.perform_error
        return f"performed {work}"

    def finish_batch(self, session: Session, items: list[Any]) -> list[Outcome]:
        return [self._finish(session, job, result) for job, _work, result in items]

    def _finish(self, session: Session, job: ClaimedJob, result: Any) -> Outcome:
        self.results.append(result)
        _side_effect(session, job, "finish")
        if self.finish_error is not None and self._fails(job):
            raise self.finish_error
        return self.outcome

    def _fails(self, job: ClaimedJob) -> bool:
        return job.attempts == 1 and (self.failing is None or job.id in self.failing)


def _side_effect(session: Session, job: ClaimedJob, phase: str) -> None:
    queue.enqueue(
        session,
        kind="test.side_effect",
        payload={"of": job.id},
        due_at=job.due_at + timedelta(days=365),
        idempotency_key=f"{phase}:{job.id}:{job.attempts}",
    )


def _worker(
    db: Database,
    *tasks: Any,
    name: str = "w1",
    batch_size: int = 50,
    prepare_chunk: int | None = None,
    give_way: Any = None,
) -> Worker:
    return Worker(
        db,
        list(tasks),
        WorkerConfig(batch_size=batch_size, backoff_base_seconds=5.0, prepare_chunk=prepare_chunk),
        name=name,
        give_way=give_way,
    )


def _enqueue(db: Database, kind: str, n: int = 1) -> list[int]:
    with db.transaction() as session:
        queue.enqueue_many(session, [{"kind": kind, "payload": {"n": i}} for i in range(n)])
    return [job.id for job in rows(db, Job, Job.kind == kind)]


def _only(db: Database, kind: str) -> Job:
    [job] = rows(db, Job, Job.kind == kind)
    return job


def _only_error(db: Database, job_id: int) -> str | None:
    [job] = rows(db, Job, Job.id == job_id)
    return job.last_error


def _side_effects(db: Database) -> list[str | None]:
    return [job.idempotency_key for job in rows(db, Job, Job.kind == "test.side_effect")]


def test_job_whose_prepare_raises_is_retried_with_the_error_kept(db, frozen_clock):
    task = ScriptedTask(prepare_error=ValueError("stock service unreachable"))
    [job_id] = _enqueue(db, task.kind)

    assert drain(_worker(db, task)) == 1

    job = _only(db, task.kind)
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.PENDING, 1, None)
    assert job.last_error == "ValueError: stock service unreachable"
    assert timedelta(seconds=2.5) <= job.due_at - frozen_clock.now <= timedelta(seconds=5)
    assert _side_effects(db) == []  # the failed prepare's writes were rolled back
    assert task.performed == []

    frozen_clock.advance(timedelta(seconds=5))
    assert drain(_worker(db, task)) == 1

    job = _only(db, task.kind)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.DONE, 2, None)
    assert task.performed == [job_id]
    assert _side_effects(db) == [f"prepare:{job_id}:2", f"finish:{job_id}:2"]


def test_job_of_an_unknown_kind_fails_with_a_clear_reason(db, frozen_clock):
    known = RecordingTask()
    _enqueue(db, "nobody.handles")

    drain(_worker(db, known))
    frozen_clock.advance(timedelta(days=1))
    drain(_worker(db, known))

    job = _only(db, "nobody.handles")
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.FAILED, 1, "w1/1")
    assert job.last_error == "no task for 'nobody.handles'"
    assert known.seen == []


def test_fail_outcome_fails_the_job_for_good(db, frozen_clock):
    task = ScriptedTask(outcome=Fail("address rejected by the provider"))
    [job_id] = _enqueue(db, task.kind)

    drain(_worker(db, task))
    frozen_clock.advance(timedelta(days=1))
    drain(_worker(db, task))

    job = _only(db, task.kind)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error == "address rejected by the provider"
    assert task.performed == [job_id]
    assert _side_effects(db) == [f"prepare:{job_id}:1", f"finish:{job_id}:1"]


def test_retry_outcome_waits_at_least_the_providers_retry_after(db, frozen_clock):
    task = ScriptedTask(outcome=Retry("429 too many requests", retry_after=120.0))
    _enqueue(db, task.kind)

    drain(_worker(db, task))

    job = _only(db, task.kind)
    assert (job.status, job.attempts, job.last_error) == (
        JobStatus.PENDING,
        1,
        "429 too many requests",
    )
    assert job.due_at == frozen_clock.now + timedelta(seconds=120)


def test_an_absurd_retry_after_waits_the_cap_and_spares_the_rest_of_the_batch(db, frozen_clock):
    """Given a provider answering one job with Retry-After 1e12 seconds, when its batch is
    finished, then that job waits the backoff cap and the batch's other job is done."""
    throttled = ScriptedTask(outcome=Retry("429 slow down", retry_after=1e12), kind="test.slow")
    fine = ScriptedTask()
    [throttled_id] = _enqueue(db, throttled.kind)
    [fine_id] = _enqueue(db, fine.kind)

    drain(_worker(db, throttled, fine))

    job = _only(db, throttled.kind)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.PENDING, 1, "429 slow down")
    assert job.due_at == frozen_clock.now + timedelta(seconds=3600)
    assert _only(db, fine.kind).status == JobStatus.DONE
    assert sorted(_side_effects(db)) == sorted(
        f"{phase}:{job_id}:1"
        for phase in ("prepare", "finish")
        for job_id in (throttled_id, fine_id)
    )


def test_perform_error_is_handed_to_finish_to_classify(db, frozen_clock):
    refused = ConnectionResetError("peer reset")
    task = ScriptedTask(perform_error=refused, outcome=Fail("classified by finish"))
    _enqueue(db, task.kind)

    drain(_worker(db, task))

    assert task.results == [refused]
    job = _only(db, task.kind)
    assert (job.status, job.last_error) == (JobStatus.FAILED, "classified by finish")


def test_finish_that_raises_is_retried_and_its_writes_rolled_back(db, frozen_clock):
    task = ScriptedTask(finish_error=KeyError("provider_message_id"))
    [job_id] = _enqueue(db, task.kind)

    drain(_worker(db, task))

    job = _only(db, task.kind)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert job.last_error == "KeyError: 'provider_message_id'"
    assert _side_effects(db) == [f"prepare:{job_id}:1"]


def test_prepare_failure_of_one_job_does_not_undo_the_others_in_its_batch(db, frozen_clock):
    task = ScriptedTask(prepare_error=ValueError("only the first"))
    first, second = _enqueue(db, task.kind, n=2)
    task.failing = {first}

    drain(_worker(db, task))

    statuses = {job.id: (job.status, job.attempts) for job in rows(db, Job, Job.kind == task.kind)}
    assert statuses == {first: (JobStatus.PENDING, 1), second: (JobStatus.DONE, 1)}
    assert task.performed == [second]
    assert _side_effects(db) == [f"prepare:{second}:1", f"finish:{second}:1"]


@dataclass
class BatchRecordingTask(ScriptedTask):
    """Prepares a plan per job and records the plans in ``record_batch``, with a write
    that must be rolled back if the batch is redone; ``record_error`` fails the batch's
    recording for the job ids in ``failing``."""

    kind: str = "test.recorded"
    record_error: Exception | None = None
    recorded_batches: list[list[int]] = field(default_factory=list)
    later: dict[int, datetime] = field(default_factory=dict)
    """Job ids told to wait until a time instead of being recorded."""

    def record_batch(self, session: Session, items: list[tuple[ClaimedJob, Any]]) -> list[Any]:
        self.recorded_batches.append([job.id for job, _ in items])
        for job, _ in items:
            if self.record_error is not None and self._fails(job):
                raise self.record_error
            _side_effect(session, job, "record")
        return [
            Later(self.later[job.id], "no room", "room")
            if job.id in self.later
            else f"recorded {work}"
            for job, work in items
        ]


def test_a_batch_is_recorded_in_one_call_after_every_job_is_prepared(db, frozen_clock):
    task = BatchRecordingTask()
    jobs = _enqueue(db, task.kind, n=3)

    drain(_worker(db, task))

    assert task.recorded_batches == [jobs]
    assert task.performed == [f"recorded {job_id}" for job_id in jobs]
    assert {job.status for job in rows(db, Job, Job.kind == task.kind)} == {JobStatus.DONE}


def test_a_recording_that_fails_is_redone_job_by_job_and_fails_that_job_alone(db, frozen_clock):
    task = BatchRecordingTask(record_error=RetryLater("raced", retry_after=30))
    first, second, third = _enqueue(db, task.kind, n=3)
    task.failing = {second}

    drain(_worker(db, task))

    assert task.recorded_batches == [[first, second, third], [first], [second], [third]]
    statuses = {job.id: (job.status, job.attempts) for job in rows(db, Job, Job.kind == task.kind)}
    assert statuses == {
        first: (JobStatus.DONE, 1),
        second: (JobStatus.PENDING, 1),
        third: (JobStatus.DONE, 1),
    }
    assert _only_error(db, second) == "raced"
    assert task.performed == [f"recorded {first}", f"recorded {third}"]
    # The failed batch's writes, and the failed job's own, were rolled back.
    assert sorted(_side_effects(db)) == sorted(
        f"{phase}:{job_id}:1"
        for job_id in (first, third)
        for phase in ("prepare", "record", "finish")
    )


@pytest.mark.parametrize("isolated", [False, True], ids=["batch", "job_by_job"])
def test_a_job_told_to_wait_goes_back_due_then_with_its_attempt_given_back(
    db, frozen_clock, isolated, caplog
):
    task = BatchRecordingTask(record_error=RetryLater("raced") if isolated else None)
    first, second, third = _enqueue(db, task.kind, n=3)
    task.failing = {third}
    later = utc_now() + timedelta(seconds=2)
    task.later = {second: later}

    with caplog.at_level(logging.DEBUG, logger="parley.jobs.worker"):
        drain(_worker(db, task))

    assert f"job {second} (test.recorded) waits until {later}: no room" in caplog.text

    waiting = _only_by_id(db, second)
    assert (waiting.status, waiting.due_at, waiting.attempts) == (JobStatus.PENDING, later, 0)
    assert (waiting.locked_by, waiting.last_error, waiting.waiting_for) == (None, None, "room")
    # Redone job by job when the third's recording fails: the wait survives that too.
    assert task.performed == [f"recorded {first}"] + ([] if isolated else [f"recorded {third}"])
    assert _only_by_id(db, first).status == JobStatus.DONE

    task.later, task.record_error = {}, None
    frozen_clock.advance(timedelta(seconds=2))
    drain(_worker(db, task))
    assert task.performed[-1] == f"recorded {second}"
    assert (_only_by_id(db, second).status, _only_by_id(db, second).attempts) == (
        JobStatus.DONE,
        1,
    )
    assert _only_by_id(db, second).waiting_for is None


def _only_by_id(db: Database, job_id: int) -> Job:
    [job] = rows(db, Job, Job.id == job_id)
    return job


@dataclass
class ChunkedTask(BatchRecordingTask):
    """A recording task that notes each bulk read."""

    kind: str = "test.chunked"
    preloaded: list[list[int]] = field(default_factory=list)

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        self.preloaded.append([job.id for job in jobs])


def test_a_batch_prepared_in_chunks_is_read_once_and_committed_chunk_by_chunk(db, frozen_clock):
    task = ChunkedTask()
    jobs = _enqueue(db, task.kind, n=5)
    chunks_at_commit: list[int] = []
    watch = lambda _session: chunks_at_commit.append(len(task.recorded_batches))  # noqa: E731
    event.listen(db.sessions, "after_commit", watch)
    try:
        drain(_worker(db, task, prepare_chunk=2))
    finally:
        event.remove(db.sessions, "after_commit", watch)

    assert task.preloaded == [jobs]
    assert task.recorded_batches == [jobs[0:2], jobs[2:4], jobs[4:5]]
    assert sorted(set(chunks_at_commit)) == [0, 1, 2, 3]
    assert task.performed == [f"recorded {job_id}" for job_id in jobs]
    assert {job.status for job in rows(db, Job, Job.kind == task.kind)} == {JobStatus.DONE}


def test_a_chunk_that_fails_is_redone_job_by_job_and_the_rest_read_again(db, frozen_clock):
    task = ChunkedTask(record_error=RetryLater("raced", retry_after=30))
    jobs = _enqueue(db, task.kind, n=5)
    task.failing = {jobs[2]}

    drain(_worker(db, task, prepare_chunk=2))

    assert task.preloaded == [jobs, jobs[2:4], jobs[4:5]]
    assert task.recorded_batches == [jobs[0:2], jobs[2:4], [jobs[2]], [jobs[3]], jobs[4:5]]
    statuses = {job.id: job.status for job in rows(db, Job, Job.kind == task.kind)}
    assert statuses == {
        job_id: JobStatus.PENDING if job_id == jobs[2] else JobStatus.DONE for job_id in jobs
    }
    assert _only_error(db, jobs[2]) == "raced"
    # The failed chunk's writes were rolled back; the failing job wrote nothing.
    assert sorted(_side_effects(db)) == sorted(
        f"{phase}:{job_id}:1"
        for job_id in jobs
        if job_id != jobs[2]
        for phase in ("prepare", "record", "finish")
    )


def test_a_worker_gives_way_before_each_chunk_it_prepares(db, frozen_clock):
    task = RecordingTask()
    _enqueue(db, task.kind, n=5)
    prepared_when_giving_way: list[int] = []

    async def give_way() -> None:
        prepared_when_giving_way.append(len(task.seen))

    worker = _worker(db, task, prepare_chunk=2, give_way=give_way)
    assert asyncio.run(worker.run_once()) == 5

    # Before the claim, before the bulk read, then before each chunk of two.
    assert prepared_when_giving_way == [0, 0, 0, 2, 4]
    assert {job.status for job in rows(db, Job, Job.kind == task.kind)} == {JobStatus.DONE}


def test_finish_failure_of_one_job_does_not_undo_the_others_in_its_batch(db, frozen_clock):
    task = ScriptedTask(finish_error=KeyError("provider_message_id"))
    first, second, third = _enqueue(db, task.kind, n=3)
    task.failing = {second}

    drain(_worker(db, task))

    statuses = {job.id: (job.status, job.attempts) for job in rows(db, Job, Job.kind == task.kind)}
    assert statuses == {
        first: (JobStatus.DONE, 1),
        second: (JobStatus.PENDING, 1),
        third: (JobStatus.DONE, 1),
    }
    assert _only_error(db, second) == "KeyError: 'provider_message_id'"
    assert task.performed == [first, second, third]
    assert sorted(_side_effects(db)) == sorted(
        [f"prepare:{n}:1" for n in (first, second, third)]
        + [f"finish:{first}:1", f"finish:{third}:1"]
    )


def test_two_workers_draining_one_queue_run_every_job_exactly_once(db, frozen_clock):
    ids = _enqueue(db, "test.record", n=120)
    tasks = [RecordingTask(pause=0.001), RecordingTask(pause=0.001)]
    workers = [_worker(db, task, name=f"w{n}", batch_size=10) for n, task in enumerate(tasks)]

    async def drain_together() -> list[int]:
        return list(await asyncio.gather(*(worker.run_until_idle() for worker in workers)))

    handled = asyncio.run(drain_together())

    seen = tasks[0].seen + tasks[1].seen
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 120
    assert sum(handled) == 120
    assert all(len(task.seen) > 0 for task in tasks)  # both really took part
    assert count(db, Job, Job.status == JobStatus.DONE, Job.attempts == 1) == 120
    holder = {job_id: f"w{n}" for n, task in enumerate(tasks) for job_id in task.seen}
    # Each claim holds its jobs as "<worker>/<claim number>".
    assert {job.id: job.locked_by.split("/")[0] for job in rows(db, Job)} == holder


@dataclass
class MeetingTask:
    """Each perform waits, up to a second, until ``meet`` performs are in flight together."""

    meet: int
    kind: str = "test.meeting"
    in_flight: int = 0
    most_in_flight: int = 0
    finished: list[int] = field(default_factory=list)
    met: asyncio.Event = field(default_factory=asyncio.Event)

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> int:
        return job.id

    async def perform(self, work: int) -> int:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.most_in_flight >= self.meet:
            self.met.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.met.wait(), timeout=1.0)
        self.in_flight -= 1
        return work

    def finish_batch(self, session: Session, items: list[Any]) -> list[Outcome]:
        self.finished.extend(job.id for job, _work, _result in items)
        return [Done() for _ in items]


def _rounds_worker(db: Database, task: Any, *, rounds: int) -> Worker:
    config = WorkerConfig(batch_size=1, backoff_base_seconds=5.0, rounds_in_flight=rounds)
    return Worker(db, [task], config, name="w1")


def test_two_rounds_in_flight_send_two_batches_at_once(db, frozen_clock):
    ids = _enqueue(db, "test.meeting", n=2)
    task = MeetingTask(meet=2)

    assert drain(_rounds_worker(db, task, rounds=2)) == 2

    assert task.most_in_flight == 2
    assert sorted(task.finished) == sorted(ids)
    assert count(db, Job, Job.status == JobStatus.DONE, Job.attempts == 1) == 2


def test_one_round_in_flight_sends_one_batch_at_a_time(db, frozen_clock):
    _enqueue(db, "test.meeting", n=2)
    task = MeetingTask(meet=2)

    assert drain(_rounds_worker(db, task, rounds=1)) == 2

    assert task.most_in_flight == 1


@dataclass
class ChainTask(ScriptedTask):
    """Each job's finish enqueues the next link, due at once, until ``links`` exist."""

    links: int = 5
    kind: str = "test.chain"

    def _finish(self, session: Session, job: ClaimedJob, result: Any) -> Outcome:
        link = int(job.payload["link"])
        if link + 1 < self.links:
            queue.enqueue(
                session,
                kind=self.kind,
                payload={"chain": job.payload["chain"], "link": link + 1},
                due_at=job.due_at,
            )
        return Done()


def test_two_rounds_drain_the_jobs_their_own_finishes_make_due(db, frozen_clock):
    with db.transaction() as session:
        queue.enqueue_many(
            session, [{"kind": "test.chain", "payload": {"chain": c, "link": 0}} for c in "ab"]
        )
    task = ChainTask(links=5)

    assert drain(_rounds_worker(db, task, rounds=2)) == 10

    done = rows(db, Job, Job.kind == "test.chain", Job.status == JobStatus.DONE)
    assert sorted((job.payload["chain"], job.payload["link"]) for job in done) == [
        (chain, link) for chain in "ab" for link in range(5)
    ]
    assert count(db, Job, Job.kind == "test.chain", Job.status != JobStatus.DONE) == 0
