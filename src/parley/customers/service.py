"""Finding, creating and updating customers; recording and reading consent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from parley import events
from parley.clock import utc_now
from parley.customers.identity import normalise_email, normalise_phone, timezone_for_phone
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, IdentityKind
from parley.db.upsert import insert_for
from parley.errors import NotFound

IDENTITIES = CustomerIdentity.__table__


@dataclass(frozen=True)
class Contact:
    """The normalised ways to recognise one shopper from a platform record."""

    external_id: str | None
    email: str | None
    phone: str | None

    def identities(self) -> list[tuple[IdentityKind, str]]:
        found: list[tuple[IdentityKind, str]] = []
        if self.external_id:
            found.append((IdentityKind.SHOPIFY, self.external_id))
        if self.email:
            found.append((IdentityKind.EMAIL, self.email))
        if self.phone:
            found.append((IdentityKind.PHONE, self.phone))
        return found


def contact_from(
    customer: events.Customer | None, *, email: str | None = None, phone: str | None = None
) -> Contact:
    """Normalise a platform customer, falling back to the order's own email and phone."""
    country = customer.country_code if customer else None
    return Contact(
        external_id=customer.external_id if customer else None,
        email=normalise_email((customer.email if customer else None) or email),
        phone=normalise_phone(
            (customer.phone if customer else None) or phone, country_code=country
        ),
    )


def get_customer(session: Session, *, workspace_id: int, customer_id: int) -> Customer:
    customer = session.scalar(
        select(Customer).where(Customer.workspace_id == workspace_id, Customer.id == customer_id)
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def find_by_identity(
    session: Session, *, workspace_id: int, kind: IdentityKind, value: str
) -> Customer | None:
    return session.scalar(
        select(Customer)
        .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
        .where(
            CustomerIdentity.workspace_id == workspace_id,
            CustomerIdentity.kind == kind,
            CustomerIdentity.value == value,
        )
    )


def resolve_customer(
    session: Session,
    *,
    workspace_id: int,
    contact: Contact,
    profile: events.Customer | None = None,
    consent_source: str = "platform",
) -> Customer | None:
    """The customer these identities belong to, created when new; None with no identity.

    Identities are tried strongest first (platform id, email, phone). A new profile claims
    its identities with ON CONFLICT DO NOTHING; if a concurrent transaction claimed the
    strongest one first, that profile is used and ours is discarded, so two simultaneous
    deliveries about one new shopper make one customer.
    """
    identities = contact.identities()
    if not identities:
        return None
    customer = None
    for kind, value in identities:
        customer = find_by_identity(session, workspace_id=workspace_id, kind=kind, value=value)
        if customer is not None:
            break
    now = utc_now()
    if customer is None:
        customer = Customer(
            workspace_id=workspace_id,
            created_at=now,
            updated_at=now,
            email=contact.email,
            phone=contact.phone,
        )
        session.add(customer)
        session.flush()
        if not _claim_identity(session, customer, *identities[0], now=now):
            session.execute(delete(Customer).where(Customer.id == customer.id))
            session.expunge(customer)
            kind, value = identities[0]
            customer = find_by_identity(session, workspace_id=workspace_id, kind=kind, value=value)
            assert customer is not None
    for kind, value in identities:
        _claim_identity(session, customer, kind, value, now=now)
    _apply_profile(customer, contact=contact, profile=profile, now=now)
    if profile is not None:
        _apply_platform_consent(session, customer, profile, source=consent_source)
    return customer


def _claim_identity(
    session: Session, customer: Customer, kind: IdentityKind, value: str, *, now: datetime
) -> bool:
    """Attach an identity unless another profile holds it; never moves one (no silent merge)."""
    statement = (
        insert_for(session, IDENTITIES)
        .values(
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            kind=kind,
            value=value,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "kind", "value"])
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def _apply_profile(
    customer: Customer, *, contact: Contact, profile: events.Customer | None, now: datetime
) -> None:
    """Fill gaps always; overwrite only with a platform record newer than the last one seen."""
    stamp = profile.updated_at if profile else None
    is_newer = stamp is not None and (
        customer.source_updated_at is None or stamp >= customer.source_updated_at
    )
    fields = {
        "email": contact.email,
        "phone": contact.phone,
        "first_name": profile.first_name if profile else None,
        "last_name": profile.last_name if profile else None,
        "country_code": profile.country_code if profile else None,
        "timezone": (profile.timezone if profile else None) or timezone_for_phone(contact.phone),
    }
    for name, value in fields.items():
        if value and (is_newer or not getattr(customer, name)):
            setattr(customer, name, value)
    if is_newer:
        customer.source_updated_at = stamp
    customer.updated_at = now


def _apply_platform_consent(
    session: Session, customer: Customer, profile: events.Customer, *, source: str
) -> None:
    for channel, state in (("email", profile.email_marketing), ("sms", profile.sms_marketing)):
        if state is events.ConsentState.UNKNOWN:
            continue
        record_consent(
            session,
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            channel=channel,
            purpose="marketing",
            is_granted=state is events.ConsentState.GRANTED,
            source=source,
            only_if_changed=True,
        )


def record_consent(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    channel: str,
    purpose: str,
    is_granted: bool,
    source: str,
    only_if_changed: bool = False,
) -> ConsentRecord | None:
    """Append one consent statement; with ``only_if_changed``, skip a repeat of the current one."""
    if only_if_changed:
        current = current_consent(session, workspace_id=workspace_id, customer_id=customer_id).get(
            (channel, purpose)
        )
        if current is not None and current.is_granted == is_granted:
            return None
    record = ConsentRecord(
        workspace_id=workspace_id,
        customer_id=customer_id,
        channel=channel,
        purpose=purpose,
        is_granted=is_granted,
        source=source,
        recorded_at=utc_now(),
    )
    session.add(record)
    session.flush()
    return record


def current_consent(
    session: Session, *, workspace_id: int, customer_id: int
) -> dict[tuple[str, str], ConsentRecord]:
    """The latest statement per (channel, purpose) for one customer."""
    records = session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.workspace_id == workspace_id, ConsentRecord.customer_id == customer_id)
        .order_by(ConsentRecord.id)
    )
    return {(record.channel, record.purpose): record for record in records}


def identities_of(
    session: Session, *, workspace_id: int, customer_id: int
) -> list[CustomerIdentity]:
    return list(
        session.scalars(
            select(CustomerIdentity).where(
                CustomerIdentity.workspace_id == workspace_id,
                CustomerIdentity.customer_id == customer_id,
            )
        )
    )


def record_inbound_at(
    session: Session, *, workspace_id: int, kind: IdentityKind, value: str, at: datetime
) -> None:
    """Note that the customer wrote to us on this identity (opens channel windows)."""
    session.execute(
        update(CustomerIdentity)
        .where(
            CustomerIdentity.workspace_id == workspace_id,
            CustomerIdentity.kind == kind,
            CustomerIdentity.value == value,
        )
        .values(last_inbound_at=at)
    )
