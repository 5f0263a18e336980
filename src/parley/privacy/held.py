"""What parley holds on one customer of a store: the rows an access request gathers and
an erasure deletes, found from the platform's customer id, email and phone.

A shopper may be several profiles: one parley merged into another, or merged into from
another. All of them are the same person, so all are found. Every query is scoped to the
one store: the same person at another store on this deployment is that store's customer,
and its own request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from parley.commerce.models import Checkout, Order
from parley.customers.models import Customer, CustomerIdentity, IdentityKind
from parley.inbox.models import Conversation
from parley.journeys.models import JourneyRun
from parley.messaging.models import Message
from parley.privacy.service import Subject
from parley.store_events.models import StoreEvent


@dataclass(frozen=True)
class Held:
    """The ids of one customer's rows in one store, and the strings that identify them."""

    customers: frozenset[int]
    identities: frozenset[tuple[str, str]]
    """(kind, value) of every way parley recognises or reaches them."""
    orders: frozenset[str]
    """Platform order ids: the customer's own and those the request names."""
    checkouts: frozenset[str]
    conversations: frozenset[int]
    runs: frozenset[int]
    messages: frozenset[int]

    @property
    def traces(self) -> frozenset[str]:
        """Strings that, found in a raw payload, mean it is about this customer: their
        addresses and channel ids (not the platform's bare numeric id, which would match
        any longer number it is part of), and each phone without its ``+`` too, as
        WhatsApp writes it (``wa_id``, ``recipient_id``)."""
        found = {
            value
            for kind, value in self.identities
            if kind != IdentityKind.SHOPIFY and len(value) >= 6
        }
        found |= {
            value[1:]
            for kind, value in self.identities
            if kind == IdentityKind.PHONE and value.startswith("+")
        }
        return frozenset(found)


def find_held(session: Session, *, workspace_id: int, subject: Subject, lock: bool = False) -> Held:
    """Everything of the store's that belongs to the customer ``subject`` names.

    ``lock``, for an erasure: the profiles are locked (:func:`_locked_profiles`) before
    anything of theirs is read.
    """
    email, phone = subject.normalised_email, subject.normalised_phone
    customers = _profiles(session, workspace_id, subject, email, phone)
    if lock:
        customers = _locked_profiles(session, workspace_id, subject, email, phone, customers)
    identities = {
        (row.kind, row.value)
        for row in session.execute(
            select(CustomerIdentity.kind, CustomerIdentity.value).where(
                CustomerIdentity.workspace_id == workspace_id,
                CustomerIdentity.customer_id.in_(customers),
            )
        )
    }
    identities |= {(IdentityKind.EMAIL, email)} if email else set()
    identities |= {(IdentityKind.PHONE, phone)} if phone else set()
    emails = {value for kind, value in identities if kind == IdentityKind.EMAIL}
    phones = {value for kind, value in identities if kind == IdentityKind.PHONE}
    orders = set(subject.orders) | set(
        session.scalars(
            select(Order.external_id).where(
                Order.workspace_id == workspace_id, Order.customer_id.in_(customers)
            )
        )
    )
    checkouts = set(
        session.scalars(
            select(Checkout.external_id).where(
                Checkout.workspace_id == workspace_id,
                or_(
                    Checkout.customer_id.in_(customers),
                    Checkout.email.in_(emails),
                    Checkout.phone.in_(phones),
                ),
            )
        )
    )
    conversations = set(
        session.scalars(
            select(Conversation.id).where(
                Conversation.workspace_id == workspace_id, Conversation.customer_id.in_(customers)
            )
        )
    )
    runs = set(
        session.scalars(
            select(JourneyRun.id).where(
                JourneyRun.workspace_id == workspace_id,
                or_(
                    JourneyRun.customer_id.in_(customers),
                    JourneyRun.order_external_id.in_(orders),
                ),
            )
        )
    )
    addresses = {value for _, value in identities}
    messages = set(
        session.scalars(
            select(Message.id).where(
                Message.workspace_id == workspace_id,
                or_(
                    Message.customer_id.in_(customers),
                    Message.conversation_id.in_(conversations),
                    Message.journey_run_id.in_(runs),
                    Message.recipient.in_(addresses),
                    Message.sender.in_(addresses),
                ),
            )
        )
    )
    return Held(
        customers=frozenset(customers),
        identities=frozenset(identities),
        orders=frozenset(orders),
        checkouts=frozenset(checkouts),
        conversations=frozenset(conversations),
        runs=frozenset(runs),
        messages=frozenset(messages),
    )


def _profiles(
    session: Session, workspace_id: int, subject: Subject, email: str | None, phone: str | None
) -> set[int]:
    """The customer's profiles: those the request's identities or contact details find,
    and every profile merged into or from one of them."""
    keys = [
        (kind, value)
        for kind, value in (
            (IdentityKind.SHOPIFY, subject.platform_customer_id),
            (IdentityKind.EMAIL, email),
            (IdentityKind.PHONE, phone),
        )
        if value
    ]
    found: set[int] = set()
    if keys:
        found = set(
            session.scalars(
                select(CustomerIdentity.customer_id).where(
                    CustomerIdentity.workspace_id == workspace_id,
                    or_(
                        *(
                            and_(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
                            for kind, value in keys
                        )
                    ),
                )
            )
        )
    contact = [
        column == value
        for column, value in ((Customer.email, email), (Customer.phone, phone))
        if value
    ]
    if contact:
        found |= set(
            session.scalars(
                select(Customer.id).where(Customer.workspace_id == workspace_id, or_(*contact))
            )
        )
    return _with_merges(session, workspace_id, found)


def _locked_profiles(
    session: Session,
    workspace_id: int,
    subject: Subject,
    email: str | None,
    phone: str | None,
    found: set[int],
) -> set[int]:
    """Lock the profiles ``found`` as the inbox does to add a message to one
    (``SELECT ... FOR UPDATE``, in id order), then look for them again, until no new one
    turns up. On PostgreSQL a message the customer writes meanwhile either committed
    before the lock, and what is read after it finds it, or waits for the erasure to end
    and finds its profile gone: none is left behind, its customer deleted under it, with
    their words and number. SQLite has one writer, so the lock is the transaction's own.
    """
    locked: set[int] = set()
    while found - locked:
        session.execute(
            select(Customer.id)
            .where(Customer.workspace_id == workspace_id, Customer.id.in_(found - locked))
            .order_by(Customer.id)
            .with_for_update()
        ).all()
        locked |= found
        found = _profiles(session, workspace_id, subject, email, phone)
    return found


def _with_merges(session: Session, workspace_id: int, found: Iterable[int]) -> set[int]:
    profiles, new = set(found), set(found)
    while new:
        linked = session.execute(
            select(Customer.id, Customer.merged_into_id).where(
                Customer.workspace_id == workspace_id,
                or_(Customer.merged_into_id.in_(new), Customer.id.in_(new)),
            )
        ).all()
        reached = {row.id for row in linked} | {
            row.merged_into_id for row in linked if row.merged_into_id is not None
        }
        new = reached - profiles
        profiles |= new
    return profiles


def events_of(workspace_id: int, held: Held, subject: Subject) -> ColumnElement[bool]:
    """The store events about the customer: theirs, their orders', their checkouts'."""
    subjects = [f"checkout:{checkout}" for checkout in held.checkouts]
    if subject.platform_customer_id:
        subjects.append(f"customer:{subject.platform_customer_id}")
    return (StoreEvent.workspace_id == workspace_id) & or_(
        StoreEvent.customer_id.in_(held.customers),
        StoreEvent.order_external_id.in_(held.orders),
        StoreEvent.subject.in_(subjects),
    )
