"""Looking rows up by (workspace, key) pairs in a way both engines answer from an index.

A batch of jobs asks for many (workspace, key) pairs at once. Written as a row-value
``(workspace_id, key) IN (VALUES ...)``, SQLite plans a scan of the whole table, so every
batch grew slower as the store grew; one ``workspace_id = ? AND key IN (...)`` per
workspace is a search of the (workspace_id, key) index on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, or_


def in_workspaces(
    workspace_column: Any, key_column: Any, pairs: Iterable[tuple[int, Any]]
) -> ColumnElement[bool]:
    """``(workspace_column, key_column)`` is one of ``pairs``, as indexed searches."""
    keys: dict[int, set[Any]] = defaultdict(set)
    for workspace_id, key in pairs:
        keys[workspace_id].add(key)
    return or_(
        *(
            and_(workspace_column == workspace_id, key_column.in_(sorted(keys[workspace_id])))
            for workspace_id in sorted(keys)
        )
    )
