"""Inserts held back until their transaction's next ORM statement or its commit, then
written together: one ``executemany`` per statement for every row waiting.

A Shopify delivery writes a store event and, for each journey it starts, a job: rows
nothing reads back in the same transaction. Under load a group commit writes up to 32
deliveries in one transaction (:mod:`parley.db.group_commit`), and on PostgreSQL each of
those inserts was a round trip of its own, in a writer thread that gives up the GIL and
waits to take it back every time. Held back, the batch's events go in one pipelined
``executemany`` and its jobs in another.

Nothing is lost or reordered where it matters: the rows are written before the session's
next ORM statement (``do_orm_execute``: every ``session.execute``, ``scalars``, ``get``...),
so a read or update through the session in the same transaction (a customer merge
re-pointing store events) sees them, and before it commits (or begins a savepoint).
Statements sent on ``session.connection()`` directly, the webhook path's own upserts, do
not wait for them: hold back only rows such statements never read. Inside a savepoint the
rows are written at once, so rolling the savepoint back takes them with it, and only
them. A rolled-back transaction drops whatever was still held (a group commit then writes
each delivery again, alone).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

_HELD = "parley.db.at_commit"


def insert_at_commit(session: Session, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with ``statement`` when the transaction next reads through the ORM
    or commits, together with every other row held for the same statement object."""
    if not rows:
        return
    if session.in_nested_transaction():
        session.connection().execute(statement, rows)
        return
    held: dict[Any, list[dict[str, Any]]] = session.info.setdefault(_HELD, {})
    held.setdefault(statement, []).extend(rows)


def write_held(session: Session) -> None:
    """Write every held row now (one ``executemany`` per statement, in the order held)."""
    held = session.info.pop(_HELD, None)
    if held:
        _execute(session.connection(), held)


def _execute(connection: Connection, held: dict[Any, list[dict[str, Any]]]) -> None:
    for statement, rows in held.items():
        connection.execute(statement, rows)


@event.listens_for(Session, "do_orm_execute")
def _before_orm_statement(state: ORMExecuteState) -> None:
    write_held(state.session)


@event.listens_for(Session, "after_transaction_create")
def _before_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # Held rows belong to the transaction around a savepoint: written by the savepoint's
    # first ORM statement, they would be lost with it when it rolls back. So they go in
    # before it begins, on the enclosing transaction (its SAVEPOINT is not yet sent).
    if not transaction.nested or transaction.parent is None:
        return
    held = session.info.pop(_HELD, None)
    if held:
        _execute(transaction.parent.connection(None), held)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_held(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A savepoint's rollback leaves the rows held before it: its own were written at once.
    if previous_transaction.parent is None:
        session.info.pop(_HELD, None)
