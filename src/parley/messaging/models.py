"""The outbox: messages (sent, skipped or failed, always with a reason) and their attempts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime


class MessageStatus(StrEnum):
    """Stored values: never renumber or reuse.

    ``sending`` is the in-flight state: a row found in it after a crash was possibly
    accepted by the provider, so it is reconciled (``held`` for review), never re-sent.
    """

    SKIPPED = "skipped"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    HELD = "held"
    RECEIVED = "received"
    """An inbound message: the customer wrote it."""


class Direction(StrEnum):
    """Stored values: never renumber or reuse."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Author(StrEnum):
    """Who wrote a message. Stored values: never renumber or reuse."""

    JOURNEY = "journey"
    ASSISTANT = "assistant"
    AGENT = "agent"
    CUSTOMER = "customer"
    SYSTEM = "system"
    """parley itself: keyword confirmations (STOP, START, HELP)."""


class AttemptOutcome(StrEnum):
    STARTED = "started"
    """Only in rows written before attempts were recorded at their outcome."""
    SENT = "sent"
    TRANSIENT_ERROR = "transient_error"
    PERMANENT_ERROR = "permanent_error"
    INTERRUPTED = "interrupted"
    ACCOUNT_REFUSED = "account_refused"
    """The provider refused the store's credentials or account (then the message fell
    back, or waits in retries): what Settings warns admins about."""


class Message(Base):
    """One message to one customer, with why it went (or did not) and how far it got."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_messages_customer", "workspace_id", "customer_id", "created_at"),
        Index("ix_messages_provider", "workspace_id", "provider", "provider_message_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        # The few messages waiting for someone's review (Settings → Failed sends), found
        # without reading the store's every message.
        Index(
            "ix_messages_held",
            "workspace_id",
            "id",
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    journey_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("journey_runs.id", ondelete="SET NULL")
    )
    step_index: Mapped[int | None] = mapped_column(Integer)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    direction: Mapped[str] = mapped_column(String(8), default=Direction.OUTBOUND)
    author: Mapped[str] = mapped_column(String(16), default=Author.JOURNEY)
    sender: Mapped[str | None] = mapped_column(String(320))
    """Inbound only: the customer's channel identity the message came from."""
    store_address: Mapped[str | None] = mapped_column(String(320))
    """The store's address the message came to (inbound: the number or address the
    customer wrote to) or went from (outbound: the store's own account; None: the
    deployment's)."""
    attachments: Mapped[list[Any] | None] = mapped_column(JsonType)
    reply_to: Mapped[str | None] = mapped_column(String(998))
    """The provider id of the message this one answers (threads email, private replies)."""
    idempotency_key: Mapped[str] = mapped_column(String(300))
    message_type: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    template: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    headers: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """One hand-off of a message to a provider, and what came of it."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        UniqueConstraint("message_id", "number"),
        # The few refusals of a store's own account, for the warning on its Settings pages.
        Index(
            "ix_delivery_attempts_account_refused",
            "workspace_id",
            "finished_at",
            sqlite_where=text("outcome = 'account_refused'"),
            postgresql_where=text("outcome = 'account_refused'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(24))
    error: Mapped[str | None] = mapped_column(Text)
    provider_code: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageTemplate(Base):
    """A store's own wording for one (message type, channel); defaults apply otherwise."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "message_type", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    message_type: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JsonType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SenderPace(Base):
    """How far one sender's allowance is spent and booked: the pacer's one row per sender
    (:mod:`parley.messaging.pace`).

    A sender is the deployment's account on a provider (a WhatsApp business number, a
    Twilio number), shared by every store that sends from it, so this row belongs to the
    sender and not to a store. A store's own marketing rate is paced on a row here too,
    keyed ``store:<id>:marketing`` (:mod:`parley.messaging.marketing_rate`), deleted with
    the store.

    - ``spent_until``: the sends granted so far, laid end to end at the sender's rate, fill
      the time up to here; a sender whose ``spent_until`` is past is rested.
    - ``*_booked_until``: sends that found no room were given later times up to here, one
      after another, in their lane: a waiting backlog is spread over the times the sender
      can take it, each send tried again once, not all of them at every turn.
    """

    __tablename__ = "sender_paces"

    sender: Mapped[str] = mapped_column(String(400), primary_key=True)
    spent_until: Mapped[datetime] = mapped_column(UTCDateTime)
    transactional_booked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    marketing_booked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MarketingSlot(Base):
    """The last marketing message a customer was sent on a channel, for the frequency cap
    (:mod:`parley.messaging.frequency`): one row per customer and channel, taken by one
    conditional upsert, so two sends deciding at once cannot both pass."""

    __tablename__ = "marketing_slots"
    __table_args__ = (UniqueConstraint("workspace_id", "customer_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str] = mapped_column(String(300))
    """The message that took it: the same message decided again (after its sender had no
    room, say) keeps its slot."""


class WhatsAppTemplate(Base):
    """A template as Meta holds it for the store's WhatsApp business account: its review
    status and its category, which Meta may change on its own
    (:mod:`parley.messaging.whatsapp_templates`). The policy reads these before a template
    goes outside the 24-hour window."""

    __tablename__ = "whatsapp_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name", "language"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(24))
    meta_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SendingDomainCheck(Base):
    """The last reading of a sending domain's SPF, DKIM and DMARC records
    (:mod:`parley.messaging.sending_domain`): one row per domain read, the deployment's
    and those of stores that send from their own (:mod:`parley.messaging.email_sender`).
    A domain is DNS's, not a store's: the row says what DNS says, and which stores proved
    the domain theirs is in it.

    - ``problems``: what falls short of the bulk-sender rules, in words; empty: ready;
    - ``verifications``: the tokens of the ``parley-verification=`` records found there.
    """

    __tablename__ = "sending_domains"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    problems: Mapped[list[str]] = mapped_column(JsonType, default=list)
    verifications: Mapped[list[str]] = mapped_column(JsonType, default=list)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
