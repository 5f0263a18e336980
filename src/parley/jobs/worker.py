"""The worker: claim a batch, prepare it in one transaction, do the I/O, settle in another.

A task works in three phases so that nothing leaves the process inside a transaction and
a batch costs two commits however many jobs it holds:

1. ``prepare(session, job)`` runs inside the batch's first transaction (each job in its own
   savepoint). It returns ``None`` when the job is finished, or the work to do outside.
2. ``perform(work)`` runs with no transaction open (a provider call, with a timeout).
3. ``finish(session, job, work, result)`` runs in the second transaction and says how the
   job ends (:class:`Done`, :class:`Retry`, :class:`Fail`).

If the process dies between 2 and 3, the job's lease runs out, another worker claims it,
and ``prepare`` finds the evidence (a message left ``sending``) and reconciles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from parley.db import Database
from parley.jobs import queue
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


Outcome = Done | Retry | Fail


class RetryLater(Exception):
    """Raised from ``prepare`` when a job cannot run yet but should not fail."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Task(Protocol):
    """One kind of job. ``kind`` is a stable, stored string (``"journeys.advance"``)."""

    kind: str

    def prepare(self, session: Session, job: ClaimedJob) -> Any: ...

    async def perform(self, work: Any) -> Any: ...

    def finish(self, session: Session, job: ClaimedJob, work: Any, result: Any) -> Outcome: ...


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 200
    concurrency: int = 64
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 0.2
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 3600.0
    max_attempts: int | None = None
    """A deployment-wide cap on attempts; a job's own ``max_attempts`` applies below it."""


class Worker:
    """Runs registered tasks from the shared job table; any number may run at once."""

    def __init__(
        self,
        db: Database,
        tasks: list[Task],
        config: WorkerConfig | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.tasks = {task.kind: task for task in tasks}
        self.config = config or WorkerConfig()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stopping = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self.config.concurrency)

    async def run_forever(self) -> None:
        """Work until :meth:`stop`; sleep only when nothing is due."""
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("worker round failed; retrying after a pause")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.config.poll_seconds)

    def stop(self) -> None:
        self._stopping.set()

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Run rounds until no job is due now (tests and ``parley worker --drain``)."""
        total = 0
        for _ in range(max_rounds):
            handled = await self.run_once()
            if handled == 0:
                return total
            total += handled
        raise RuntimeError("queue did not drain")

    async def run_once(self) -> int:
        """Claim one batch and see every job in it to an outcome; return how many."""
        jobs = await asyncio.to_thread(self._claim)
        if not jobs:
            return 0
        prepared = await asyncio.to_thread(self._prepare_all, jobs)
        pending = [(job, work) for job, work in prepared if work is not None]
        results = await asyncio.gather(*(self._perform(job, work) for job, work in pending))
        if pending:
            await asyncio.to_thread(self._finish_all, pending, results)
        return len(jobs)

    def _claim(self) -> list[ClaimedJob]:
        with self.db.transaction() as session:
            jobs = queue.claim(
                session,
                worker=self.name,
                limit=self.config.batch_size,
                lease=self.config.lease,
            )
        cap = self.config.max_attempts
        if cap is None:
            return jobs
        return [replace(job, max_attempts=min(job.max_attempts, cap)) for job in jobs]

    def _prepare_all(self, jobs: list[ClaimedJob]) -> list[tuple[ClaimedJob, Any]]:
        prepared: list[tuple[ClaimedJob, Any]] = []
        with self.db.transaction() as session:
            for job in jobs:
                task = self.tasks.get(job.kind)
                if task is None:
                    queue.fail(session, job, worker=self.name, error=f"no task for {job.kind!r}")
                    continue
                try:
                    with session.begin_nested():
                        work = task.prepare(session, job)
                    if work is None:
                        queue.complete(session, job, worker=self.name)
                    else:
                        prepared.append((job, work))
                except RetryLater as exc:
                    self._settle(session, job, Retry(exc.reason, exc.retry_after))
                except Exception as exc:
                    log.exception("job %s (%s) failed to prepare", job.id, job.kind)
                    self._settle(session, job, Retry(f"{type(exc).__name__}: {exc}"))
        return prepared

    async def _perform(self, job: ClaimedJob, work: Any) -> Any:
        async with self._semaphore:
            try:
                return await self.tasks[job.kind].perform(work)
            except Exception as exc:  # noqa: BLE001 - handed to the task's finish to classify
                return exc

    def _finish_all(self, pending: list[tuple[ClaimedJob, Any]], results: list[Any]) -> None:
        with self.db.transaction() as session:
            for (job, work), result in zip(pending, results, strict=True):
                try:
                    with session.begin_nested():
                        outcome = self.tasks[job.kind].finish(session, job, work, result)
                except Exception as exc:
                    log.exception("job %s (%s) failed to finish", job.id, job.kind)
                    outcome = Retry(f"{type(exc).__name__}: {exc}")
                self._settle(session, job, outcome)

    def _settle(self, session: Session, job: ClaimedJob, outcome: Outcome) -> None:
        if isinstance(outcome, Done):
            queue.complete(session, job, worker=self.name)
        elif isinstance(outcome, Fail):
            queue.fail(session, job, worker=self.name, error=outcome.reason)
        else:
            delay = queue.backoff(
                job.attempts,
                base_seconds=self.config.backoff_base_seconds,
                cap_seconds=self.config.backoff_cap_seconds,
                retry_after=outcome.retry_after,
            )
            status = queue.retry(session, job, worker=self.name, error=outcome.reason, delay=delay)
            log.warning(
                "job %s (%s) attempt %s: %s -> %s",
                job.id,
                job.kind,
                job.attempts,
                outcome.reason,
                status,
            )
