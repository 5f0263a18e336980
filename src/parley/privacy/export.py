"""An access request's answer: everything one store holds on one customer, as JSON.

Every column of every row found (:mod:`parley.privacy.held`), not a curated profile: the
store owner hands it to the customer, who is owed all of it (GDPR article 15), in a
machine-readable form they can take elsewhere (article 20).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from parley.commerce.models import Checkout, Fulfillment, Order, Refund
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.db.base import Base
from parley.inbox.models import AssistantTurn, Conversation, ConversationEvent
from parley.journeys.models import JourneyRun
from parley.messaging.models import DeliveryAttempt, Message
from parley.privacy.held import Held, events_of, find_held
from parley.privacy.service import Subject
from parley.store_events.models import StoreEvent

FORMAT = "parley.privacy-export/1"
SCHEMA = Path(__file__).with_name("export-1.schema.json")
"""The format's JSON Schema (draft 2020-12), published with the code: a change to an
exported table changes the format, and its version with it (a test checks they agree)."""


Where = Callable[[int, Held, Subject], Any]
"""The rows of a section: a condition on its model, given the store, what was found and
the request."""

_SECTIONS: tuple[tuple[str, type[Base], Where], ...] = (
    ("customers", Customer, lambda ws, held, subject: Customer.id.in_(held.customers)),
    (
        "identities",
        CustomerIdentity,
        lambda ws, held, subject: CustomerIdentity.customer_id.in_(held.customers),
    ),
    (
        "consent_records",
        ConsentRecord,
        lambda ws, held, subject: ConsentRecord.customer_id.in_(held.customers),
    ),
    ("orders", Order, lambda ws, held, subject: Order.external_id.in_(held.orders)),
    (
        "fulfillments",
        Fulfillment,
        lambda ws, held, subject: Fulfillment.order_external_id.in_(held.orders),
    ),
    ("refunds", Refund, lambda ws, held, subject: Refund.order_external_id.in_(held.orders)),
    ("checkouts", Checkout, lambda ws, held, subject: Checkout.external_id.in_(held.checkouts)),
    ("store_events", StoreEvent, lambda ws, held, subject: events_of(ws, held, subject)),
    ("journey_runs", JourneyRun, lambda ws, held, subject: JourneyRun.id.in_(held.runs)),
    (
        "conversations",
        Conversation,
        lambda ws, held, subject: Conversation.id.in_(held.conversations),
    ),
    (
        "conversation_events",
        ConversationEvent,
        lambda ws, held, subject: ConversationEvent.conversation_id.in_(held.conversations),
    ),
    ("messages", Message, lambda ws, held, subject: Message.id.in_(held.messages)),
    (
        "delivery_attempts",
        DeliveryAttempt,
        lambda ws, held, subject: DeliveryAttempt.message_id.in_(held.messages),
    ),
    (
        "assistant_turns",
        AssistantTurn,
        lambda ws, held, subject: AssistantTurn.message_id.in_(held.messages),
    ),
)
SECTIONS: dict[str, type[Base]] = {name: model for name, model, _ in _SECTIONS}
"""Each section of the export, in order, and the table its rows are every column of."""


def export_customer(
    session: Session, *, workspace_id: int, store: str, subject: Subject, now: datetime
) -> dict[str, Any]:
    """The export, ready to serialise; ``store`` is the store's name, for the reader."""
    held = find_held(session, workspace_id=workspace_id, subject=subject)
    sections = {
        name: [
            _plain(row)
            for row in session.scalars(
                select(model).where(
                    model.__table__.c.workspace_id == workspace_id,
                    where(workspace_id, held, subject),
                )
            )
        ]
        for name, model, where in _SECTIONS
    }
    return {
        "format": FORMAT,
        "store": store,
        "generated_at": now.isoformat(),
        "requested_for": {
            "platform_customer_id": subject.platform_customer_id,
            "email": subject.email,
            "phone": subject.phone,
            "orders": list(subject.orders),
        },
        **sections,
    }


@cache
def export_schema() -> dict[str, Any]:
    """:data:`SCHEMA`, read once."""
    found: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return found


def counted(export: dict[str, Any]) -> str:
    """What an export holds, in a line."""
    parts = [
        f"{name.replace('_', ' ')} {len(rows)}"
        for name, rows in export.items()
        if isinstance(rows, list) and rows
    ]
    return "gathered " + ", ".join(parts) if parts else "parley held nothing on this customer"


def _plain(row: Base) -> dict[str, Any]:
    columns = inspect(row).mapper.column_attrs
    return {
        attribute.key: _json(getattr(row, attribute.key))
        for attribute in columns
        if attribute.key != "workspace_id"
    }


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
