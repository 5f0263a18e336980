"""Taking in a platform delivery: store it once, apply its events, start or end journeys.

All of it happens in the caller's one transaction, so the delivery row, the customer and
order rows it updates, the events and the jobs they schedule commit together or not at
all; the webhook is acknowledged only after that commit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from parley import events
from parley.clock import utc_now
from parley.commerce import service as commerce
from parley.customers import service as customers
from parley.db.at_commit import insert_at_commit
from parley.db.base import table_of
from parley.db.upsert import insert_batch, insert_batch_returning, insert_on, per_dialect
from parley.journeys import service as journeys
from parley.journeys.service import EventFacts
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces.models import Workspace
from parley.workspaces.service import WorkspaceAccess, mark_uninstalled, uninstalled_in

DELIVERIES = table_of(WebhookDelivery)
EVENTS = table_of(StoreEvent)


@dataclass(frozen=True)
class Delivery:
    """One platform delivery as received, before anything is decided about it."""

    source: str
    delivery_key: str
    topic: str
    headers: dict[str, str]
    body: str
    triggered_at: datetime | None = None


@dataclass(frozen=True)
class Ingested:
    delivery_id: int | None
    is_duplicate: bool
    events: int = 0
    runs_started: int = 0


def record_delivery(
    session: Session,
    *,
    workspace: Workspace | WorkspaceAccess,
    delivery: Delivery,
    status: str,
    reason: str | None,
) -> int | None:
    """Insert the raw delivery unless it was seen before; its id if new, None if a duplicate.

    The unique (workspace, source, delivery_key) constraint decides, so ten identical
    deliveries racing each other produce exactly one row, on SQLite and PostgreSQL alike.
    A delivery :func:`record_deliveries` recorded earlier in this transaction is not
    inserted again: its answer is the one that call got.
    """
    recorded: dict[int, tuple[str, int | None]] = session.info.get(_RECORDED, {})
    staged = recorded.pop(id(delivery), None)
    if staged is not None:
        staged_status, delivery_id = staged
        if staged_status != status:
            raise RuntimeError(f"delivery recorded as {staged_status!r}, now {status!r}")
        return delivery_id
    row = _delivery_row(workspace.id, delivery, status, reason)
    found: list[int | None] = insert_batch_returning(
        session, _insert_deliveries(session), [row], keys=_DELIVERY_KEY
    )
    return found[0]


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery to record, with the status its write will give it."""

    workspace_id: int
    delivery: Delivery
    status: str
    reason: str | None = None


def record_deliveries(session: Session, records: list[DeliveryRecord]) -> None:
    """Insert several deliveries at once (one statement on PostgreSQL), for
    :func:`record_delivery` to answer from when each one's write gets to it."""
    rows = [
        _delivery_row(record.workspace_id, record.delivery, record.status, record.reason)
        for record in records
    ]
    delivery_ids = insert_batch_returning(
        session, _insert_deliveries(session), rows, keys=_DELIVERY_KEY
    )
    recorded: dict[int, tuple[str, int | None]] = session.info.setdefault(_RECORDED, {})
    for record, delivery_id in zip(records, delivery_ids, strict=True):
        recorded[id(record.delivery)] = (record.status, delivery_id)


_RECORDED = "parley.store_events.recorded"
PROCESSED = "processed"
"""A delivery's status once its events are applied (or, for messaging, its messages)."""


def _delivery_row(
    workspace_id: int, delivery: Delivery, status: str, reason: str | None
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "source": delivery.source,
        "delivery_key": delivery.delivery_key,
        "topic": delivery.topic,
        "headers": delivery.headers,
        "body": delivery.body,
        "status": status,
        "status_reason": reason,
        "triggered_at": delivery.triggered_at,
        "received_at": utc_now(),
    }


_DELIVERY_KEY = ("workspace_id", "source", "delivery_key")


@per_dialect
def _insert_deliveries(dialect: str) -> Any:
    """Raw deliveries, one or a batch, in one statement (:func:`insert_batch_returning`);
    a key already recorded is skipped."""
    return (
        insert_batch(dialect, DELIVERIES)
        .on_conflict_do_nothing(index_elements=list(_DELIVERY_KEY))
        .returning(DELIVERIES.c.id, *(DELIVERIES.c[key] for key in _DELIVERY_KEY))
    )


@per_dialect
def _insert_event(dialect: str) -> Any:
    return insert_on(dialect, EVENTS)


def ingest(
    session: Session,
    *,
    workspace: Workspace | WorkspaceAccess,
    delivery: Delivery,
    mapped: list[events.Event],
) -> Ingested:
    """Store a delivery and apply its canonical events (nothing, if it is a duplicate)."""
    delivery_id = record_delivery(
        session, workspace=workspace, delivery=delivery, status=PROCESSED, reason=None
    )
    if delivery_id is None:
        return Ingested(delivery_id=None, is_duplicate=True)
    if not workspace.is_active or uninstalled_in(session, workspace.id):
        return Ingested(delivery_id=delivery_id, is_duplicate=False)
    started = 0
    for event in mapped:
        started += apply_event(
            session,
            workspace=workspace,
            event=event,
            delivery_id=delivery_id,
            source=delivery.source,
        )
    return Ingested(
        delivery_id=delivery_id, is_duplicate=False, events=len(mapped), runs_started=started
    )


def repeats_stored(session: Session, *, workspace_id: int, delivery: Delivery) -> bool:
    """A duplicate delivery carries what its key was first stored with: the same JSON
    (key order and spacing aside), or the same text when either is not JSON. A key the
    sweep has since removed cannot be compared, and so is not held against it."""
    stored = session.scalar(
        select(WebhookDelivery.body).where(
            WebhookDelivery.workspace_id == workspace_id,
            WebhookDelivery.source == delivery.source,
            WebhookDelivery.delivery_key == delivery.delivery_key,
        )
    )
    if stored is None or stored == delivery.body:
        return True
    try:
        return bool(json.loads(stored) == json.loads(delivery.body))
    except json.JSONDecodeError:
        return False


def apply_event(
    session: Session,
    *,
    workspace: Workspace | WorkspaceAccess,
    event: events.Event,
    delivery_id: int | None,
    source: str,
) -> int:
    """Update the store's data from one event, record it, and let journeys react."""
    payload = event.payload
    customer_id = _customer_for(session, workspace=workspace, event=event, source=source)
    facts = _apply(session, workspace=workspace, event=event, customer_id=customer_id)
    # Nothing reads store events back while deliveries are taken in: they go in with
    # the transaction's others, before its commit.
    insert_at_commit(
        session,
        _insert_event(session),
        [
            {
                "workspace_id": workspace.id,
                "delivery_id": delivery_id,
                "type": event.type,
                "subject": _subject(event),
                "order_external_id": facts.order_external_id,
                "customer_id": customer_id,
                "payload": payload.model_dump(mode="json"),
                "occurred_at": event.occurred_at,
                "recorded_at": utc_now(),
            }
        ],
    )
    if event.type is events.EventType.STORE_UNINSTALLED:
        mark_uninstalled(session, workspace_id=workspace.id)
        return 0
    return journeys.on_event(session, workspace_id=workspace.id, facts=facts, now=utc_now())


def _customer_for(
    session: Session, *, workspace: Workspace | WorkspaceAccess, event: events.Event, source: str
) -> int | None:
    payload: Any = event.payload
    if isinstance(payload, events.Fulfillment):
        order = commerce.find_order(
            session, workspace_id=workspace.id, external_id=payload.order_external_id
        )
        if order is not None and order.customer_id is not None:
            return order.customer_id
    shopper = _shopper_of(event)
    if shopper is None:
        return None
    profile, contact = shopper
    return customers.resolve_customer_id(
        session,
        workspace_id=workspace.id,
        contact=contact,
        profile=profile,
        consent_source=f"{source}:{event.type}",
    )


def _shopper_of(event: events.Event) -> tuple[events.Customer | None, customers.Contact] | None:
    """The shopper an event names: their platform profile, if any, and how to know them."""
    payload: Any = event.payload
    if isinstance(payload, events.Customer):
        return payload, customers.contact_from(payload)
    if isinstance(payload, events.Order | events.Checkout):
        contact = customers.contact_from(payload.customer, email=payload.email, phone=payload.phone)
        return payload.customer, contact
    if isinstance(payload, events.Fulfillment):
        return payload.customer, customers.contact_from(payload.customer)
    return None


def prefetch_shoppers(
    session: Session, groups: Iterable[tuple[int, Iterable[events.Event]]]
) -> None:
    """Look up together the shoppers a group commit's ``(workspace id, events)`` name, one
    statement per store, before the events are applied one by one."""
    contacts: dict[int, list[customers.Contact]] = defaultdict(list)
    for workspace_id, mapped in groups:
        for event in mapped:
            shopper = _shopper_of(event)
            if shopper is not None:
                contacts[workspace_id].append(shopper[1])
    for workspace_id, found in contacts.items():
        customers.prefetch_owners(session, workspace_id=workspace_id, contacts=found)


def _apply(
    session: Session,
    *,
    workspace: Workspace | WorkspaceAccess,
    event: events.Event,
    customer_id: int | None,
) -> EventFacts:
    payload: Any = event.payload
    order_id = fulfillment_id = checkout_id = None
    if isinstance(payload, events.Order):
        commerce.record_order(
            session, workspace_id=workspace.id, order=payload, customer_id=customer_id
        )
        order_id = payload.external_id
    elif isinstance(payload, events.Fulfillment):
        commerce.record_fulfillment(
            session, workspace_id=workspace.id, fulfillment=payload, occurred_at=event.occurred_at
        )
        order_id, fulfillment_id = payload.order_external_id, payload.external_id
    elif isinstance(payload, events.Checkout):
        commerce.record_checkout(
            session, workspace_id=workspace.id, checkout=payload, customer_id=customer_id
        )
        checkout_id = payload.external_id
    elif isinstance(payload, events.Product):
        commerce.record_product(session, workspace_id=workspace.id, product=payload)
    elif isinstance(payload, events.Refund):
        commerce.record_refund(session, workspace_id=workspace.id, refund=payload)
        order_id = payload.order_external_id
    return EventFacts(
        type=event.type,
        order_external_id=order_id,
        fulfillment_external_id=fulfillment_id,
        checkout_external_id=checkout_id,
        customer_id=customer_id,
        occurred_at=event.occurred_at,
    )


def _subject(event: events.Event) -> str:
    payload: Any = event.payload
    kind = event.type.split(".", 1)[0]
    external_id = getattr(payload, "external_id", None)
    return f"{kind}:{external_id}" if external_id else kind


def prune_deliveries(session: Session, *, received_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest raw deliveries received before ``received_before``.

    Deployment-wide housekeeping, across workspaces. A delivery's row is its dedupe key
    (the replay defence for platforms that sign no timestamp), so the caller's cutoff must
    leave every platform's retry horizon covered. Rows are walked from the oldest by
    primary key, which needs no index on ``received_at`` (one more write per delivery):
    the walk stops at the first row still young, so one that arrived a moment out of order
    waits for the rows after it. The events a delivery carried stay.
    """
    oldest = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.received_at)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    ).all()
    old = 0
    for _, received_at in oldest:
        if received_at >= received_before:
            break
        old += 1
    if not old:
        return 0
    result = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.id <= oldest[old - 1].id,
            WebhookDelivery.received_at < received_before,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
