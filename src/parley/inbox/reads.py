"""Per-agent read markers: how far each agent has read each conversation.

One row per (conversation, agent), moved forward by one upsert, so two tabs of the same
agent opening the same conversation at once never collide on the unique constraint.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from parley.inbox.models import Conversation, ConversationRead
from parley.live import outbox


def mark_read(session: Session, *, conversation: Conversation, user_id: int, now: datetime) -> bool:
    """Record that agent ``user_id`` has read ``conversation`` up to ``now``.

    Returns True when this cleared unread messages; only then is the agent's own screen
    told (a ``conversation`` event narrowed to them), so their list's unread badges drop
    in every tab, while a re-read of an already read conversation announces nothing and
    cannot start a refresh loop.
    """
    previous = read_at(session, conversation_id=conversation.id, user_id=user_id)
    had_unread = conversation.last_inbound_at is not None and (
        previous is None or conversation.last_inbound_at > previous
    )
    values = {
        "workspace_id": conversation.workspace_id,
        "conversation_id": conversation.id,
        "user_id": user_id,
        "read_at": now,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(ConversationRead).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["conversation_id", "user_id"],
            set_={"read_at": statement.excluded.read_at},
        )
    )
    if had_unread:
        outbox.emit(
            session,
            workspace_id=conversation.workspace_id,
            kind="conversation",
            conversation_id=conversation.id,
            user_id=user_id,
            data={"change": "read"},
        )
    return had_unread


def read_at(session: Session, *, conversation_id: int, user_id: int) -> datetime | None:
    """When agent ``user_id`` last read the conversation; None if they never opened it."""
    return session.scalar(
        select(ConversationRead.read_at).where(
            ConversationRead.conversation_id == conversation_id,
            ConversationRead.user_id == user_id,
        )
    )
