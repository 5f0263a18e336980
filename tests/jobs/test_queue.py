"""The job queue's statements, on SQLite and PostgreSQL: enqueue, claim under a lease, settle."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from parley.db import Database
from parley.errors import Conflict, NotFound
from parley.jobs import claims, queue
from parley.jobs.models import Job, JobStatus
from support import count, rows

LEASE = timedelta(seconds=60)


def _enqueue(db: Database, kind: str = "test.job", **fields: object) -> None:
    with db.transaction() as session:
        queue.enqueue(session, kind=kind, payload=fields.pop("payload", {}), **fields)  # type: ignore[arg-type]


def _claim(db: Database, worker: str, *, limit: int = 10) -> list[queue.ClaimedJob]:
    with db.transaction() as session:
        return claims.claim(session, worker=worker, limit=limit, lease=LEASE)


def _job(db: Database) -> Job:
    [job] = rows(db, Job)
    return job


class _Abort(Exception):
    pass


def _enqueue_then_roll_back(db: Database) -> None:
    with db.transaction() as session:
        queue.enqueue(session, kind="test.job", payload={"n": 1}, idempotency_key="k1")
        raise _Abort


# -- enqueue ----------------------------------------------------------------------------


def test_same_idempotency_key_twice_gives_one_job_and_the_first_wins(db, frozen_clock):
    _enqueue(db, payload={"n": 1}, idempotency_key="send:7:0")
    _enqueue(db, payload={"n": 2}, idempotency_key="send:7:0")
    with db.transaction() as session:
        queue.enqueue(session, kind="test.job", payload={"n": 3}, idempotency_key="send:7:0")
        queue.enqueue_many(
            session,
            [{"kind": "test.job", "payload": {"n": 4}, "idempotency_key": "send:7:0"}],
        )

    job = _job(db)
    assert (job.payload, job.status, job.attempts) == ({"n": 1}, JobStatus.PENDING, 0)
    assert job.due_at == frozen_clock.now


def test_jobs_without_a_key_are_never_deduplicated(db, frozen_clock):
    _enqueue(db, payload={"n": 1})
    _enqueue(db, payload={"n": 1})

    assert count(db, Job) == 2


def test_job_enqueued_in_a_rolled_back_transaction_does_not_exist(db, frozen_clock):
    with pytest.raises(_Abort):
        _enqueue_then_roll_back(db)

    assert count(db, Job) == 0
    _enqueue(db, payload={"n": 2}, idempotency_key="k1")  # the key was not taken either
    assert _job(db).payload == {"n": 2}


# -- claim ------------------------------------------------------------------------------


def test_claim_takes_only_due_jobs_in_due_order_under_a_lease(db, frozen_clock):
    now = frozen_clock.now
    _enqueue(db, "b", due_at=now - timedelta(minutes=1))
    _enqueue(db, "future", due_at=now + timedelta(seconds=1))
    _enqueue(db, "a", due_at=now - timedelta(minutes=3))
    _enqueue(db, "c", due_at=now)

    claimed = _claim(db, "w1")

    assert [job.kind for job in claimed] == ["a", "b", "c"]
    assert [job.attempts for job in claimed] == [1, 1, 1]
    by_kind = {job.kind: job for job in rows(db, Job)}
    for kind in ("a", "b", "c"):
        job = by_kind[kind]
        assert (job.status, job.locked_by, job.attempts) == (JobStatus.RUNNING, "w1", 1)
        assert job.locked_until == now + LEASE
    future = by_kind["future"]
    assert (future.status, future.locked_by, future.attempts) == (JobStatus.PENDING, None, 0)


def test_claim_with_a_limit_takes_the_earliest_due_first(db, frozen_clock):
    now = frozen_clock.now
    # Inserted so that id order, either way, is not due order.
    for kind, minutes_ago in (("middle", 10), ("newest", 1), ("oldest", 30)):
        _enqueue(db, kind, due_at=now - timedelta(minutes=minutes_ago))

    assert [job.kind for job in _claim(db, "w1", limit=2)] == ["oldest", "middle"]
    assert [job.kind for job in _claim(db, "w2", limit=2)] == ["newest"]


def test_claimed_job_is_claimable_again_only_after_its_lease_expires(db, frozen_clock):
    _enqueue(db)
    [first] = _claim(db, "w1")

    assert _claim(db, "w2") == []
    frozen_clock.advance(timedelta(seconds=59))
    assert _claim(db, "w2") == []

    frozen_clock.advance(timedelta(seconds=2))
    [second] = _claim(db, "w2")

    assert second.id == first.id
    assert (first.attempts, second.attempts) == (1, 2)
    job = _job(db)
    assert (job.status, job.locked_by, job.attempts) == (JobStatus.RUNNING, "w2", 2)
    assert job.locked_until == frozen_clock.now + LEASE


# -- settle -----------------------------------------------------------------------------


def test_worker_that_lost_its_lease_cannot_settle_the_job(db, frozen_clock):
    _enqueue(db)
    [stale] = _claim(db, "w1")
    frozen_clock.advance(LEASE + timedelta(seconds=1))
    [held] = _claim(db, "w2")

    with db.transaction() as session:
        assert queue.complete(session, stale) is False
        assert queue.fail(session, stale, error="too late") is False
        retried = queue.retry(session, stale, error="too late", delay=timedelta(seconds=5))
        assert retried is None

    job = _job(db)
    assert (job.status, job.locked_by, job.attempts, job.last_error) == (
        JobStatus.RUNNING,
        "w2",
        2,
        None,
    )
    with db.transaction() as session:
        assert queue.complete(session, held) is True
    job = _job(db)
    assert (job.status, job.locked_until, job.last_error) == (JobStatus.DONE, None, None)


def test_completing_many_jobs_settles_only_those_this_worker_still_holds(db, frozen_clock):
    _enqueue(db, payload={"n": 1})
    [lost] = _claim(db, "w1", limit=1)
    frozen_clock.advance(LEASE + timedelta(seconds=1))
    [taken] = _claim(db, "w2")
    _enqueue(db, payload={"n": 2})
    _enqueue(db, payload={"n": 3})
    kept = _claim(db, "w1")

    with db.transaction() as session:
        queue.complete_many(session, [lost, *kept])

    settled = {job.id: (job.status, job.locked_by, job.locked_until) for job in rows(db, Job)}
    assert taken.id == lost.id
    assert settled == {
        lost.id: (JobStatus.RUNNING, "w2", frozen_clock.now + LEASE),
        **{job.id: (JobStatus.DONE, "w1", None) for job in kept},
    }


def test_a_settled_job_cannot_be_settled_again(db, frozen_clock):
    _enqueue(db)
    [claimed] = _claim(db, "w1")
    with db.transaction() as session:
        assert queue.complete(session, claimed) is True
    with db.transaction() as session:
        assert queue.fail(session, claimed, error="late") is False

    job = _job(db)
    assert (job.status, job.last_error) == (JobStatus.DONE, None)


def test_failed_job_keeps_its_reason_and_is_never_claimed_again(db, frozen_clock):
    _enqueue(db)
    [claimed] = _claim(db, "w1")
    with db.transaction() as session:
        assert queue.fail(session, claimed, error="recipient rejected") is True

    frozen_clock.advance(timedelta(days=2))
    assert _claim(db, "w2") == []
    job = _job(db)
    assert (job.status, job.last_error, job.attempts) == (
        JobStatus.FAILED,
        "recipient rejected",
        1,
    )


def test_retry_puts_the_job_back_after_the_backoff(db, frozen_clock):
    _enqueue(db)
    [claimed] = _claim(db, "w1")
    delay = queue.backoff(
        claimed.attempts, base_seconds=5.0, cap_seconds=3600.0, rng=random.Random(7)
    )
    assert timedelta(seconds=2.5) <= delay <= timedelta(seconds=5)

    with db.transaction() as session:
        status = queue.retry(session, claimed, error="503", delay=delay)

    assert status == JobStatus.PENDING
    job = _job(db)
    assert (job.status, job.locked_by, job.locked_until, job.last_error) == (
        JobStatus.PENDING,
        None,
        None,
        "503",
    )
    assert job.due_at == frozen_clock.now + delay
    assert _claim(db, "w1") == []
    frozen_clock.advance(delay)
    [again] = _claim(db, "w1")
    assert again.attempts == 2


def test_retry_dead_letters_when_attempts_are_spent(db, frozen_clock):
    _enqueue(db, max_attempts=3)
    statuses = []
    for _ in range(3):
        [claimed] = _claim(db, "w1")
        with db.transaction() as session:
            statuses.append(
                queue.retry(
                    session,
                    claimed,
                    error="503 from provider",
                    delay=timedelta(seconds=10),
                )
            )
        frozen_clock.advance(timedelta(seconds=10))

    assert statuses == [JobStatus.PENDING, JobStatus.PENDING, JobStatus.DEAD]
    job = _job(db)
    assert (job.status, job.attempts, job.locked_until) == (JobStatus.DEAD, 3, None)
    assert job.last_error == "gave up after 3 attempts: 503 from provider"
    frozen_clock.advance(timedelta(days=1))
    assert _claim(db, "w1") == []
    with db.transaction() as session:
        assert [dead.id for dead in queue.list_dead(session)] == [job.id]
        assert queue.count_by_status(session) == {"dead": 1}


# -- the dead letter, re-driven ---------------------------------------------------------


def _settle(db: Database, how: str) -> Job:
    """One job, claimed and then failed for good or retried until dead."""
    _enqueue(db, max_attempts=1, payload={"order": 7})
    [claimed] = _claim(db, "w1")
    with db.transaction() as session:
        if how == "failed":
            queue.fail(session, claimed, error="recipient rejected")
        else:
            queue.retry(session, claimed, error="503", delay=timedelta(seconds=1))
    return _job(db)


@pytest.mark.parametrize("how", ["failed", "dead"])
def test_a_job_of_the_dead_letter_is_re_driven_due_now_with_fresh_attempts(db, frozen_clock, how):
    settled = _settle(db, how)
    frozen_clock.advance(timedelta(hours=3))
    with db.transaction() as session:
        assert [job.id for job in queue.list_dead(session)] == [settled.id]
        queue.redrive(session, settled.id)

    job = _job(db)
    assert (job.status, job.attempts, job.due_at, job.locked_by) == (
        JobStatus.PENDING,
        0,
        frozen_clock.now,
        None,
    )
    assert job.payload == {"order": 7, "redrive": 1}
    assert job.last_error == settled.last_error
    with db.transaction() as session:
        assert queue.list_dead(session) == []
    [claimed] = _claim(db, "w2")
    assert (claimed.id, claimed.attempts, claimed.payload["redrive"]) == (settled.id, 1, 1)


def test_each_re_drive_is_counted_in_the_payload(db, frozen_clock):
    settled = _settle(db, "dead")
    with db.transaction() as session:
        queue.redrive(session, settled.id)
    [claimed] = _claim(db, "w1")
    with db.transaction() as session:
        queue.retry(session, claimed, error="503", delay=timedelta(seconds=1))
    with db.transaction() as session:
        queue.redrive(session, settled.id)

    assert _job(db).payload == {"order": 7, "redrive": 2}


@pytest.mark.parametrize("state", ["pending", "running", "done"])
def test_a_job_outside_the_dead_letter_is_not_re_driven(db, frozen_clock, state):
    _enqueue(db)
    if state != "pending":
        [claimed] = _claim(db, "w1")
        if state == "done":
            with db.transaction() as session:
                queue.complete(session, claimed)
    before = _job(db)

    with db.transaction() as session, pytest.raises(Conflict) as refused:
        queue.redrive(session, before.id)

    assert refused.value.message == (
        f"job {before.id} is {state}: only dead or failed jobs are re-driven"
    )
    after = _job(db)
    assert (after.status, after.attempts, after.payload, after.updated_at) == (
        before.status,
        before.attempts,
        before.payload,
        before.updated_at,
    )


def test_re_driving_a_job_that_is_not_there_is_not_found(db, frozen_clock):
    with db.transaction() as session, pytest.raises(NotFound):
        queue.redrive(session, 404)


# -- backoff ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(1, 16))
def test_backoff_stays_between_half_the_ceiling_and_the_ceiling(attempt):
    ceiling = min(3600.0, 5.0 * 2 ** (attempt - 1))
    rng = random.Random(attempt)

    delays = [
        queue.backoff(attempt, base_seconds=5.0, cap_seconds=3600.0, rng=rng).total_seconds()
        for _ in range(200)
    ]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1  # jittered, so retries of many jobs do not line up


def test_backoff_is_reproducible_with_a_seeded_rng():
    first = [
        queue.backoff(n, base_seconds=5.0, cap_seconds=3600.0, rng=random.Random(42))
        for n in range(1, 9)
    ]
    second = [
        queue.backoff(n, base_seconds=5.0, cap_seconds=3600.0, rng=random.Random(42))
        for n in range(1, 9)
    ]

    assert first == second


def test_retry_after_is_a_floor_not_a_replacement():
    longer = queue.backoff(
        1, base_seconds=5.0, cap_seconds=3600.0, retry_after=120.0, rng=random.Random(1)
    )
    shorter = queue.backoff(
        4, base_seconds=5.0, cap_seconds=3600.0, retry_after=1.0, rng=random.Random(1)
    )
    without = queue.backoff(4, base_seconds=5.0, cap_seconds=3600.0, rng=random.Random(1))

    assert longer == timedelta(seconds=120)
    assert shorter == without
    assert timedelta(seconds=20) <= shorter <= timedelta(seconds=40)


@pytest.mark.parametrize("retry_after", [3600.5, 1e12, 1e300])
def test_a_retry_after_past_the_cap_waits_the_cap(retry_after):
    """A provider's absurd Retry-After (or a proxy's) must not push a retry past any date
    the queue can hold: the cap bounds it as it bounds the backoff."""
    delay = queue.backoff(
        1, base_seconds=5.0, cap_seconds=3600.0, retry_after=retry_after, rng=random.Random(1)
    )

    assert delay == timedelta(seconds=3600)
