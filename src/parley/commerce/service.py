"""Keeping the store's data current from canonical events.

Every write is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` whose condition refuses
a record older than the one stored: Shopify retries carry the original payload and arrive
in any order, so arrival order means nothing and ``updated_at`` decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session

from parley import events
from parley.clock import utc_now
from parley.commerce.models import Checkout, Fulfillment, Order, Product, Refund
from parley.db.base import table_of
from parley.db.upsert import dialect_of, insert_on, per_dialect


def _items(items: list[events.LineItem]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in items]


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def _upsert_newer(
    session: Session,
    table: Table,
    values: dict[str, Any],
    *,
    keep_if_null: tuple[str, ...] = (),
) -> None:
    """Insert, or overwrite only when the incoming ``source_updated_at`` is not older.

    The statement is built once per (dialect, table, columns) and reused with parameters.
    """
    now = utc_now()
    values = {**values, "created_at": now, "updated_at": now}
    dialect = dialect_of(session)
    key = (dialect, table.name, tuple(values), keep_if_null)
    statement = _UPSERTS.get(key)
    if statement is None:
        statement = _UPSERTS[key] = _build_upsert(dialect, table, tuple(values), keep_if_null)
    session.connection().execute(statement, values)


def _build_upsert(
    dialect: str, table: Table, names: tuple[str, ...], keep_if_null: tuple[str, ...]
) -> Any:
    statement = insert_on(dialect, table)
    excluded = statement.excluded
    columns = table.c
    updates: dict[str, Any] = {
        name: excluded[name] for name in names if name not in ("created_at", "workspace_id")
    }
    for name in keep_if_null:
        updates[name] = func.coalesce(excluded[name], columns[name])
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "external_id"],
        set_=updates,
        where=or_(
            columns.source_updated_at.is_(None),
            excluded.source_updated_at.is_(None),
            columns.source_updated_at <= excluded.source_updated_at,
        ),
    )


def record_order(
    session: Session, *, workspace_id: int, order: events.Order, customer_id: int | None
) -> None:
    _upsert_newer(
        session,
        table_of(Order),
        {
            "workspace_id": workspace_id,
            "external_id": order.external_id,
            "customer_id": customer_id,
            "number": order.number,
            "email": order.email,
            "phone": order.phone,
            "currency": order.currency,
            "total_price": order.total_price,
            "financial_status": order.financial_status,
            "fulfillment_status": order.fulfillment_status,
            "line_items": _items(order.line_items),
            "shipping_address": (
                order.shipping_address.model_dump(mode="json") if order.shipping_address else None
            ),
            "status_url": order.status_url,
            "cancelled_at": order.cancelled_at,
            "cancel_reason": order.cancel_reason,
            "placed_at": order.created_at,
            "source_updated_at": order.updated_at,
        },
        keep_if_null=("customer_id", "cancelled_at", "status_url", "shipping_address"),
    )


def record_fulfillment(
    session: Session, *, workspace_id: int, fulfillment: events.Fulfillment, occurred_at: datetime
) -> None:
    delivered = fulfillment.shipment_status is events.ShipmentStatus.DELIVERED
    _upsert_newer(
        session,
        table_of(Fulfillment),
        {
            "workspace_id": workspace_id,
            "external_id": fulfillment.external_id,
            "order_external_id": fulfillment.order_external_id,
            "status": fulfillment.status,
            "shipment_status": fulfillment.shipment_status,
            "tracking_company": fulfillment.tracking_company,
            "tracking_number": fulfillment.tracking_number,
            "tracking_url": fulfillment.tracking_url,
            "line_items": _items(fulfillment.line_items),
            "delivered_at": occurred_at if delivered else None,
            "source_updated_at": fulfillment.updated_at,
        },
        keep_if_null=("tracking_company", "tracking_number", "tracking_url", "delivered_at"),
    )


def record_checkout(
    session: Session, *, workspace_id: int, checkout: events.Checkout, customer_id: int | None
) -> None:
    _upsert_newer(
        session,
        table_of(Checkout),
        {
            "workspace_id": workspace_id,
            "external_id": checkout.external_id,
            "customer_id": customer_id,
            "email": checkout.email,
            "phone": checkout.phone,
            "currency": checkout.currency,
            "total_price": checkout.total_price,
            "line_items": _items(checkout.line_items),
            "recovery_url": checkout.recovery_url,
            "completed_at": checkout.completed_at,
            "source_updated_at": checkout.updated_at,
        },
        keep_if_null=("customer_id", "completed_at"),
    )


def record_product(session: Session, *, workspace_id: int, product: events.Product) -> None:
    _upsert_newer(
        session,
        table_of(Product),
        {
            "workspace_id": workspace_id,
            "external_id": product.external_id,
            "title": product.title,
            "handle": product.handle,
            "product_type": product.product_type,
            "vendor": product.vendor,
            "status": product.status,
            "tags": list(product.tags),
            "variants": [variant.model_dump(mode="json") for variant in product.variants],
            "source_updated_at": product.updated_at,
        },
    )


def record_refund(session: Session, *, workspace_id: int, refund: events.Refund) -> None:
    session.connection().execute(
        _insert_refund(session),
        {
            "workspace_id": workspace_id,
            "external_id": refund.external_id,
            "order_external_id": refund.order_external_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "note": refund.note,
            "refunded_at": refund.created_at,
            "created_at": utc_now(),
        },
    )


@per_dialect
def _insert_refund(dialect: str) -> Any:
    return insert_on(dialect, table_of(Refund)).on_conflict_do_nothing(
        index_elements=["workspace_id", "external_id"]
    )


def find_order(session: Session, *, workspace_id: int, external_id: str) -> Order | None:
    return session.scalar(
        select(Order).where(Order.workspace_id == workspace_id, Order.external_id == external_id)
    )
