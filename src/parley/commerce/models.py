"""Orders, fulfilments, checkouts, products and refunds, as the store platform reports them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime

Money = Numeric(15, 3)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_orders_customer", "workspace_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    external_id: Mapped[str] = mapped_column(String(255))
    number: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    total_price: Mapped[Decimal | None] = mapped_column(Money)
    financial_status: Mapped[str | None] = mapped_column(String(32))
    fulfillment_status: Mapped[str | None] = mapped_column(String(32))
    line_items: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    status_url: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(64))
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Fulfillment(Base):
    __tablename__ = "fulfillments"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_fulfillments_order", "workspace_id", "order_external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    # By external id: a fulfilment can arrive before its order.
    order_external_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(32))
    shipment_status: Mapped[str | None] = mapped_column(String(32))
    tracking_company: Mapped[str | None] = mapped_column(String(200))
    tracking_number: Mapped[str | None] = mapped_column(String(200))
    tracking_url: Mapped[str | None] = mapped_column(Text)
    line_items: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Checkout(Base):
    __tablename__ = "checkouts"
    __table_args__ = (UniqueConstraint("workspace_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    external_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    total_price: Mapped[Decimal | None] = mapped_column(Money)
    line_items: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    recovery_url: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("workspace_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    handle: Mapped[str | None] = mapped_column(String(255))
    product_type: Mapped[str | None] = mapped_column(String(255))
    vendor: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(32))
    tags: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    variants: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("workspace_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    order_external_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(Text)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
