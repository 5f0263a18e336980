"""The workspace (store) table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime
from parley.workspaces.credentials import Sealed, SealedJson


class Workspace(Base):
    """One store: its identity, its platform secrets and its settings."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    store_url: Mapped[str | None] = mapped_column(String(500))
    support_email: Mapped[str | None] = mapped_column(String(320))
    shopify_shop_domain: Mapped[str | None] = mapped_column(String(255))
    # Sealed: stored encrypted (credentials.py); Python sees the plain secret.
    shopify_secret: Mapped[str | None] = mapped_column(Sealed)
    shopify_secret_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # During a secret rotation Shopify may sign with the old secret for up to an hour.
    shopify_previous_secret: Mapped[str | None] = mapped_column(Sealed)
    shopify_previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    api_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChannelAccount(Base):
    """A store's account on one provider: the address customers write to, and the secrets
    that prove a webhook came from that provider for this store.

    ``address`` is the provider's id for the account (a WhatsApp ``phone_number_id``, a
    Twilio number, an Instagram account id, an inbound email address). It is unique per
    provider, so one account maps to exactly one workspace and a payload can never pick
    another store's.
    """

    __tablename__ = "channel_accounts"
    __table_args__ = (
        UniqueConstraint("provider", "address"),
        # The accounts a provider refuses now: few, read by the deployment's alert watch.
        Index(
            "ix_channel_accounts_refused",
            "refused_at",
            sqlite_where=text("refused_at IS NOT NULL"),
            postgresql_where=text("refused_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(320))
    # Sealed: one encrypted token (credentials.py); Python sees the plain dict.
    secrets: Mapped[dict[str, Any]] = mapped_column(SealedJson, default=dict)
    # Secret name -> ISO time it last changed: what the admin pages show, never decrypting.
    secret_fields: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the provider last refused this account sending (a revoked token, a suspended
    number); cleared when a send from it goes through or its secrets are replaced."""
    refused_reason: Mapped[str | None] = mapped_column(Text)
