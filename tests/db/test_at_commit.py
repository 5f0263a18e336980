"""Rows held until commit are written before the transaction commits or reads through the
ORM, never after a rollback, and a savepoint rolled back takes only its own rows."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from parley.db.at_commit import insert_at_commit
from parley.jobs.models import Job
from parley.jobs.queue import _insert_jobs, enqueue
from support import rows


def _job(session, key: str) -> None:
    enqueue(session, kind="test.held", payload={"key": key}, idempotency_key=key, at_commit=True)


def _keys(db) -> list[str | None]:
    return sorted(job.idempotency_key for job in rows(db, Job))


def test_held_rows_go_in_together_before_the_commit(db):
    statements: list[tuple[str, int]] = []

    def note(_conn, _cursor, statement, parameters, _context, executemany):
        if statement.startswith("INSERT INTO jobs"):
            statements.append((statement, len(parameters) if executemany else 1))

    event.listen(db.engine, "before_cursor_execute", note)
    with db.transaction() as session:
        for key in ("a", "b", "c"):
            _job(session, key)
        assert statements == []
    assert [count for _, count in statements] == [3]
    assert _keys(db) == ["a", "b", "c"]


def test_a_read_through_the_session_sees_the_rows_held_before_it(db):
    with db.transaction() as session:
        _job(session, "a")
        seen = session.scalars(select(Job.idempotency_key)).all()
    assert seen == ["a"]


def test_a_rolled_back_transaction_writes_none_of_its_held_rows(db):
    def a_failing_delivery() -> None:
        with db.transaction() as session:
            _job(session, "a")
            raise RuntimeError("the delivery failed")

    with pytest.raises(RuntimeError):
        a_failing_delivery()
    with db.transaction() as session:
        _job(session, "b")
    assert _keys(db) == ["b"]


def test_a_savepoint_rolled_back_takes_its_own_rows_and_leaves_those_held_before_it(db):
    with db.transaction() as session:
        _job(session, "before")
        try:
            with session.begin_nested():
                _job(session, "inside")
                raise RuntimeError("this job's prepare failed")
        except RuntimeError:
            pass
        _job(session, "after")
    assert _keys(db) == ["after", "before"]


def test_rows_for_one_statement_keep_the_order_they_were_held_in(db):
    with db.transaction() as session:
        statement = _insert_jobs(session)
        for key in ("c", "a", "b"):
            insert_at_commit(
                session,
                statement,
                [
                    {
                        "kind": "test.held",
                        "payload": {},
                        "workspace_id": None,
                        "due_at": _now(),
                        "idempotency_key": key,
                        "lane": "transactional",
                        "max_attempts": 8,
                        "status": "pending",
                        "attempts": 0,
                        "created_at": _now(),
                        "updated_at": _now(),
                    }
                ],
            )
    assert [job.idempotency_key for job in rows(db, Job, order_by=lambda j: j.id)] == [
        "c",
        "a",
        "b",
    ]


def _now():
    from parley.clock import utc_now

    return utc_now()
