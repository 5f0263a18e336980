"""INSERT ... ON CONFLICT for both engines, and statements built once per dialect.

SQLite (>= 3.24) and PostgreSQL share the ``ON CONFLICT`` syntax. Hot-path statements are
built once per dialect by :func:`per_dialect` and executed with parameters: inlining values
with ``.values(...)`` makes SQLAlchemy rebuild and re-key the statement on every call,
which cost more than the database work itself on the webhook path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, String, Table, bindparam, column, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

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


def unnested(columns: Mapping[str, Column[Any]]) -> TableValuedAlias:
    """A batch of rows on PostgreSQL as ``unnest(:a, :b, ...) AS batch(a, b, ...)``: one
    array parameter per key, typed as its column. Written from or joined to, it makes a
    batch's write one statement whose text does not depend on the batch's size, where an
    ``executemany`` is one statement a row (measured for a 200-row update: 10.5 -> 4.5 us
    of server CPU and 12 -> 1.4 us of client CPU a row). Run with :func:`write_rows`."""
    # One dimension: a JSON list in a row stays one value, not a second dimension.
    arrays = [
        bindparam(key, type_=postgresql.ARRAY(_uncut(col.type), dimensions=1))
        for key, col in columns.items()
    ]
    return (
        func.unnest(*arrays)
        .table_valued(*(column(key, col.type) for key, col in columns.items()))
        .render_derived(name="batch")
    )


def _uncut(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """A column's type for its batch array, without a string's length: the array is cast
    explicitly, and PostgreSQL cuts a value to ``varchar(n)`` in an explicit cast without a
    word. A batch row then fails as a one-row write does (``value too long``) instead of
    being stored cut, which for a unique key returned no match, so the row was reported as
    already there and lost."""
    if isinstance(type_, String) and type_.length is not None:
        return type_.adapt(type(type_), length=None)
    return type_


def batch_values(dialect: str, columns: Mapping[str, Column[Any]]) -> dict[str, Any]:
    """Each key's value in a batch write built once per dialect: a column of the
    :func:`unnested` batch on PostgreSQL, a parameter of each row on SQLite. Run the
    statement with :func:`write_rows`."""
    if dialect == "postgresql":
        batch = unnested(columns)
        return {key: batch.c[key] for key in columns}
    return {key: bindparam(key) for key in columns}


def insert_batch(dialect: str, table: Table, keys: Sequence[str] | None = None) -> Any:
    """An ``INSERT`` of a batch of rows with the given ``keys`` (by default every column
    but the primary key), built once per dialect: one statement over :func:`unnested` on
    PostgreSQL, a parameter per key on SQLite. Add an ``ON CONFLICT`` and a ``RETURNING``
    as needed; run it with :func:`write_rows` or :func:`insert_batch_returning`."""
    if keys is None:
        keys = [col.key for col in table.columns if not col.primary_key]
    statement = insert_on(dialect, table)
    if dialect == "postgresql":
        batch = unnested({key: table.c[key] for key in keys})
        statement = statement.from_select(list(keys), select(batch))
    return statement


def insert_batch_returning(
    session: Session, statement: Any, rows: list[dict[str, Any]], *, keys: Sequence[str]
) -> list[Any]:
    """Run an :func:`insert_batch` statement ending ``ON CONFLICT DO NOTHING RETURNING
    <value>, *keys`` for ``rows``; each row's value, in order, or None where the row was
    not inserted: its ``keys`` matched a row already stored, or an earlier row of the
    batch (only the first is sent).

    The returned rows are matched to the batch by ``keys`` (which must be a unique key of
    the table), not by position: PostgreSQL does not promise ``RETURNING`` in input order.
    On PostgreSQL the batch is one statement. Measured for 200 message rows (a
    700-character body, 900 of HTML) against psycopg's pipelined ``executemany(...,
    returning=True)``, a statement a row, which this replaces: 34 -> 21 us of client CPU
    a row and 38 -> 24 us of the server's. SQLite runs the statement once per row.
    """
    first: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        first.setdefault(tuple(row[key] for key in keys), index)
    sent = [rows[index] for index in first.values()]
    if not sent:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        result = connection.execute(statement, {key: [row[key] for row in sent] for key in sent[0]})
        returned = list(result)
    else:
        returned = [found for row in sent for found in connection.execute(statement, row)]
    value_of = {tuple(found[1:]): found[0] for found in returned}
    return [
        value_of.get(key) if first[key] == index else None
        for index, key in enumerate(tuple(row[k] for k in keys) for row in rows)
    ]


def write_rows(session: Session, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Run a batch write built once per dialect: on PostgreSQL a statement over
    :func:`unnested`, given each key's values as one list; on SQLite, where a statement
    has no round trip to save, a statement with a parameter per key, run for each row."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(statement, {key: [row[key] for row in rows] for key in rows[0]})
    else:
        connection.execute(statement, rows)
