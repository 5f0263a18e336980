"""The live-event outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime


class LiveEvent(Base):
    """Something an agent's screen should show now: a new message, a status, an assignment.

    Written in the transaction of the change, so a rolled-back change is never announced;
    every ``parley serve`` process tails this table (woken by ``NOTIFY`` on PostgreSQL) and
    forwards each row to the connected agents allowed to see it. Old rows are pruned.
    """

    __tablename__ = "live_events"
    __table_args__ = (
        Index("ix_live_events_workspace", "workspace_id", "id"),
        # Ids only rise, whatever is deleted: the relays read past the last one they saw.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    user_id: Mapped[int | None] = mapped_column(BigId)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
