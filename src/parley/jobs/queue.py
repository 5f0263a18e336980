"""Enqueue and settle jobs. Every function here is one named SQL statement.

``enqueue`` runs in the caller's transaction: the job commits together with the rows that
caused it, or not at all. Claiming (:mod:`parley.jobs.claims`) flips due jobs to
``running`` under a lease; a job whose lease ran out (its worker died) is claimable
again, and its attempt counts. Only the claim holding a job settles it: each claim writes
its own lease owner (``locked_by``), so a claim whose lease ran out cannot settle a job
that a later claim took, even one of the same worker.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.db.at_commit import insert_at_commit
from parley.db.base import table_of
from parley.db.scoped import one_of, one_of_parameter
from parley.db.upsert import insert_on, per_dialect
from parley.errors import Conflict, NotFound
from parley.jobs.models import Job, JobStatus, Lane

JOBS = table_of(Job)


@dataclass(frozen=True)
class ClaimedJob:
    """A job a claim holds until ``locked_until``."""

    id: int
    kind: str
    payload: dict[str, Any]
    workspace_id: int | None
    attempts: int
    max_attempts: int
    due_at: datetime
    locked_by: str
    """The lease owner the claim wrote (``<worker>/<claim>``): who may settle the job."""


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    workspace_id: int | None = None,
    due_at: datetime | None = None,
    idempotency_key: str | None = None,
    lane: str = Lane.TRANSACTIONAL,
    max_attempts: int = 8,
    at_commit: bool = False,
) -> None:
    """Add a job in the caller's transaction; a job with the same key already there wins.

    ``at_commit``: write it with the transaction's other held-back jobs before its next
    ORM statement or its commit (:mod:`parley.db.at_commit`), for callers that never read
    the jobs table back in that transaction.
    """
    enqueue_many(
        session,
        [
            {
                "kind": kind,
                "payload": payload,
                "workspace_id": workspace_id,
                "due_at": due_at,
                "idempotency_key": idempotency_key,
                "lane": lane,
                "max_attempts": max_attempts,
            }
        ],
        at_commit=at_commit,
    )


def enqueue_many(session: Session, jobs: list[dict[str, Any]], *, at_commit: bool = False) -> None:
    """Add several jobs in one statement (same rules as :func:`enqueue`).

    A lane must be one of :class:`Lane` (ValueError otherwise): a claim takes jobs lane by
    lane, so a job in a lane it does not know would never run.
    """
    if not jobs:
        return
    now = utc_now()
    rows = [
        {
            "kind": job["kind"],
            "payload": job["payload"],
            "workspace_id": job.get("workspace_id"),
            "due_at": job.get("due_at") or now,
            "idempotency_key": job.get("idempotency_key"),
            "lane": Lane(job.get("lane", Lane.TRANSACTIONAL)).value,
            "max_attempts": job.get("max_attempts", 8),
            "status": JobStatus.PENDING,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for job in jobs
    ]
    if at_commit:
        insert_at_commit(session, _insert_jobs(session), rows)
    else:
        session.connection().execute(_insert_jobs(session), rows)


@per_dialect
def _insert_jobs(dialect: str) -> Any:
    return insert_on(dialect, JOBS).on_conflict_do_nothing(index_elements=["idempotency_key"])


def complete(session: Session, job: ClaimedJob) -> bool:
    """Mark a held job done; False when its claim no longer holds it (lease lost)."""
    return _settle(session, job, status=JobStatus.DONE, error=None)


def still_held(session: Session, jobs: list[ClaimedJob]) -> set[int]:
    """The ids of these jobs their claims still hold, locked until the transaction ends.

    A claim whose lease ran out may find its job reclaimed by another (another worker, or
    another round of the same one); whatever it was about to record is no longer its to
    record. ``FOR UPDATE`` keeps a claimer from taking the rows between this check and the
    caller's writes (on SQLite, the write lock does).
    """
    if not jobs:
        return set()
    owners = {job.id: job.locked_by for job in jobs}
    statement = select(Job.id, Job.locked_by).where(
        one_of(session, Job.id, list(owners)), Job.status == JobStatus.RUNNING
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return {job_id for job_id, owner in session.execute(statement) if owners[job_id] == owner}


def renew(session: Session, jobs: list[ClaimedJob], *, until: datetime) -> set[int]:
    """Extend the lease of these jobs of one claim to ``until``; the ids of those it still
    held. A job another claim took back (its lease ran out first) is left to that claim."""
    if not jobs:
        return set()
    [owner] = {job.locked_by for job in jobs}
    result = session.execute(
        update(JOBS)
        .where(
            one_of(session, JOBS.c.id, [job.id for job in jobs]),
            JOBS.c.locked_by == owner,
            JOBS.c.status == JobStatus.RUNNING,
        )
        .values(locked_until=until, updated_at=utc_now())
        .returning(JOBS.c.id)
    )
    return set(result.scalars())


def complete_many(session: Session, jobs: list[ClaimedJob]) -> None:
    """Mark several held jobs done, one statement per claim they came from (a worker's
    batch is one claim); jobs whose lease was lost are left."""
    now = utc_now()
    for owner in dict.fromkeys(job.locked_by for job in jobs):
        session.connection().execute(
            _complete_many_statement(session),
            {
                "jobs": [job.id for job in jobs if job.locked_by == owner],
                "worker": owner,
                "now": now,
            },
        )


def fail(session: Session, job: ClaimedJob, *, error: str) -> bool:
    """A permanent failure: no retry, kept with its reason."""
    return _settle(session, job, status=JobStatus.FAILED, error=error)


def retry(session: Session, job: ClaimedJob, *, error: str, delay: timedelta) -> JobStatus | None:
    """Put a job back for a later attempt, or into the dead letter when attempts are spent.

    Returns the job's new status, or None when its claim no longer held it.
    """
    if job.attempts >= job.max_attempts:
        held = _settle(
            session,
            job,
            status=JobStatus.DEAD,
            error=f"gave up after {job.attempts} attempts: {error}",
        )
        return JobStatus.DEAD if held else None
    now = utc_now()
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.locked_by == job.locked_by, Job.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.PENDING,
            due_at=now + delay,
            locked_until=None,
            locked_by=None,
            last_error=error,
            waiting_for=None,
            updated_at=now,
        )
    )
    return JobStatus.PENDING if result.rowcount else None  # type: ignore[attr-defined]


def postpone(session: Session, jobs: list[tuple[ClaimedJob, datetime, str | None]]) -> None:
    """Put held jobs back, each due at its time and marked with what it waits for, with
    the attempt their claim counted given back: they did not run (a send waiting for its
    sender's room). Jobs whose lease was lost are left to the claim that holds them."""
    now = utc_now()
    session.connection().execute(
        _postpone_statement(session),
        [
            {"job": job.id, "until": until, "cause": cause, "worker": job.locked_by, "now": now}
            for job, until, cause in jobs
        ],
    )


def bring_forward(session: Session, *, workspace_id: int, waiting_for: str, now: datetime) -> int:
    """Make a store's jobs waiting for ``waiting_for`` due now, when what they waited for
    has changed (the store raised its marketing rate, or resumed): each is prepared again
    once and decided then. Returns how many."""
    result = session.connection().execute(
        update(JOBS)
        .where(
            JOBS.c.workspace_id == workspace_id,
            JOBS.c.status == JobStatus.PENDING,
            JOBS.c.waiting_for == waiting_for,
        )
        .values(due_at=now, waiting_for=None, updated_at=now)
    )
    return int(result.rowcount)


@dataclass(frozen=True)
class WaitingJobs:
    """A store's jobs put back to wait for one thing: how many, and the span of their
    due times."""

    waiting_for: str
    count: int
    first_due: datetime
    last_due: datetime


def waiting_jobs(session: Session, *, workspace_id: int) -> list[WaitingJobs]:
    """What a store's held jobs wait for, most first."""
    statement = (
        select(
            JOBS.c.waiting_for,
            func.count(),
            func.min(JOBS.c.due_at),
            func.max(JOBS.c.due_at),
        )
        .where(
            JOBS.c.workspace_id == workspace_id,
            JOBS.c.status == JobStatus.PENDING,
            JOBS.c.waiting_for.is_not(None),
        )
        .group_by(JOBS.c.waiting_for)
    )
    found = [
        WaitingJobs(str(cause), int(count), first, last)
        for cause, count, first, last in session.execute(statement)
    ]
    return sorted(found, key=lambda w: (-w.count, w.waiting_for))


def _settle(session: Session, job: ClaimedJob, *, status: JobStatus, error: str | None) -> bool:
    result = session.connection().execute(
        _settle_statement(session),
        {
            "job": job.id,
            "worker": job.locked_by,
            "status": status,
            "error": error,
            "now": utc_now(),
        },
    )
    return bool(result.rowcount)


def _update_held_job() -> Any:
    """The job ``:job`` while the claim ``:worker`` holds it running: only that claim may
    settle it or put it back (a lost lease settles nothing)."""
    return update(JOBS).where(
        JOBS.c.id == bindparam("job"),
        JOBS.c.locked_by == bindparam("worker"),
        JOBS.c.status == JobStatus.RUNNING,
    )


@per_dialect
def _settle_statement(dialect: str) -> Any:
    return _update_held_job().values(
        status=bindparam("status"),
        locked_until=None,
        last_error=bindparam("error"),
        waiting_for=None,
        updated_at=bindparam("now"),
    )


@per_dialect
def _postpone_statement(dialect: str) -> Any:
    return _update_held_job().values(
        status=JobStatus.PENDING,
        due_at=bindparam("until"),
        attempts=JOBS.c.attempts - 1,
        locked_until=None,
        locked_by=None,
        waiting_for=bindparam("cause"),
        updated_at=bindparam("now"),
    )


@per_dialect
def _complete_many_statement(dialect: str) -> Any:
    """:func:`_settle_statement` for many jobs at once, each done."""
    return (
        update(JOBS)
        .where(
            one_of_parameter(dialect, JOBS.c.id, "jobs"),
            JOBS.c.locked_by == bindparam("worker"),
            JOBS.c.status == JobStatus.RUNNING,
        )
        .values(
            status=JobStatus.DONE,
            locked_until=None,
            last_error=None,
            waiting_for=None,
            updated_at=bindparam("now"),
        )
    )


def backoff(
    attempt: int,
    *,
    base_seconds: float,
    cap_seconds: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """Exponential backoff with equal jitter; a provider's Retry-After is a floor.

    ``cap_seconds`` bounds the Retry-After too: a provider (or a proxy before it) may send
    any number, and one far enough off (``1e12``) would overflow the job's due date and
    fail the whole batch it is settled with.
    """
    ceiling = min(cap_seconds, base_seconds * (2 ** max(attempt - 1, 0)))
    jitter = (rng or random).uniform(0, ceiling / 2)
    seconds = ceiling / 2 + jitter
    if retry_after is not None:
        seconds = max(seconds, min(retry_after, cap_seconds))
    return timedelta(seconds=seconds)


def count_by_status(session: Session, *, workspace_id: int | None = None) -> dict[str, int]:
    """How many jobs are in each state (for health checks and the CLI)."""
    query = select(Job.status, func.count()).group_by(Job.status)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    return {row[0]: row[1] for row in session.execute(query)}


DEAD_LETTER = (JobStatus.DEAD, JobStatus.FAILED)
"""Jobs that will not run again unless someone re-drives them: attempts spent, or a
permanent failure."""


def list_dead(
    session: Session, *, workspace_id: int | None = None, limit: int | None = 100
) -> list[Job]:
    """The dead letter, newest first."""
    query = select(Job).where(Job.status.in_(DEAD_LETTER)).order_by(Job.updated_at.desc())
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    return list(session.scalars(query.limit(limit)))


REDRIVE = "redrive"
"""The payload field counting a job's re-drives: a task whose dead job left its work
settled (a journey send marked failed) tells a re-drive from a retry by it."""


def redrive(
    session: Session,
    job_id: int,
    *,
    workspace_id: int | None = None,
    statuses: tuple[JobStatus, ...] = DEAD_LETTER,
) -> Job:
    """Put a job of the dead letter back, due now, with a fresh set of attempts.

    Its last error stays until the next attempt replaces it. Scoped by ``workspace_id``
    when given (an API key's store); the deployment's CLI passes None. ``statuses`` widens
    what may be put back: a done job whose message was held, once someone has found it
    was not delivered (:mod:`parley.held_messages`).
    Raises NotFound for a job that is not there, Conflict for one in another state.
    """
    query = select(Job).where(Job.id == job_id)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    job = session.scalar(query)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status not in statuses:
        allowed = " or ".join(str(status) for status in statuses)
        raise Conflict(f"job {job_id} is {job.status}: only {allowed} jobs are re-driven")
    now = utc_now()
    payload = {**job.payload, REDRIVE: int(job.payload.get(REDRIVE, 0)) + 1}
    # Conditional on the status read: of two concurrent re-drives, one wins.
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status.in_(statuses))
        .values(
            status=JobStatus.PENDING,
            payload=payload,
            attempts=0,
            due_at=now,
            locked_until=None,
            locked_by=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"job {job_id} was re-driven by someone else just now")
    session.refresh(job)
    return job


FINISHED = (JobStatus.DONE, JobStatus.CANCELLED)
"""States a job never leaves, and that nobody needs to look back at for long. Failed and
dead jobs are the dead letter, kept until someone deals with them."""


def prune_finished(
    session: Session, *, finished_before: datetime, limit: int, keep: Collection[int] = ()
) -> int:
    """Delete up to ``limit`` done or cancelled jobs last touched before ``finished_before``,
    but none of ``keep`` (jobs still needed: one a held message would be sent again by).

    Deployment-wide housekeeping, across workspaces. Safe for exactly-once: a job's key is
    no longer needed once it is done, because what it caused is keyed where it lives (a
    message by its own idempotency key, a journey run by its run key).
    """
    doomed = (
        select(Job.id)
        .where(
            Job.status.in_(FINISHED),
            Job.due_at < finished_before,
            Job.updated_at < finished_before,
            *([Job.id.not_in(sorted(keep))] if keep else []),
        )
        .limit(limit)
        .scalar_subquery()
    )
    result = session.execute(delete(Job).where(Job.id.in_(doomed)))
    return int(result.rowcount)  # type: ignore[attr-defined]
