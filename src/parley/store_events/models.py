"""Raw platform deliveries and canonical store events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime

DELIVERY_KEY_LENGTH = 255
"""The longest delivery key (an ``Idempotency-Key``, a webhook id) kept: the edges refuse
a longer one rather than store it cut, where it could be taken for another delivery's."""


class WebhookDelivery(Base):
    """One delivery from a platform, kept verbatim for audit and replay."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("workspace_id", "source", "delivery_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    delivery_key: Mapped[str] = mapped_column(String(DELIVERY_KEY_LENGTH))
    topic: Mapped[str] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoreEvent(Base):
    """A canonical event (``order.created``, ``fulfillment.delivered``...) in a store's timeline."""

    __tablename__ = "store_events"
    __table_args__ = (
        Index("ix_store_events_order", "workspace_id", "order_external_id", "type"),
        Index("ix_store_events_customer", "workspace_id", "customer_id", "type"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    """The delivery that carried the event; not a foreign key, because raw deliveries are
    pruned after their retention period while the events stay (migration 0009)."""
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    order_external_id: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
