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


def emit_status(
    session: Session,
    *,
    workspace_id: int,
    conversation_id: int | None,
    message_id: int,
    status: str,
) -> None:
    """A message's delivery status changed (``message_status``), for its badge.

    A message outside any conversation (a journey send to a customer who never wrote) is on
    no agent's screen, so it is not announced: a journey blast adds no live rows.
    """
    if conversation_id is not None:
        emit(
            session,
            workspace_id=workspace_id,
            kind="message_status",
            conversation_id=conversation_id,
            data={"message_id": message_id, "status": str(status)},
        )


def emit_statuses(session: Session, changes: list[tuple[int, int | None, int, str]]) -> None:
    """Many :func:`emit_status` at once, ``(workspace, conversation, message, status)``:
    one multi-row insert, and one notification per workspace, for a worker's whole batch."""
    now = utc_now()
    rows = [
        {
            "workspace_id": workspace_id,
            "kind": "message_status",
            "conversation_id": conversation_id,
            "user_id": None,
            "data": {"message_id": message_id, "status": str(status)},
            "created_at": now,
        }
        for workspace_id, conversation_id, message_id, status in changes
        if conversation_id is not None
    ]
    if not rows:
        return
    session.execute(insert(LiveEvent), rows)
    if session.get_bind().dialect.name == "postgresql":
        for workspace_id in sorted({change[0] for change in changes if change[1] is not None}):
            session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": str(workspace_id)},
            )
