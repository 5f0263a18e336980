"""Customer profiles, identities and consent records."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime


class IdentityKind(StrEnum):
    """Stored values: never renumber or reuse."""

    EMAIL = "email"
    PHONE = "phone"
    SHOPIFY = "shopify"
    WHATSAPP = "whatsapp"
    INSTAGRAM = "instagram"
    WEBCHAT = "webchat"


class Customer(Base):
    """One shopper, threaded across every channel they use."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_workspace_email", "workspace_id", "email"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str | None] = mapped_column(String(64))
    country_code: Mapped[str | None] = mapped_column(String(2))
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while this profile is merged into another: its rows live there until an unmerge.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerIdentity(Base):
    """A way to recognise or reach a customer; unique per workspace."""

    __tablename__ = "customer_identities"
    __table_args__ = (
        UniqueConstraint("workspace_id", "kind", "value"),
        Index("ix_customer_identities_customer", "workspace_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    # When the customer last wrote from it: the address to answer, and whether a channel's
    # window (WhatsApp's 24 hours) may be open; its messages say with which number.
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentRecord(Base):
    """One append-only statement: this customer allowed or refused a channel for a purpose."""

    __tablename__ = "consent_records"
    __table_args__ = (
        Index("ix_consent_records_lookup", "workspace_id", "customer_id", "channel", "purpose"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    is_granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerMerge(Base):
    """Two profiles found to be one shopper, with why, and exactly which rows moved.

    ``moved`` maps a table name to the ids re-pointed from the merged profile to the kept
    one, so an unmerge moves back precisely those rows and nothing that arrived later.
    """

    __tablename__ = "customer_merges"
    __table_args__ = (Index("ix_customer_merges_kept", "workspace_id", "kept_customer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kept_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    merged_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    moved: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undo_reason: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    """A "no" kept after the person who said it was erased (RELIABILITY P3).

    ``digest`` is a keyed hash of one address (an email, a phone number, a channel id):
    it cannot be read back into the address, yet the same address brought back by a later
    import hashes to it again, and the "no" is recorded on the new profile
    (:mod:`parley.customers.suppression`).
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "digest", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
