"""Everything an agent sees about one customer beside a conversation, read in a few queries.

The sidebar is on every conversation an agent opens, so it is built set-based: one query
per kind of fact (profile, identities, merges, consent, orders, fulfilments), never one
per row. Agent merges and unmerges live here too, because the sidebar is where agents do
them: the agent's name goes into the merge record's reason, so the record alone says who
joined the profiles and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from parley.commerce.models import Fulfillment, Order
from parley.customers import merges
from parley.customers.models import (
    ConsentRecord,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
)
from parley.customers.service import get_customer
from parley.errors import Invalid, NotFound

RECENT_ORDERS = 5
SEARCH_LIMIT = 8
REASON_LIMIT = 500


@dataclass(frozen=True)
class Identity:
    """One way to recognise or reach the customer, and when we saw it."""

    kind: str
    value: str
    first_seen_at: datetime
    last_inbound_at: datetime | None


@dataclass(frozen=True)
class MergeEntry:
    """A merge this profile took part in, told from this profile's side."""

    id: int
    other_customer_id: int
    other_name: str
    is_kept_here: bool
    """True: the other profile was folded into this one; False: this one was folded away."""
    reason: str
    created_at: datetime
    undone_at: datetime | None
    undo_reason: str | None

    @property
    def can_unmerge(self) -> bool:
        return self.undone_at is None


@dataclass(frozen=True)
class Consent:
    """The latest statement for one channel and purpose."""

    channel: str
    purpose: str
    is_granted: bool
    source: str
    recorded_at: datetime


@dataclass(frozen=True)
class Shipment:
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    """Only an http(s) address: anything else from the platform is shown as text, unlinked."""
    status: str | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class OrderItem:
    title: str
    variant: str | None
    quantity: int


@dataclass(frozen=True)
class OrderSummary:
    number: str
    placed_at: datetime | None
    currency: str
    total_price: Decimal | None
    financial_status: str | None
    fulfillment_status: str | None
    cancelled_at: datetime | None
    items: tuple[OrderItem, ...]
    shipments: tuple[Shipment, ...]

    @property
    def label(self) -> str:
        """``#1501``: Shopify's name for the order, whether or not it came with its ``#``."""
        return self.number if self.number.startswith("#") else f"#{self.number}"

    @property
    def fulfilment(self) -> str:
        """The order's fulfilment status; the platform leaves it empty on some orders whose
        parcels we already know about, and "unfulfilled" beside a delivered parcel misleads."""
        if self.fulfillment_status:
            return self.fulfillment_status.replace("_", " ")
        return "shipped" if self.shipments else "unfulfilled"


@dataclass(frozen=True)
class CustomerProfile:
    customer: Customer
    identities: tuple[Identity, ...]
    merges: tuple[MergeEntry, ...]
    consent: tuple[Consent, ...]
    orders: tuple[OrderSummary, ...]
    order_count: int

    @property
    def name(self) -> str:
        return display_name(self.customer)

    @property
    def shopify_ids(self) -> list[str]:
        return [i.value for i in self.identities if i.kind == IdentityKind.SHOPIFY]


@dataclass(frozen=True)
class Match:
    """A search hit for the merge form."""

    id: int
    name: str
    email: str | None
    phone: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email, "phone": self.phone}


def display_name(customer: Customer) -> str:
    """The name an agent recognises: the full name, else an address, else the id."""
    full = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    return full or customer.email or customer.phone or f"Customer {customer.id}"


def customer_profile(
    session: Session, *, workspace_id: int, customer_id: int, order_limit: int = RECENT_ORDERS
) -> CustomerProfile:
    """The sidebar's facts for one customer of this workspace; NotFound for any other id."""
    customer = get_customer(session, workspace_id=workspace_id, customer_id=customer_id)
    identities = tuple(
        Identity(row.kind, row.value, row.created_at, row.last_inbound_at)
        for row in session.scalars(
            select(CustomerIdentity)
            .where(
                CustomerIdentity.workspace_id == workspace_id,
                CustomerIdentity.customer_id == customer_id,
            )
            .order_by(CustomerIdentity.id)
        )
    )
    orders, order_count = _orders(
        session, workspace_id=workspace_id, customer_id=customer_id, limit=order_limit
    )
    return CustomerProfile(
        customer=customer,
        identities=identities,
        merges=_merges(session, workspace_id=workspace_id, customer_id=customer_id),
        consent=_consent(session, workspace_id=workspace_id, customer_id=customer_id),
        orders=orders,
        order_count=order_count,
    )


def _merges(session: Session, *, workspace_id: int, customer_id: int) -> tuple[MergeEntry, ...]:
    records = merges.list_merges(session, workspace_id=workspace_id, customer_id=customer_id)
    other_ids = {
        r.merged_customer_id if r.kept_customer_id == customer_id else r.kept_customer_id
        for r in records
    }
    others = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(
                Customer.workspace_id == workspace_id, Customer.id.in_(other_ids)
            )
        )
    }
    entries = []
    for record in records:
        is_kept_here = record.kept_customer_id == customer_id
        other_id = record.merged_customer_id if is_kept_here else record.kept_customer_id
        other = others.get(other_id)
        entries.append(
            MergeEntry(
                id=record.id,
                other_customer_id=other_id,
                other_name=display_name(other) if other else f"Customer {other_id}",
                is_kept_here=is_kept_here,
                reason=record.reason,
                created_at=record.created_at,
                undone_at=record.undone_at,
                undo_reason=record.undo_reason,
            )
        )
    return tuple(entries)


def _consent(session: Session, *, workspace_id: int, customer_id: int) -> tuple[Consent, ...]:
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for record in session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.workspace_id == workspace_id, ConsentRecord.customer_id == customer_id)
        .order_by(ConsentRecord.id)
    ):
        latest[(record.channel, record.purpose)] = record
    return tuple(
        Consent(r.channel, r.purpose, r.is_granted, r.source, r.recorded_at)
        for _, r in sorted(latest.items())
    )


def _orders(
    session: Session, *, workspace_id: int, customer_id: int, limit: int
) -> tuple[tuple[OrderSummary, ...], int]:
    scope = (Order.workspace_id == workspace_id, Order.customer_id == customer_id)
    total = session.scalar(select(func.count()).select_from(Order).where(*scope)) or 0
    orders = list(
        session.scalars(
            select(Order)
            .where(*scope)
            .order_by(Order.placed_at.desc().nulls_last(), Order.id.desc())
            .limit(limit)
        )
    )
    shipments: dict[str, list[Shipment]] = {}
    if orders:
        for row in session.scalars(
            select(Fulfillment)
            .where(
                Fulfillment.workspace_id == workspace_id,
                Fulfillment.order_external_id.in_([o.external_id for o in orders]),
            )
            .order_by(Fulfillment.id)
        ):
            shipments.setdefault(row.order_external_id, []).append(
                Shipment(
                    carrier=row.tracking_company,
                    tracking_number=row.tracking_number,
                    tracking_url=web_url(row.tracking_url),
                    status=row.shipment_status or row.status,
                    delivered_at=row.delivered_at,
                )
            )
    summaries = tuple(
        OrderSummary(
            number=order.number,
            placed_at=order.placed_at,
            currency=order.currency,
            total_price=order.total_price,
            financial_status=order.financial_status,
            fulfillment_status=order.fulfillment_status,
            cancelled_at=order.cancelled_at,
            items=tuple(_item(item) for item in order.line_items or [] if isinstance(item, dict)),
            shipments=tuple(shipments.get(order.external_id, ())),
        )
        for order in orders
    )
    return summaries, total


def _item(item: dict[str, Any]) -> OrderItem:
    quantity = item.get("quantity")
    return OrderItem(
        title=str(item.get("title") or "Item"),
        variant=str(item["variant_title"]) if item.get("variant_title") else None,
        quantity=quantity if isinstance(quantity, int) else 1,
    )


def web_url(value: str | None) -> str | None:
    """The address if it is an http(s) URL; ``javascript:`` and friends are never links."""
    if value and value.strip().lower().startswith(("https://", "http://")):
        return value.strip()
    return None


def search_customers(
    session: Session, *, workspace_id: int, query: str, exclude_id: int | None = None
) -> list[Match]:
    """Customers of this workspace whose name, email, phone or channel id contains ``query``.

    Profiles already merged away are left out: they cannot take part in another merge.
    """
    text = query.strip().lower()
    if len(text) < 2:
        return []
    pattern = f"%{_escape_like(text)}%"
    by_identity = select(CustomerIdentity.customer_id).where(
        CustomerIdentity.workspace_id == workspace_id,
        func.lower(CustomerIdentity.value).like(pattern, escape="\\"),
    )
    full_name = func.lower(
        func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, "")
    )
    statement = (
        select(Customer)
        .where(
            Customer.workspace_id == workspace_id,
            Customer.merged_into_id.is_(None),
            or_(
                full_name.like(pattern, escape="\\"),
                func.lower(func.coalesce(Customer.email, "")).like(pattern, escape="\\"),
                func.coalesce(Customer.phone, "").like(pattern, escape="\\"),
                Customer.id.in_(by_identity),
            ),
        )
        .order_by(Customer.id)
        .limit(SEARCH_LIMIT)
    )
    if exclude_id is not None:
        statement = statement.where(Customer.id != exclude_id)
    return [
        Match(id=c.id, name=display_name(c), email=c.email, phone=c.phone)
        for c in session.scalars(statement)
    ]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _reason(text: str, *, what: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise Invalid(f"say why you {what}: the reason is kept with the record")
    if len(reason) > REASON_LIMIT:
        raise Invalid(f"keep the reason under {REASON_LIMIT} characters")
    return reason


def merge_by_agent(
    session: Session,
    *,
    workspace_id: int,
    keep_id: int,
    merge_id: int,
    reason: str,
    agent_name: str,
) -> CustomerMerge:
    """Fold ``merge_id`` into ``keep_id`` because an agent says they are one shopper.

    Both ids must be this workspace's (NotFound otherwise, before anything is checked);
    two different Shopify customers are refused with the reason (Conflict).
    """
    why = _reason(reason, what="merge them")
    for customer_id in (keep_id, merge_id):
        get_customer(session, workspace_id=workspace_id, customer_id=customer_id)
    return merges.merge_customers(
        session,
        workspace_id=workspace_id,
        keep_id=keep_id,
        merge_id=merge_id,
        reason=f"{agent_name}: {why}",
    )


def unmerge_by_agent(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    merge_id: int,
    reason: str,
    agent_name: str,
) -> CustomerMerge:
    """Undo a merge the customer took part in; a merge of other customers is NotFound."""
    record = session.scalar(
        select(CustomerMerge).where(
            CustomerMerge.workspace_id == workspace_id,
            CustomerMerge.id == merge_id,
            or_(
                CustomerMerge.kept_customer_id == customer_id,
                CustomerMerge.merged_customer_id == customer_id,
            ),
        )
    )
    if record is None:
        raise NotFound(f"merge {merge_id} not found")
    why = " ".join(reason.split())[:REASON_LIMIT] or "unmerged"
    return merges.unmerge_customers(
        session, workspace_id=workspace_id, merge_id=record.id, reason=f"{agent_name}: {why}"
    )
