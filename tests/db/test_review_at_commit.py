"""Rows held before a savepoint are the enclosing transaction's: a read inside the
savepoint used to write them there, and rolling the savepoint back took them with it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.jobs.models import Job
from parley.jobs.queue import enqueue
from support import rows


def _job(session: Session, key: str) -> None:
    enqueue(session, kind="test.held", payload={"key": key}, idempotency_key=key, at_commit=True)


def _read_then_fail(session: Session) -> None:
    """A savepoint whose work reads through the ORM, then fails and is rolled back."""
    try:
        with session.begin_nested():
            session.scalars(select(Job.id)).all()
            raise RuntimeError("this job's prepare failed")
    except RuntimeError:
        pass


def test_rows_held_before_a_savepoint_survive_its_rollback_after_a_read_inside_it(db):
    with db.transaction() as session:
        _job(session, "before")
        _read_then_fail(session)
        _job(session, "after")
    assert sorted(job.idempotency_key for job in rows(db, Job)) == ["after", "before"]


def test_rows_held_before_nested_savepoints_survive_the_inner_one_rolled_back(db):
    with db.transaction() as session:
        _job(session, "before")
        with session.begin_nested():
            _read_then_fail(session)
            seen = session.scalars(select(Job.idempotency_key)).all()
    assert seen == ["before"]
    assert [job.idempotency_key for job in rows(db, Job)] == ["before"]
