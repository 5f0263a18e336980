"""Looking a batch's rows up by key, in statements both engines answer from an index (and,
on PostgreSQL, parse once).

A batch of jobs asks for many (workspace, key) pairs at once. Written as a row-value
``(workspace_id, key) IN (VALUES ...)``, SQLite plans a scan of the whole table, so every
batch grew slower as the store grew; one ``workspace_id = ? AND key ...`` per workspace is
a search of the (workspace_id, key) index on SQLite and PostgreSQL alike.

On PostgreSQL the keys go in as one array parameter, not one placeholder each
(:func:`one_of`). An expanding ``IN (%s, %s, ...)`` makes every batch size a statement
text of its own: SQLAlchemy renders each placeholder again on every execution, and
psycopg, which keeps the parsed form of statements of at most 50 parameters, split each
batch's 200-placeholder text with its regular expression anew (cProfile: a quarter of a
batch's lookup CPU). SQLite keeps the expanding ``IN``: it has no arrays, and the JSON
list it could take instead (``json_each``) measured no faster at its batches of 20.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, any_, bindparam, false, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from parley.db.upsert import dialect_of


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column`` is one of ``values``: ``= ANY(:array)`` on PostgreSQL, ``IN`` on SQLite."""
    listed = sorted(set(values))
    if dialect_of(session) == "postgresql":
        condition: ColumnElement[bool] = column == any_(
            bindparam(None, listed, type_=ARRAY(column.type))
        )
        return condition
    return cast("ColumnElement[bool]", column.in_(listed))


def one_of_parameter(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """:func:`one_of` with its values left to a parameter ``name`` (a list), for
    statements built once per dialect (:func:`parley.db.upsert.per_dialect`)."""
    if dialect == "postgresql":
        condition: ColumnElement[bool] = column == any_(bindparam(name, type_=ARRAY(column.type)))
        return condition
    return cast("ColumnElement[bool]", column.in_(bindparam(name, expanding=True)))


def in_workspaces(
    session: Session, workspace_column: Any, key_column: Any, pairs: Iterable[tuple[int, Any]]
) -> ColumnElement[bool]:
    """``(workspace_column, key_column)`` is one of ``pairs``, as indexed searches; false
    for no pairs (an empty ``or_()`` is no condition at all: every store's rows)."""
    keys: dict[int, set[Any]] = defaultdict(set)
    for workspace_id, key in pairs:
        keys[workspace_id].add(key)
    return or_(
        false(),
        *(
            and_(
                workspace_column == workspace_id,
                one_of(session, key_column, keys[workspace_id]),
            )
            for workspace_id in sorted(keys)
        ),
    )
