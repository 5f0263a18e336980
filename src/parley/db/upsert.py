"""INSERT ... ON CONFLICT for both engines, and statements built once per dialect.

SQLite (>= 3.24) and PostgreSQL share the ``ON CONFLICT`` syntax. Hot-path statements are
built once per dialect by :func:`per_dialect` and executed with parameters: inlining values
with ``.values(...)`` makes SQLAlchemy rebuild and re-key the statement on every call,
which cost more than the database work itself on the webhook path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

T = TypeVar("T")


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_on(dialect: str, table: Table) -> Any:
    """The dialect's ``insert`` construct, which knows ``on_conflict_do_*``."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_for(session: Session, table: Table) -> Any:
    """The dialect's ``insert`` for this session's engine."""
    return insert_on(dialect_of(session), table)


def per_dialect(build: Callable[[str], T]) -> Callable[[Session], T]:
    """Memoise a statement builder by the session's dialect name."""
    built: dict[str, T] = {}

    def get(session: Session) -> T:
        dialect = dialect_of(session)
        statement = built.get(dialect)
        if statement is None:
            statement = built[dialect] = build(dialect)
        return statement

    get.__doc__ = build.__doc__
    return get
