"""Writing live events: inside the caller's transaction, so only committed changes show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.live.models import LiveEvent

CHANNEL = "parley_live"
"""The PostgreSQL ``NOTIFY`` channel that wakes every process's relay."""


def emit(
    session: Session,
    *,
    workspace_id: int,
    kind: str,
    conversation_id: int | None = None,
    user_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Announce a change to the agents of ``workspace_id`` once this transaction commits.

    ``user_id`` narrows an event to one agent (a removal, say). On PostgreSQL ``NOTIFY``
    is itself transactional: listeners are woken at commit, never for a rollback.
    """
    session.execute(
        insert(LiveEvent).values(
            workspace_id=workspace_id,
            kind=kind,
            conversation_id=conversation_id,
            user_id=user_id,
            data=data or {},
            created_at=utc_now(),
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {
                "channel": CHANNEL,
                "payload": str(workspace_id),
            },
        )
