"""The worker: claim a batch, prepare it, do the I/O, settle it in one transaction.

A task works in three phases so that nothing leaves the process inside a transaction and
a batch costs a few commits however many jobs it holds:

1. ``preload(session, jobs)`` reads what the whole batch needs in bulk; then
   ``prepare(session, job, batch)`` runs for each job inside the batch's first
   transaction, or, with ``prepare_chunk``, in one transaction per chunk of jobs after
   the bulk read's own (on SQLite, where a transaction holds the one writer). It returns
   ``None`` when the job is finished, :class:`Later` when it must wait (its attempt given
   back), or the work to do outside. A task that writes a
   row per job before its call (a message ``sending``) may let ``prepare`` plan it and
   write the whole batch's rows at once in ``record_batch(session, items)``
   (:class:`RecordsInBatch`), after every job is prepared; when jobs are prepared one by
   one, each is recorded in its own savepoint.
2. ``perform(work)`` runs with no transaction open (a provider call, with a timeout).
3. ``finish_batch(session, items)`` records every ``(job, work, result)`` of the batch in
   the batch's last transaction and says how each job ends (:class:`Done`, :class:`Retry`,
   :class:`Fail`). Finishing is a batch operation because it is a few keyed updates per
   job: sent as ``executemany`` they cost one round trip each, not one per job. If the
   batch fails, each item is retried alone in its own savepoint.

If the process dies between 2 and 3, the job's lease runs out, another worker claims it,
and ``prepare`` finds the evidence (a message left ``sending``) and reconciles it. While
the process lives, a round renews its lease as its jobs' work goes on (:class:`_Lease`),
and does not do the work of a job another claim took back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.db import Database
from parley.jobs import claims, queue
from parley.jobs.periodic import Schedule, enqueue_ticks
from parley.jobs.queue import ClaimedJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Done:
    """The job is finished."""


@dataclass(frozen=True)
class Retry:
    """Try again later; ``retry_after`` (seconds) is a floor on the backoff."""

    reason: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Fail:
    """Retrying cannot help."""

    reason: str


@dataclass(frozen=True)
class Later:
    """Not now, and not a failure: the job waits until ``until`` and its attempt is given
    back. Returned from ``prepare`` or ``record_batch`` for a job whose send must wait
    (its sender has no room yet, :mod:`parley.messaging.pace`; the store paused its
    marketing); nothing is performed for it."""

    until: datetime
    reason: str
    cause: str | None = None
    """What it waits for, a short name kept on the job (``jobs.waiting_for``) until it
    runs: what the store is shown, and how a change of what it waits for finds it."""


Outcome = Done | Retry | Fail


class RetryLater(Exception):
    """Raised from ``prepare`` when a job cannot run yet but should not fail."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


SETTLED_ONLY = (
    f"{claims.LOST_LEASE}; its attempts were spent, so it was taken back only to settle"
    " what it left, not to run again"
)


def _spent(job: ClaimedJob) -> bool:
    """Whether the job was claimed past its attempts: its worker lost the lease on the last
    one. Its ``prepare`` still runs, which settles what the lost attempt left (a send left
    ``sending`` is held for review); whatever it would do next is not done, and the job
    goes to the dead letter (where a re-drive gives it fresh attempts)."""
    return job.attempts > job.max_attempts


class _RedoIsolated(Exception):
    """An optimistic batch hit an error: roll back and prepare job by job."""


class Task(Protocol):
    """One kind of job. ``kind`` is a stable, stored string (``"journeys.advance"``)."""

    kind: str

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> Any: ...

    def prepare(self, session: Session, job: ClaimedJob, batch: Any) -> Any: ...

    async def perform(self, work: Any) -> Any: ...

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]: ...


@runtime_checkable
class RecordsInBatch(Protocol):
    """A task whose prepared jobs are recorded together before anything is performed."""

    def record_batch(self, session: Session, items: list[tuple[ClaimedJob, Any]]) -> list[Any]:
        """The work to perform for each ``(job, prepared)``, in order; raise (for instance
        :class:`RetryLater`) to have the jobs prepared and recorded one by one."""
        ...


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 200
    concurrency: int = 64
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 0.2
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 3600.0
    max_attempts: int | None = None
    """The deployment's retry budget (``PARLEY_JOB_MAX_ATTEMPTS``); when set it decides,
    otherwise each job's own ``max_attempts`` does."""
    rounds_in_flight: int = 1
    """Rounds one worker runs at once, each claiming its own batch. A round waits on the
    database in every phase and on the providers while it sends; with two, one round's
    database work overlaps the other's waiting (measured: +15-20 % msgs/s through the
    sandbox on both engines, +19 % with a no-op provider on PostgreSQL)."""
    quiet_batch_size: int | None = None
    """Jobs claimed per round instead of ``batch_size`` while the worker's ``quiet``
    callable says no delivery has arrived for a while (``parley serve``'s worker)."""
    prepare_chunk: int | None = None
    """Jobs prepared to a transaction, or None for the whole batch in one. A batch's reads
    cost the same few statements whatever its size, so a large batch is cheaper a job; but
    on SQLite every transaction holds the one writer. Preparing in chunks keeps the large
    batch's one bulk read while each transaction holds the writer only for a chunk, and
    between chunks a webhook (and ``give_way``) goes first."""
    outage_pause_cap_seconds: float = 30.0
    """The longest pause after a failed round or enqueue of ticks: each failure in a row
    pauses twice as long as the one before, up to this (:class:`_Outage`)."""


MIN_TICK_PAUSE = 0.05
MAX_TICK_PAUSE = 60.0
"""The schedule looks again at least this often, so a clock moved by NTP is followed
within a minute; after a failed enqueue it looks again after 25 polls (5 s), then twice
as long after each failure in a row."""


class _Outage:
    """Failures in a row of one of the worker's loops, and how long to pause after each.

    A database that is down, or not migrated, fails every round. Pausing a poll each time
    and logging each traceback, two rounds in flight wrote ten tracebacks a second for as
    long as it lasted. Each failure in a row pauses twice as long as the one before, up to
    a cap, and logs one line; the traceback only when the failure differs from the last.
    """

    def __init__(self, what: str, *, first_pause: float, cap: float) -> None:
        self.what = what
        self.failures = 0
        self._first_pause = min(first_pause, cap)
        self._cap = cap
        self._pause = self._first_pause
        self._last: str | None = None

    def failed(self, exc: Exception) -> float:
        """Log ``exc`` and return the seconds to pause before trying again."""
        self.failures += 1
        if self.failures > 1:
            self._pause = min(self._pause * 2, self._cap)
        lines = str(exc).splitlines()
        said = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        if said == self._last:
            log.error(
                "%s failed again (%s in a row): %s; trying again in %g s",
                self.what,
                self.failures,
                said,
                self._pause,
            )
        else:
            log.error(
                "%s failed: %s; trying again in %g s", self.what, said, self._pause, exc_info=exc
            )
            self._last = said
        return self._pause

    def recovered(self) -> None:
        if self.failures:
            log.warning("%s works again after %s failures in a row", self.what, self.failures)
        self.failures = 0
        self._pause = self._first_pause
        self._last = None


_NOT_PERFORMED = object()
"""What a job's perform gives back when its claim lost it first: nothing to record."""


class _Lease:
    """One round's claim while its jobs' work is done, renewed once half of it has gone.

    The round's jobs share the lease their claim took, but their work goes out in waves
    (``concurrency`` at a time, shared by every round in flight): with a provider slow to
    answer, the last waves would start after the lease ran out, while another worker takes
    the jobs back and does them too. So before each job's work starts, a lease that is
    half gone is renewed for every job of the round; a job another claim took back first
    is not done again (that claim reconciles what this one left). A renewal that fails
    leaves the rest of the round's work undone, to the lease: whether the jobs are still
    held cannot be told.
    """

    def __init__(
        self, db: Database, jobs: list[ClaimedJob], *, length: timedelta, until: datetime
    ) -> None:
        self._db = db
        self._jobs = jobs
        self._length = length
        self._until = until
        self._held = {job.id for job in jobs}
        self._renewing = asyncio.Lock()

    async def holds(self, job: ClaimedJob) -> bool:
        """Whether the claim still holds ``job``, with at least half a lease to run."""
        async with self._renewing:
            now = utc_now()
            if self._held and now >= self._until - self._length / 2:
                self._held = await asyncio.to_thread(self._renew, now + self._length)
                self._until = now + self._length
        return job.id in self._held

    def _renew(self, until: datetime) -> set[int]:
        held = [job for job in self._jobs if job.id in self._held]
        try:
            with self._db.transaction() as session:
                return queue.renew(session, held, until=until)
        except Exception:
            log.exception("renewing the lease of %s jobs failed; their work is not done", len(held))
            return set()


class Worker:
    """Runs registered tasks from the shared job table; any number may run at once."""

    def __init__(
        self,
        db: Database,
        tasks: list[Task],
        config: WorkerConfig | None = None,
        *,
        name: str | None = None,
        give_way: Callable[[], Awaitable[None]] | None = None,
        quiet: Callable[[], bool] | None = None,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        """``give_way``, when given, is awaited before each database phase and each send:
        ``parley serve`` passes its :class:`~parley.http.intake.Intake` so webhooks come
        first. ``quiet``, when it returns True, lets a round claim ``quiet_batch_size``.
        ``schedules``: periodic tasks whose ticks :meth:`run_forever` enqueues
        (:mod:`parley.jobs.periodic`); each must be one of ``tasks``."""
        self.db = db
        self.tasks = {task.kind: task for task in tasks}
        unknown = [schedule.kind for schedule in schedules if schedule.kind not in self.tasks]
        if unknown:
            raise ValueError(f"schedules for kinds with no task: {unknown}")
        self.schedules = tuple(schedules)
        self._ticks_enqueued: dict[str, datetime] = {}
        self.config = config or WorkerConfig()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # Each claim holds its jobs under a name of its own: with rounds in flight, a round
        # whose lease ran out must not settle a job that another round took back.
        self._claim_numbers = itertools.count(1)
        self._stopping = asyncio.Event()
        self._nudged = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self.config.concurrency)
        self._rotation = claims.Rotation()
        self._give_way = give_way
        self._quiet = quiet
        cap = self.config.outage_pause_cap_seconds
        # One for all rounds in flight: a database outage fails them all.
        self._round_outage = _Outage("worker round", first_pause=self.config.poll_seconds, cap=cap)
        self._tick_outage = _Outage(
            "enqueueing periodic ticks", first_pause=self.config.poll_seconds * 25, cap=cap
        )

    async def run_forever(self) -> None:
        """Work until :meth:`stop`; sleep only when nothing is due."""
        await asyncio.gather(
            self._schedule_forever(),
            *(self._rounds() for _ in range(self.config.rounds_in_flight)),
        )

    async def _schedule_forever(self) -> None:
        """Enqueue the periodic tasks' ticks as they come, until :meth:`stop`."""
        while self.schedules and not self._stopping.is_set():
            now = utc_now()
            wake = min(schedule.next_tick(now) for schedule in self.schedules)
            pause = min(max((wake - now).total_seconds(), MIN_TICK_PAUSE), MAX_TICK_PAUSE)
            try:
                await self.enqueue_due_ticks()
            except Exception as exc:  # noqa: BLE001 - logged, and tried again after a pause
                pause = min(pause, self._tick_outage.failed(exc))
            else:
                self._tick_outage.recovered()
            await self._pause(pause)

    async def enqueue_due_ticks(self) -> list[Schedule]:
        """Enqueue the current tick of each schedule, once per tick in this process; the
        schedules written for (another process may have enqueued the same ticks first)."""
        now = utc_now()
        due = [s for s in self.schedules if self._ticks_enqueued.get(s.kind) != s.tick(now)]
        if not due:
            return []
        await self._wait_turn()
        await asyncio.to_thread(self._enqueue_ticks, due, now)
        for schedule in due:
            self._ticks_enqueued[schedule.kind] = schedule.tick(now)
        self._nudged.set()
        return due

    def _enqueue_ticks(self, schedules: list[Schedule], now: datetime) -> None:
        with self.db.transaction() as session:
            enqueue_ticks(session, schedules, now=now)

    async def _rounds(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - logged, and tried again after a pause
                await self._pause(self._round_outage.failed(exc))
                continue
            self._round_outage.recovered()
            if handled == 0:
                await self._idle()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _idle(self) -> None:
        """Wait one poll interval, or less if stopped or nudged."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self._stopping, self._nudged)]
        try:
            await asyncio.wait(
                waits, timeout=self.config.poll_seconds, return_when="FIRST_COMPLETED"
            )
        finally:
            for wait in waits:
                wait.cancel()
        self._nudged.clear()

    def stop(self) -> None:
        """Claim nothing more; the rounds in flight finish and record their answers."""
        self._stopping.set()

    def nudge(self) -> None:
        """Work was just committed in this process (a customer wrote): look now, not at the
        next poll. Call from the worker's event loop."""
        self._nudged.set()

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Run rounds until no job is due now, or until :meth:`stop` (tests and ``parley
        worker --drain``)."""
        drained = await asyncio.gather(
            *(self._drain(max_rounds) for _ in range(self.config.rounds_in_flight))
        )
        return sum(drained)

    async def _drain(self, max_rounds: int) -> int:
        # Each line of rounds stops at its own empty claim, which comes after its last
        # finish: a job that finish made due is claimed by the line that made it.
        total = 0
        for _ in range(max_rounds):
            if self._stopping.is_set():
                return total
            handled = await self.run_once()
            if handled == 0:
                return total
            total += handled
        raise RuntimeError("queue did not drain")

    async def run_once(self) -> int:
        """Claim one batch and see every job in it to an outcome; return how many."""
        await self._wait_turn()
        claimed_at = utc_now()
        jobs = await asyncio.to_thread(self._claim, self._claim_size(), now=claimed_at)
        if not jobs:
            return 0
        prepared = await self._prepare_batch(jobs)
        pending = [(job, work) for job, work in prepared if work is not None]
        lease = _Lease(
            self.db,
            [job for job, _ in pending],
            length=self.config.lease,
            until=claimed_at + self.config.lease,
        )
        results = await asyncio.gather(*(self._perform(job, work, lease) for job, work in pending))
        performed = [
            (item, result)
            for item, result in zip(pending, results, strict=True)
            if result is not _NOT_PERFORMED
        ]
        if performed:
            await self._wait_turn()
            await asyncio.to_thread(
                self._finish_all, [item for item, _ in performed], [r for _, r in performed]
            )
        return len(jobs)

    async def _wait_turn(self) -> None:
        if self._give_way is not None:
            await self._give_way()

    def _claim_size(self) -> int:
        """Called on the event loop, where the intake's counts live."""
        quiet_size = self.config.quiet_batch_size
        if quiet_size is not None and self._quiet is not None and self._quiet():
            return quiet_size
        return self.config.batch_size

    def _claim(self, limit: int | None = None, *, now: datetime | None = None) -> list[ClaimedJob]:
        with self.db.transaction() as session:
            jobs = claims.claim(
                session,
                worker=f"{self.name}/{next(self._claim_numbers)}",
                limit=limit or self.config.batch_size,
                lease=self.config.lease,
                now=now,
                rotation=self._rotation,
                max_attempts=self.config.max_attempts,
            )
        budget = self.config.max_attempts
        if budget is None:
            return jobs
        return [replace(job, max_attempts=budget) for job in jobs]

    async def _prepare_batch(self, jobs: list[ClaimedJob]) -> list[tuple[ClaimedJob, Any]]:
        """Prepare a claimed batch: in one transaction, or read once and prepared in chunks.

        Chunks share one session, so the rows the bulk read loaded (kept after each commit)
        serve every chunk. A chunk that fails is rolled back, which expires those rows: it
        is prepared again job by job, and the chunks after it as batches of their own. A
        chunk that cannot be prepared at all (the database went away, its commit failed)
        is retried later, and the round goes on: the chunks committed before it have
        messages ``sending`` that only this round will send.
        """
        chunk = self.config.prepare_chunk
        if chunk is None or len(jobs) <= chunk:
            await self._wait_turn()
            return await asyncio.to_thread(self._prepare_all, jobs)
        parts = [jobs[start : start + chunk] for start in range(0, len(jobs), chunk)]
        prepared: list[tuple[ClaimedJob, Any]] = []
        with self.db.sessions() as session:
            await self._wait_turn()
            batches: dict[str, Any] | None = await asyncio.to_thread(
                self._preload_alone, session, jobs
            )
            for part in parts:
                await self._wait_turn()
                try:
                    if batches is None:
                        prepared += await asyncio.to_thread(self._prepare_all, part)
                        continue
                    try:
                        prepared += await asyncio.to_thread(
                            self._prepare_chunk, session, part, batches
                        )
                    except _RedoIsolated:
                        batches = None
                        prepared += await asyncio.to_thread(self._prepare, part, isolated=True)
                except Exception as exc:
                    log.exception("preparing %s jobs failed; retrying them later", len(part))
                    batches = None
                    await asyncio.to_thread(self._retry_unprepared, part, exc)
        return prepared

    def _retry_unprepared(self, jobs: list[ClaimedJob], exc: Exception) -> None:
        """Jobs whose prepare was rolled back, retried with backoff like any failed
        attempt; if even that cannot be written, their lease runs out and they are claimed
        again (nothing of theirs was committed, so there is nothing to reconcile)."""
        outcome = Retry(f"{type(exc).__name__}: {exc}")
        try:
            with self.db.transaction() as session:
                for job in jobs:
                    self._settle(session, job, outcome)
        except Exception:
            log.exception("retrying %s unprepared jobs failed; left to their lease", len(jobs))

    def _preload_alone(self, session: Session, jobs: list[ClaimedJob]) -> dict[str, Any]:
        with session.begin():
            return self._preload(session, jobs, isolated=False)

    def _prepare_chunk(
        self, session: Session, jobs: list[ClaimedJob], batches: dict[str, Any]
    ) -> list[tuple[ClaimedJob, Any]]:
        with session.begin():
            return self._prepare_in(session, jobs, batches, isolated=False)

    def _prepare_all(self, jobs: list[ClaimedJob]) -> list[tuple[ClaimedJob, Any]]:
        """Prepare a batch in one transaction, optimistically without savepoints.

        Savepoints cost two round trips per job on PostgreSQL. If any job raises, the whole
        transaction is rolled back and the batch is prepared again with each job in its own
        savepoint, so one bad job never takes the others down with it.
        """
        try:
            return self._prepare(jobs, isolated=False)
        except _RedoIsolated:
            return self._prepare(jobs, isolated=True)

    def _prepare(self, jobs: list[ClaimedJob], *, isolated: bool) -> list[tuple[ClaimedJob, Any]]:
        with self.db.transaction() as session:
            batches = self._preload(session, jobs, isolated=isolated)
            return self._prepare_in(session, jobs, batches, isolated=isolated)

    def _prepare_in(
        self,
        session: Session,
        jobs: list[ClaimedJob],
        batches: dict[str, Any],
        *,
        isolated: bool,
    ) -> list[tuple[ClaimedJob, Any]]:
        prepared: list[tuple[ClaimedJob, Any]] = []
        finished: list[ClaimedJob] = []
        for job in jobs:
            task = self.tasks.get(job.kind)
            if task is None:
                queue.fail(session, job, error=f"no task for {job.kind!r}")
                continue
            try:
                with session.begin_nested() if isolated else contextlib.nullcontext():
                    work = task.prepare(session, job, batches.get(job.kind))
                    if isolated and work is not None and not _spent(job):
                        [(_, work)] = self._record(session, [(job, work)])
            except Exception as exc:
                if not isolated:
                    raise _RedoIsolated from exc
                self._settle(session, job, self._prepare_failure(job, exc))
                continue
            if work is not None and _spent(job):
                self._settle(session, job, Retry(SETTLED_ONLY))
                continue
            if work is None:
                finished.append(job)
            else:
                prepared.append((job, work))
        if not isolated:
            try:
                prepared = self._record(session, prepared)
            except Exception as exc:
                raise _RedoIsolated from exc
        queue.complete_many(session, finished)
        waiting = [(job, work) for job, work in prepared if isinstance(work, Later)]
        if waiting:
            queue.postpone(session, [(job, later.until, later.cause) for job, later in waiting])
            for job, later in waiting:
                log.debug(
                    "job %s (%s) waits until %s: %s", job.id, job.kind, later.until, later.reason
                )
            prepared = [(job, work) for job, work in prepared if not isinstance(work, Later)]
        return prepared

    def _record(
        self, session: Session, prepared: list[tuple[ClaimedJob, Any]]
    ) -> list[tuple[ClaimedJob, Any]]:
        """Each kind's prepared jobs through its ``record_batch``, if it has one; in order."""
        recorded: dict[int, Any] = {}
        for kind, task in self.tasks.items():
            if not isinstance(task, RecordsInBatch):
                continue
            items = [
                (job, work)
                for job, work in prepared
                if job.kind == kind and not isinstance(work, Later)
            ]
            if items:
                works = task.record_batch(session, items)
                recorded.update(
                    (id(job), work) for (job, _), work in zip(items, works, strict=True)
                )
        return [(job, recorded.get(id(job), work)) for job, work in prepared]

    @staticmethod
    def _prepare_failure(job: ClaimedJob, exc: Exception) -> Retry:
        if isinstance(exc, RetryLater):
            return Retry(exc.reason, exc.retry_after)
        log.error("job %s (%s) failed to prepare", job.id, job.kind, exc_info=exc)
        return Retry(f"{type(exc).__name__}: {exc}")

    def _preload(
        self, session: Session, jobs: list[ClaimedJob], *, isolated: bool
    ) -> dict[str, Any]:
        """One bulk read per task kind; when isolated, a failed preload only costs the cache."""
        batches: dict[str, Any] = {}
        for kind, task in self.tasks.items():
            of_kind = [job for job in jobs if job.kind == kind]
            if not of_kind:
                continue
            if not isolated:
                batches[kind] = task.preload(session, of_kind)
                continue
            try:
                with session.begin_nested():
                    batches[kind] = task.preload(session, of_kind)
            except Exception:
                log.exception("preloading %s jobs failed; preparing them one by one", kind)
        return batches

    async def _perform(self, job: ClaimedJob, work: Any, lease: _Lease | None = None) -> Any:
        """The job's work done, or :data:`_NOT_PERFORMED` when its claim no longer holds it
        by the time its turn to run comes."""
        async with self._semaphore:
            await self._wait_turn()
            if lease is not None and not await lease.holds(job):
                log.warning(
                    "job %s (%s): claim %s lost its lease before its work was done; "
                    "not done by it, left to the claim holding it",
                    job.id,
                    job.kind,
                    job.locked_by,
                )
                return _NOT_PERFORMED
            try:
                return await self.tasks[job.kind].perform(work)
            except Exception as exc:  # noqa: BLE001 - handed to the task's finish to classify
                return exc

    def _finish_all(self, pending: list[tuple[ClaimedJob, Any]], results: list[Any]) -> None:
        items = [(job, work, result) for (job, work), result in zip(pending, results, strict=True)]
        with self.db.transaction() as session:
            held = queue.still_held(session, [job for job, _, _ in items])
            for job, _, result in items:
                if job.id not in held:
                    log.warning(
                        "job %s (%s): claim %s lost its lease before its answer was recorded; "
                        "a later claim reconciled it. Dropped answer: %r",
                        job.id,
                        job.kind,
                        job.locked_by,
                        result,
                    )
            items = [item for item in items if item[0].id in held]
            for kind, task in self.tasks.items():
                of_kind = [item for item in items if item[0].kind == kind]
                if of_kind:
                    outcomes = self._finish_kind(session, task, of_kind)
                    self._settle_all(session, [item[0] for item in of_kind], outcomes)

    def _finish_kind(
        self, session: Session, task: Task, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        try:
            with session.begin_nested():
                return task.finish_batch(session, items)
        except Exception:
            log.exception("finishing a batch of %s failed; finishing one by one", task.kind)
        outcomes: list[Outcome] = []
        for item in items:
            try:
                with session.begin_nested():
                    outcomes.extend(task.finish_batch(session, [item]))
            except Exception as exc:
                log.exception("job %s (%s) failed to finish", item[0].id, item[0].kind)
                outcomes.append(Retry(f"{type(exc).__name__}: {exc}"))
        return outcomes

    def _settle_all(
        self, session: Session, jobs: list[ClaimedJob], outcomes: list[Outcome]
    ) -> None:
        done = [
            job for job, outcome in zip(jobs, outcomes, strict=True) if isinstance(outcome, Done)
        ]
        queue.complete_many(session, done)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not isinstance(outcome, Done):
                self._settle(session, job, outcome)

    def _settle(self, session: Session, job: ClaimedJob, outcome: Outcome) -> None:
        if isinstance(outcome, Done):
            queue.complete(session, job)
        elif isinstance(outcome, Fail):
            queue.fail(session, job, error=outcome.reason)
        else:
            delay = queue.backoff(
                job.attempts,
                base_seconds=self.config.backoff_base_seconds,
                cap_seconds=self.config.backoff_cap_seconds,
                retry_after=outcome.retry_after,
            )
            status = queue.retry(session, job, error=outcome.reason, delay=delay)
            if status is None:
                log.warning(
                    "job %s (%s): claim %s lost its lease; not rescheduled by it",
                    job.id,
                    job.kind,
                    job.locked_by,
                )
                return
            log.warning(
                "job %s (%s) attempt %s: %s -> %s",
                job.id,
                job.kind,
                job.attempts,
                outcome.reason,
                status,
            )
