"""An access request's answer: everything one store holds on one customer, as JSON.

Every column of every row found (:mod:`parley.privacy.held`), not a curated profile: the
store owner hands it to the customer, who is owed all of it (GDPR article 15), in a
machine-readable form they can take elsewhere (article 20).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from parley.commerce.models import Checkout, Fulfillment, Order, Refund
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.db.base import Base
from parley.inbox.models import AssistantTurn, Conversation, ConversationEvent
from parley.journeys.models import JourneyRun
from parley.messaging.models import DeliveryAttempt, Message
from parley.privacy.held import events_of, find_held
from parley.privacy.service import Subject
from parley.store_events.models import StoreEvent

FORMAT = "parley.privacy-export/1"


def export_customer(
    session: Session, *, workspace_id: int, store: str, subject: Subject, now: datetime
) -> dict[str, Any]:
    """The export, ready to serialise; ``store`` is the store's name, for the reader."""
    held = find_held(session, workspace_id=workspace_id, subject=subject)

    def rows(model: type[Base], condition: Any) -> list[dict[str, Any]]:
        scope = model.__table__.c.workspace_id == workspace_id
        return [_plain(row) for row in session.scalars(select(model).where(scope, condition))]

    sections: dict[str, list[Any]] = {
        "customers": rows(Customer, Customer.id.in_(held.customers)),
        "identities": rows(CustomerIdentity, CustomerIdentity.customer_id.in_(held.customers)),
        "consent_records": rows(ConsentRecord, ConsentRecord.customer_id.in_(held.customers)),
        "orders": rows(Order, Order.external_id.in_(held.orders)),
        "fulfillments": rows(Fulfillment, Fulfillment.order_external_id.in_(held.orders)),
        "refunds": rows(Refund, Refund.order_external_id.in_(held.orders)),
        "checkouts": rows(Checkout, Checkout.external_id.in_(held.checkouts)),
        "store_events": rows(StoreEvent, events_of(workspace_id, held, subject)),
        "journey_runs": rows(JourneyRun, JourneyRun.id.in_(held.runs)),
        "conversations": rows(Conversation, Conversation.id.in_(held.conversations)),
        "conversation_events": rows(
            ConversationEvent, ConversationEvent.conversation_id.in_(held.conversations)
        ),
        "messages": rows(Message, Message.id.in_(held.messages)),
        "delivery_attempts": rows(DeliveryAttempt, DeliveryAttempt.message_id.in_(held.messages)),
        "assistant_turns": rows(AssistantTurn, AssistantTurn.message_id.in_(held.messages)),
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
