"""Conversations, their timeline events and the assistant's turns."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime


class ConversationStatus(StrEnum):
    """Stored values: never renumber or reuse."""

    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Owner(StrEnum):
    """Who answers the customer. Stored values: never renumber or reuse."""

    ASSISTANT = "assistant"
    HUMAN = "human"


class Conversation(Base):
    """One customer's open thread with the store, across every channel they use.

    A customer has at most one unresolved conversation; once resolved, their next message
    opens a new one. ``channel`` is the channel the customer last wrote on: replies go
    there.
    """

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_customer", "workspace_id", "customer_id", "status"),
        Index("ix_conversations_list", "workspace_id", "status", "last_message_at"),
        Index("ix_conversations_waiting", "workspace_id", "status", "waiting_since"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=ConversationStatus.OPEN)
    owner: Mapped[str] = mapped_column(String(16), default=Owner.ASSISTANT)
    assignee_id: Mapped[int | None] = mapped_column(BigId)
    channel: Mapped[str | None] = mapped_column(String(16))
    handoff_reason: Mapped[str | None] = mapped_column(Text)
    low_confidence_count: Mapped[int] = mapped_column(Integer, default=0)
    has_assistant_replied: Mapped[bool] = mapped_column(default=False)
    # Merged duplicates point at the conversation that took their messages.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime)
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the customer's oldest unanswered message arrived; None when nobody waits."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventKind(StrEnum):
    """Stored values: never renumber or reuse."""

    OPENED = "opened"
    HANDED_OFF = "handed_off"
    HANDED_BACK = "handed_back"
    ASSIGNED = "assigned"
    STATUS_CHANGED = "status_changed"
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    MERGED = "merged"
    NOTE = "note"


class ConversationEvent(Base):
    """Something that happened in a conversation other than a message: a hand-off, an
    assignment, a status change, an opt-out. Append-only: the timeline is its history."""

    __tablename__ = "conversation_events"
    __table_args__ = (Index("ix_conversation_events_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TurnAction(StrEnum):
    """What the assistant did with one inbound message. Stored values: never reuse."""

    ANSWERED = "answered"
    CLARIFIED = "clarified"
    HANDED_OFF = "handed_off"


class AssistantTurn(Base):
    """The assistant's reading of one inbound message and what it did about it.

    ``lookups`` records every store lookup it made and what came back, so an agent sees
    why it said what it said; ``label`` is an agent's correction of the intent, the
    training data for ``parley assistant train``.
    """

    __tablename__ = "assistant_turns"
    __table_args__ = (
        Index("ix_assistant_turns_conversation", "conversation_id", "id"),
        Index("ix_assistant_turns_message", "workspace_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    reply_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    intent: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float] = mapped_column(Float)
    entities: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    lookups: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    label: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConversationRead(Base):
    """How far one agent has read a conversation: messages after ``read_at`` are unread."""

    __tablename__ = "conversation_reads"
    __table_args__ = (UniqueConstraint("conversation_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CannedReply(Base):
    """A saved answer agents insert with its shortcut; ``body`` may use variables such as
    ``{{ customer.first_name }}``, rendered in the template sandbox."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("workspace_id", "shortcut"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    shortcut: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
