"""The backlog as the table holds it: due work per lane and store, expired leases, the dead
letter; nothing finished, running or not yet due is counted as waiting."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from parley.clock import utc_now
from parley.jobs import queue
from parley.jobs.backlog import LaneBacklog, read_backlog, store_backlog
from parley.jobs.models import Job, JobStatus, Lane
from parley.workspaces.service import create_workspace

FIFTEEN_MINUTES = timedelta(minutes=15)


def _stores(db) -> tuple[int, int]:
    with db.transaction() as session:
        first = create_workspace(session, slug="first", name="First").id
        second = create_workspace(session, slug="second", name="Second").id
    return first, second


def _job(db, *, store, lane=Lane.TRANSACTIONAL, ago=timedelta(0), kind="test.job") -> int:
    with db.transaction() as session:
        queue.enqueue(
            session,
            kind=kind,
            payload={},
            workspace_id=store,
            due_at=utc_now() - ago,
            lane=lane,
        )
        return session.scalar(select(func.max(Job.id)))


def _set(db, job_id: int, **values) -> None:
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def test_nothing_waiting_reads_as_every_lane_empty_and_on_time(db, frozen_clock):
    with db.transaction() as session:
        backlog = read_backlog(session, now=utc_now(), dead_since=FIFTEEN_MINUTES)

    assert backlog.lanes == {Lane.TRANSACTIONAL: LaneBacklog(), Lane.MARKETING: LaneBacklog()}
    assert backlog.late_seconds(Lane.TRANSACTIONAL) == 0.0
    assert (backlog.lease_expired, backlog.dead_letter, backlog.dead_lately) == (0, {}, {})


def test_due_jobs_are_counted_per_lane_with_the_store_whose_oldest_waited_longest(db, frozen_clock):
    first, second = _stores(db)
    for minutes in (1, 3, 5):
        _job(db, store=first, ago=timedelta(minutes=minutes))
    _job(db, store=second, ago=timedelta(minutes=10))
    _job(db, store=None, ago=timedelta(seconds=30))
    _job(db, store=first, lane=Lane.MARKETING, ago=timedelta(hours=1))
    _job(db, store=second, lane=Lane.MARKETING, ago=timedelta(minutes=2))
    _job(db, store=first, ago=-timedelta(minutes=1))
    running = _job(db, store=second, ago=timedelta(hours=2))
    _set(db, running, status=JobStatus.RUNNING, locked_until=utc_now() + timedelta(minutes=1))
    done = _job(db, store=second, ago=timedelta(hours=3))
    _set(db, done, status=JobStatus.DONE)

    with db.transaction() as session:
        backlog = read_backlog(session, now=utc_now(), dead_since=FIFTEEN_MINUTES)

    assert backlog.lanes[Lane.TRANSACTIONAL] == LaneBacklog(
        due=5,
        stores=2,
        oldest_due_at=utc_now() - timedelta(minutes=10),
        longest_waiting_store=second,
    )
    assert backlog.lanes[Lane.MARKETING] == LaneBacklog(
        due=2, stores=2, oldest_due_at=utc_now() - timedelta(hours=1), longest_waiting_store=first
    )
    assert backlog.late_seconds(Lane.TRANSACTIONAL) == 600.0
    assert backlog.lease_expired == 0


def test_expired_leases_and_the_dead_letter_by_kind_with_those_dead_lately(db, frozen_clock):
    first, _ = _stores(db)
    stale = _job(db, store=first, ago=timedelta(minutes=5))
    _set(db, stale, status=JobStatus.RUNNING, locked_until=utc_now() - timedelta(seconds=1))
    for kind, status, ago in [
        ("journeys.advance", JobStatus.DEAD, timedelta(minutes=1)),
        ("journeys.advance", JobStatus.FAILED, timedelta(hours=2)),
        ("messages.deliver", JobStatus.FAILED, timedelta(minutes=14)),
        ("messages.deliver", JobStatus.CANCELLED, timedelta(minutes=1)),
    ]:
        dead = _job(db, store=first, kind=kind)
        _set(db, dead, status=status, updated_at=utc_now() - ago)

    with db.transaction() as session:
        backlog = read_backlog(session, now=utc_now(), dead_since=FIFTEEN_MINUTES)

    assert backlog.lease_expired == 1
    assert backlog.dead_letter == {"journeys.advance": 2, "messages.deliver": 1}
    assert backlog.dead_lately == {"journeys.advance": 1, "messages.deliver": 1}
    assert backlog.lanes[Lane.TRANSACTIONAL].due == 0


def test_a_stores_own_backlog_holds_its_due_jobs_and_no_other_stores(db, frozen_clock):
    first, second = _stores(db)
    _job(db, store=first, ago=timedelta(minutes=4))
    _job(db, store=first, ago=timedelta(minutes=1))
    _job(db, store=first, ago=-timedelta(minutes=1))
    _job(db, store=first, lane=Lane.MARKETING, ago=timedelta(minutes=2))
    _job(db, store=second, ago=timedelta(hours=1))
    _job(db, store=None, ago=timedelta(hours=2))

    with db.transaction() as session:
        found = store_backlog(session, workspace_id=first, now=utc_now())

    assert found == {
        Lane.TRANSACTIONAL: LaneBacklog(
            due=2,
            stores=1,
            oldest_due_at=utc_now() - timedelta(minutes=4),
            longest_waiting_store=first,
        ),
        Lane.MARKETING: LaneBacklog(
            due=1,
            stores=1,
            oldest_due_at=utc_now() - timedelta(minutes=2),
            longest_waiting_store=first,
        ),
    }
