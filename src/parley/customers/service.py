"""Finding, creating and updating customers; recording and reading consent."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from parley import events
from parley.clock import utc_now
from parley.customers import merges, suppression
from parley.customers.identity import (
    normalise_email,
    normalise_phone,
    timezone_for_phone,
    whatsapp_phone,
)
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, IdentityKind
from parley.db.base import table_of
from parley.db.scoped import in_workspaces
from parley.db.upsert import insert_on, per_dialect
from parley.errors import NotFound

log = logging.getLogger(__name__)

IDENTITIES = table_of(CustomerIdentity)
CUSTOMERS = table_of(Customer)


@dataclass(frozen=True)
class Contact:
    """The normalised ways to recognise one shopper from a platform record."""

    external_id: str | None
    email: str | None
    phone: str | None
    channel_ids: tuple[tuple[IdentityKind, str], ...] = ()
    """Channel-scoped ids (WhatsApp, Instagram, web chat), weakest of all."""

    def identities(self) -> list[tuple[IdentityKind, str]]:
        """Strongest first: platform id, email, phone, then channel ids."""
        found: list[tuple[IdentityKind, str]] = []
        if self.external_id:
            found.append((IdentityKind.SHOPIFY, self.external_id))
        if self.email:
            found.append((IdentityKind.EMAIL, self.email))
        if self.phone:
            found.append((IdentityKind.PHONE, self.phone))
        found.extend(self.channel_ids)
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


def get_live_customer(session: Session, *, workspace_id: int, customer_id: int) -> Customer:
    """The profile holding this customer's rows now: the one named, or the one it was
    merged into (followed through any later merge of that one). What names a profile
    from before a merge (an unsubscribe link in an email) acts on the shopper, not on the
    emptied profile."""
    customer = get_customer(session, workspace_id=workspace_id, customer_id=customer_id)
    while customer.merged_into_id is not None:
        customer = get_customer(
            session, workspace_id=workspace_id, customer_id=customer.merged_into_id
        )
    return customer


PROFILE_FIELDS = ("email", "phone", "first_name", "last_name", "country_code", "timezone")
Owner = Mapping[Any, Any]
"""Who holds an identity: its customer id, workspace, kind and value, and that customer's
profile fields and ``source_updated_at``."""
Identity = tuple[IdentityKind, str]

_PREFETCHED = "parley.customers.prefetched_owners"


@dataclass
class _Prefetched:
    """Who held which of a group's identities when they were read together."""

    asked: set[Identity] = field(default_factory=set)
    owners: dict[Identity, Owner] = field(default_factory=dict)
    unheld: set[Identity] = field(default_factory=set)
    """Identities no one held, whose suppressions were read too: into ``kept``."""
    kept: dict[tuple[str, str], list[suppression.Kept]] = field(default_factory=dict)


def prefetch_owners(session: Session, *, workspace_id: int, contacts: Iterable[Contact]) -> None:
    """Read who holds a group's shoppers' identities in one statement, before the group's
    records are applied one by one: their lookups in :func:`resolve_customer_id` answer
    from it instead of a statement each.

    It only ever holds what was read. A write of :func:`resolve_customer_id` forgets the
    identities it asked about and every identity of the customer it changed, and a merge
    forgets the store's all, so a lookup after a write in this transaction reads again.
    """
    identities = {identity for contact in contacts for identity in contact.identities()}
    if not identities:
        return
    owners = _read_owners(session, workspace_id=workspace_id, identities=sorted(identities))
    # Several stages of one group (Shopify's, the events API's) may ask about one store.
    memo = session.info.setdefault(_PREFETCHED, {}).setdefault(workspace_id, _Prefetched())
    memo.asked |= identities
    for identity in identities:
        if identity in owners:
            memo.owners[identity] = owners[identity]
        else:
            memo.owners.pop(identity, None)
    # A new identity may be an erased customer's address coming back: its suppressions are
    # looked up for the whole group in one statement too.
    unheld = identities - owners.keys()
    memo.kept.update(suppression.matching(session, workspace_id=workspace_id, identities=unheld))
    memo.unheld |= unheld


def _forget(
    session: Session,
    *,
    workspace_id: int,
    identities: Iterable[Identity] = (),
    customer_id: int | None = None,
    everything: bool = False,
) -> None:
    """Drop prefetched owners a write may have changed (see :func:`prefetch_owners`)."""
    prefetched: dict[int, _Prefetched] = session.info.get(_PREFETCHED, {})
    memo = prefetched.get(workspace_id)
    if memo is None:
        return
    if everything:
        del prefetched[workspace_id]
        return
    gone = set(identities)
    if customer_id is not None:
        gone |= {i for i, owner in memo.owners.items() if owner["customer_id"] == customer_id}
    memo.asked -= gone
    for identity in gone:
        memo.owners.pop(identity, None)


def resolve_customer_id(
    session: Session,
    *,
    workspace_id: int,
    contact: Contact,
    profile: events.Customer | None = None,
    consent_source: str = "platform",
) -> int | None:
    """The id of the customer these identities belong to, created when new; None with none.

    Identities are tried strongest first (platform id, email, phone). A new profile claims
    its strongest identity with ON CONFLICT DO NOTHING; if a concurrent transaction claimed
    it first, that profile is used and ours is discarded, so two simultaneous deliveries
    about one new shopper make one customer. An identity already held by another profile
    is never moved (no silent merge). Runs on the session's connection with prebuilt
    statements: it is on every webhook's path.
    """
    identities = contact.identities()
    if not identities:
        return None
    connection = session.connection()
    now = utc_now()
    owners = _owners(session, workspace_id=workspace_id, identities=identities)
    known = next((owners[i] for i in identities if i in owners), None)
    if known is not None and _is_another_platform_customer(session, contact, owners, known):
        known = None
    claimed: list[Identity] = []
    if known is None:
        unheld = [identity for identity in identities if identity not in owners]
        created, claimed = _create(
            session,
            workspace_id=workspace_id,
            contact=contact,
            profile=profile,
            identities=unheld,
            now=now,
        )
        _forget(session, workspace_id=workspace_id, identities=identities)
        if created is not None:
            owners = {**owners, **dict.fromkeys(claimed, created)}
        else:  # another transaction made this shopper first: theirs is the profile
            owners = _owners(session, workspace_id=workspace_id, identities=identities)
            created = owners[identities[0]]
        current = created
    else:
        current = known
    customer_id = int(current["customer_id"])
    new = list(claimed)
    _merge_linked(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        owners=owners,
        source=consent_source,
        platform_id=contact.external_id,
    )
    missing = [identity for identity in identities if identity not in owners]
    if missing:
        added = {
            (IdentityKind(kind), value)
            for kind, value in connection.execute(
                _claim_identities(session),
                [
                    _identity_row(workspace_id, customer_id, kind, value, now)
                    for kind, value in missing
                ],
            )
        }
        new.extend(identity for identity in missing if identity in added)
        _join_racing_holders(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            identities=[identity for identity in missing if identity not in added],
            source=consent_source,
            platform_id=contact.external_id,
        )
    if new:
        _refuse_kept(session, workspace_id=workspace_id, customer_id=customer_id, identities=new)
    changes = profile_changes(current, contact=contact, profile=profile)
    if changes:
        connection.execute(
            _update_customer(session), {**changes, "updated_at": now, "customer_id": customer_id}
        )
    if missing or changes:
        _forget(session, workspace_id=workspace_id, identities=identities, customer_id=customer_id)
    if profile is not None:
        _apply_platform_consent(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            profile=profile,
            last_applied=current["source_updated_at"],
            source=consent_source,
        )
    return customer_id


def _refuse_kept(
    session: Session, *, workspace_id: int, customer_id: int, identities: list[Identity]
) -> None:
    """Record on the customer every refusal kept through an erasure of someone with one of
    these newly held identities, before anything can be sent to them."""
    memo = session.info.get(_PREFETCHED, {}).get(workspace_id)
    if memo is not None and memo.unheld.issuperset(identities):
        kept = memo.kept
    else:
        kept = suppression.matching(session, workspace_id=workspace_id, identities=identities)
    refused = suppression.refusals(kept, identities)
    if not refused:
        return
    current = current_consent(session, workspace_id=workspace_id, customer_id=customer_id)
    for one in refused:
        record = current.get((one.channel, one.purpose))
        if record is not None and not record.is_granted:
            continue
        record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            channel=one.channel,
            purpose=one.purpose,
            is_granted=False,
            source=f"{suppression.SOURCE} on {one.since:%Y-%m-%d}",
        )
    log.info(
        "customer %s: %d refusal(s) kept through an erasure recorded on the profile",
        customer_id,
        len(refused),
    )


def _is_another_platform_customer(
    session: Session, contact: Contact, owners: dict[tuple[IdentityKind, str], Owner], known: Owner
) -> bool:
    """A new platform id whose email or phone is held by a profile with a different one:
    two store customers sharing an address, never to be merged."""
    if not contact.external_id or (IdentityKind.SHOPIFY, contact.external_id) in owners:
        return False
    return bool(
        merges.platform_ids(
            session, workspace_id=known["workspace_id"], customer_id=known["customer_id"]
        )
    )


def _join_racing_holders(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    identities: list[Identity],
    source: str,
    platform_id: str | None,
) -> None:
    """Identities of this record another transaction claimed while it was stored (the
    shopper's first text committing its phone as the store's record of them arrives):
    their profile is this shopper's too, joined as a record naming both would join them,
    not left a second profile their messages go to."""
    if not identities:
        return
    _forget(session, workspace_id=workspace_id, identities=identities)
    _merge_linked(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        owners=_owners(session, workspace_id=workspace_id, identities=identities),
        source=source,
        platform_id=platform_id,
    )


def _merge_linked(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    owners: dict[tuple[IdentityKind, str], Owner],
    source: str,
    platform_id: str | None,
) -> None:
    """One record naming identities held by different profiles proves they are one shopper:
    fold the others into ``customer_id``, unless their platform ids say two people.

    ``platform_id`` is the record's own, which ``customer_id`` may not hold yet (it is
    claimed after the merges): a new store customer whose email wrote in before, naming
    a phone another store customer holds, shares that phone and is not that customer.
    """
    others: dict[int, list[str]] = {}
    for (kind, value), row in owners.items():
        if row["customer_id"] != customer_id:
            others.setdefault(row["customer_id"], []).append(f"{kind} {value}")
    for other_id, held in sorted(others.items()):
        conflict = merges.conflict_between(
            session,
            workspace_id=workspace_id,
            first_id=customer_id,
            second_id=other_id,
            first_joining=platform_id,
        )
        if conflict is not None:
            log.info("customers %s and %s not merged: %s", customer_id, other_id, conflict)
            continue
        _forget(session, workspace_id=workspace_id, everything=True)
        merges.merge_customers(
            session,
            workspace_id=workspace_id,
            keep_id=customer_id,
            merge_id=other_id,
            reason=f"a {source} record names {', '.join(sorted(held))} together with "
            f"identities of customer {customer_id}",
        )


def _owners(
    session: Session, *, workspace_id: int, identities: list[Identity]
) -> dict[Identity, Owner]:
    """Who holds each of these identities, with that customer's profile: prefetched with
    the group's, or one query."""
    memo = session.info.get(_PREFETCHED, {}).get(workspace_id)
    if memo is not None and memo.asked.issuperset(identities):
        return {
            identity: memo.owners[identity] for identity in identities if identity in memo.owners
        }
    return _read_owners(session, workspace_id=workspace_id, identities=identities)


def _read_owners(
    session: Session, *, workspace_id: int, identities: list[Identity]
) -> dict[Identity, Owner]:
    wanted = set(identities)
    found = session.connection().execute(
        _select_owners(session),
        {
            "workspace_id": workspace_id,
            "kinds": sorted({str(kind) for kind, _ in identities}),
            "values": [value for _, value in identities],
        },
    )
    return {
        (IdentityKind(row.kind), row.value): row._mapping
        for row in found
        if (row.kind, row.value) in wanted
    }


def _create(
    session: Session,
    *,
    workspace_id: int,
    contact: Contact,
    profile: events.Customer | None,
    identities: list[tuple[IdentityKind, str]],
    now: datetime,
) -> tuple[Owner | None, list[tuple[IdentityKind, str]]]:
    """Insert a profile, filled from the record, holding the identities no one held when
    they were read (strongest first), in two statements.

    Returns the new owner of those identities, as :func:`_owners` would read it back, and
    the identities it claimed; or None when a concurrent transaction claimed the strongest
    first: our profile is then discarded, and the identities it claimed go with it.
    """
    connection = session.connection()
    fields = profile_changes(_NO_ONE, contact=contact, profile=profile)
    row = dict.fromkeys(_CREATED_FIELDS) | fields
    customer_id = connection.execute(
        _insert_customer(session),
        {"workspace_id": workspace_id, "created_at": now, "updated_at": now, **row},
    ).scalar_one()
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT that did nothing, so a lost
    # race looked won and left a second profile for one shopper. One statement for all the
    # rows (SQLAlchemy's "insertmanyvalues"), inserted in the order given, strongest first.
    claimed = [
        (IdentityKind(kind), value)
        for kind, value in connection.execute(
            _claim_identities(session),
            [
                _identity_row(workspace_id, customer_id, kind, value, now)
                for kind, value in identities
            ],
        )
    ]
    if identities[0] not in claimed:
        connection.execute(delete(Customer).where(Customer.id == customer_id))
        return None, []
    kind, value = identities[0]
    return {
        "customer_id": int(customer_id),
        "workspace_id": workspace_id,
        "kind": kind,
        "value": value,
        **row,
    }, claimed


_CREATED_FIELDS = (*PROFILE_FIELDS, "source_updated_at")
_NO_ONE: Owner = dict.fromkeys(_CREATED_FIELDS)
"""The owner a new profile starts from: every field empty."""


def profile_changes(
    current: Owner, *, contact: Contact, profile: events.Customer | None
) -> dict[str, Any]:
    """The columns to change: gaps are always filled; set values are overwritten only by a
    platform record at least as new as the last one applied."""
    stamp = profile.updated_at if profile else None
    is_newer = stamp is not None and (
        current["source_updated_at"] is None or stamp >= current["source_updated_at"]
    )
    incoming = {
        "email": contact.email,
        "phone": contact.phone,
        "first_name": profile.first_name if profile else None,
        "last_name": profile.last_name if profile else None,
        "country_code": profile.country_code if profile else None,
        "timezone": profile.timezone if profile else None,
    }
    changes: dict[str, Any] = {
        name: value
        for name, value in incoming.items()
        if value and value != current[name] and (is_newer or not current[name])
    }
    phone = changes.get("phone", current["phone"])
    if not changes.get("timezone", current["timezone"]) and phone:
        zone = timezone_for_phone(phone)
        if zone:
            changes["timezone"] = zone
    if is_newer and stamp != current["source_updated_at"]:
        changes["source_updated_at"] = stamp
    return changes


def _identity_row(
    workspace_id: int, customer_id: int, kind: IdentityKind, value: str, now: datetime
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "customer_id": customer_id,
        "kind": kind,
        "value": value,
        "created_at": now,
    }


@per_dialect
def _claim_identities(dialect: str) -> Any:
    return (
        insert_on(dialect, IDENTITIES)
        .on_conflict_do_nothing(index_elements=["workspace_id", "kind", "value"])
        .returning(IDENTITIES.c.kind, IDENTITIES.c.value)
    )


@per_dialect
def _update_customer(dialect: str) -> Any:
    """SET takes the columns of the parameters it is given, one cached form per set."""
    return update(CUSTOMERS).where(CUSTOMERS.c.id == bindparam("customer_id"))


@per_dialect
def _insert_customer(dialect: str) -> Any:
    return insert_on(dialect, CUSTOMERS).returning(CUSTOMERS.c.id)


@per_dialect
def _select_owners(dialect: str) -> Any:
    return (
        select(
            IDENTITIES.c.customer_id,
            IDENTITIES.c.workspace_id,
            IDENTITIES.c.kind,
            IDENTITIES.c.value,
            *(CUSTOMERS.c[name] for name in PROFILE_FIELDS),
            CUSTOMERS.c.source_updated_at,
        )
        .join(CUSTOMERS, CUSTOMERS.c.id == IDENTITIES.c.customer_id)
        .where(
            # All three columns of the unique index, so the search is by key, never a walk
            # through every identity of the store; the caller drops cross pairs.
            IDENTITIES.c.workspace_id == bindparam("workspace_id"),
            IDENTITIES.c.kind.in_(bindparam("kinds", expanding=True)),
            IDENTITIES.c.value.in_(bindparam("values", expanding=True)),
        )
    )


def _apply_platform_consent(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    profile: events.Customer,
    last_applied: datetime | None,
    source: str,
) -> None:
    """Record the platform's marketing consent where it changes the customer's.

    A record older than the last one applied to the profile (``last_applied``: Shopify
    does not deliver its webhooks in order) is not the platform's word now, and changes
    no consent, as it changes no profile field (:func:`profile_changes`).

    A grant overturns a refusal only if the platform dates the consent after it. Every
    record of a customer carries their consent, so an address edit after a STOP or an
    unsubscribe brings back the store's "subscribed" from before it: dated before, it is
    not applied (:func:`_grant_overturns`).
    """
    stamp = profile.updated_at
    if stamp is not None and last_applied is not None and stamp < last_applied:
        log.info(
            "customer %s: a platform record updated %s, older than the one applied (%s), "
            "changes no consent",
            customer_id,
            stamp.isoformat(),
            last_applied.isoformat(),
        )
        return
    stated = [
        (channel, state, since)
        for channel, state, since in (
            ("email", profile.email_marketing, profile.email_marketing_since),
            ("sms", profile.sms_marketing, profile.sms_marketing_since),
        )
        if state is not events.ConsentState.UNKNOWN
    ]
    if not stated:
        return
    current = current_consent(session, workspace_id=workspace_id, customer_id=customer_id)
    for channel, state, since in stated:
        granted = state is events.ConsentState.GRANTED
        record = current.get((channel, "marketing"))
        if record is not None and record.is_granted == granted:
            continue
        if (
            granted
            and record is not None
            and not _grant_overturns(
                session,
                workspace_id=workspace_id,
                customer_id=customer_id,
                refusal=record,
                since=since,
            )
        ):
            continue
        record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            channel=channel,
            purpose="marketing",
            is_granted=granted,
            source=source,
        )


def _grant_overturns(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    refusal: ConsentRecord,
    since: datetime | None,
) -> bool:
    """Whether a platform's marketing grant dated ``since`` (when the shopper gave it, as
    the platform says) may overturn the customer's standing refusal.

    Only one dated after the refusal may. A refusal kept through an erasure dates from the
    erasure (:func:`_grant_lifts_kept`); any other from when it was recorded. A grant the
    platform does not date proves nothing: the record's own ``updated_at`` moves with any
    edit (an address, a tag), so it would date a stale "subscribed" after the STOP.
    """
    if not refusal.source.startswith(suppression.SOURCE) and (
        since is None or since <= refusal.recorded_at
    ):
        log.info(
            "customer %s: the platform's %s marketing grant (dated %s) is not applied: "
            "they refused it at %s",
            customer_id,
            refusal.channel,
            since.isoformat() if since else "never",
            refusal.recorded_at.isoformat(),
        )
        return False
    # A kept refusal is on the ledger as soon as its address is held (_refuse_kept), and
    # may stand beneath a later one: a grant lifting the one lifts the other.
    return _grant_lifts_kept(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        channel=refusal.channel,
        since=since,
    )


def _grant_lifts_kept(
    session: Session, *, workspace_id: int, customer_id: int, channel: str, since: datetime | None
) -> bool:
    """Whether a platform's marketing grant may stand: no kept refusal, or dated after it
    (which it lifts)."""
    kept = suppression.standing(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        channel=channel,
        purpose="marketing",
    )
    if kept is None:
        return True
    if since is None or since <= kept.since:
        log.info(
            "customer %s: the platform's %s marketing grant (dated %s) is not applied: "
            "they refused it before an erasure on %s",
            customer_id,
            channel,
            since.isoformat() if since else "never",
            f"{kept.since:%Y-%m-%d}",
        )
        return False
    suppression.lift(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        channel=channel,
        purposes=["marketing"],
    )
    return True


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


def consent_history(
    session: Session, *, workspace_id: int, customer_id: int, channel: str
) -> list[ConsentRecord]:
    """Every statement for one channel, oldest first: what a START restores comes from it."""
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(
                ConsentRecord.workspace_id == workspace_id,
                ConsentRecord.customer_id == customer_id,
                ConsentRecord.channel == channel,
            )
            .order_by(ConsentRecord.id)
        )
    )


# Two store customers may share a phone or an email (a family, a shop's front desk): two
# Shopify ids are never merged, so both profiles carry the address, but only the first to
# give it holds its identity (unique per store), and a STOP from the number, like any
# message from it, lands on that holder. A refusal from an address is the address's: it is
# recorded on its holder (record_refusal), and a send to the address from any other
# profile reads the holder's refusals (refusals_at_addresses) as well as its own.
_ADDRESS_KIND: dict[str, IdentityKind] = {
    "email": IdentityKind.EMAIL,
    "sms": IdentityKind.PHONE,
    "whatsapp": IdentityKind.PHONE,
}
"""The identity a channel reaches a profile at: its email, or its phone number."""
Address = tuple[int, IdentityKind, str]
"""An address in a store: (workspace, kind, value)."""


def address_for(customer: Customer, channel: str) -> tuple[IdentityKind, str] | None:
    """The phone or email ``channel`` reaches the customer at; None for a channel whose
    address is an identity of the customer's own (Instagram, web chat) or for none set."""
    kind = _ADDRESS_KIND.get(channel)
    if kind is None:
        return None
    value = customer.email if kind is IdentityKind.EMAIL else customer.phone
    return (kind, value) if value else None


def addresses_held_elsewhere(
    customer: Customer, identities: Iterable[CustomerIdentity]
) -> list[tuple[IdentityKind, str]]:
    """The phone and email the customer is messaged at that are not identities of their
    own (``identities``): another profile of the store holds them."""
    held = {(identity.kind, identity.value) for identity in identities}
    found = {address_for(customer, channel) for channel in _ADDRESS_KIND}
    return sorted(address for address in found if address is not None and address not in held)


def refusals_at_addresses(
    session: Session, *, addresses: Iterable[Address]
) -> dict[Address, dict[tuple[str, str], ConsentRecord]]:
    """The standing refusals of each address's holder on the channels it reaches, in one
    statement searching the identity index by key: a STOP from a number is on its holder's
    ledger, and holds for every profile messaged at the number."""
    wanted = set(addresses)
    if not wanted:
        return {}
    statement = (
        select(
            CustomerIdentity.workspace_id,
            CustomerIdentity.kind,
            CustomerIdentity.value,
            ConsentRecord,
        )
        .join(
            ConsentRecord,
            and_(
                ConsentRecord.workspace_id == CustomerIdentity.workspace_id,
                ConsentRecord.customer_id == CustomerIdentity.customer_id,
            ),
        )
        .where(
            in_workspaces(
                session,
                CustomerIdentity.workspace_id,
                CustomerIdentity.value,
                {(workspace_id, value) for workspace_id, _, value in wanted},
            ),
            CustomerIdentity.kind.in_(sorted({kind for _, kind, _ in wanted})),
        )
        .order_by(ConsentRecord.id)
    )
    latest: dict[Address, dict[tuple[str, str], ConsentRecord]] = {}
    for workspace_id, kind, value, record in session.execute(statement):
        address = (workspace_id, IdentityKind(kind), value)
        if address in wanted and _ADDRESS_KIND.get(record.channel) == address[1]:
            latest.setdefault(address, {})[(record.channel, record.purpose)] = record
    return {
        address: {key: record for key, record in current.items() if not record.is_granted}
        for address, current in latest.items()
    }


def consent_at_address(
    session: Session, *, workspace_id: int, customer_id: int, channel: str, address: str
) -> dict[tuple[str, str], ConsentRecord]:
    """The customer's consent for one message to ``address`` on ``channel``: their own,
    with the refusals of whoever holds the address put over it, so an agent's text to a
    number that said STOP is refused from any profile the number is on."""
    consent = current_consent(session, workspace_id=workspace_id, customer_id=customer_id)
    kind = _ADDRESS_KIND.get(channel)
    if kind is None:
        return consent
    value = whatsapp_phone(address) if channel == "whatsapp" else address
    refused = refusals_at_addresses(session, addresses={(workspace_id, kind, value)})
    return with_refusals(consent, refused.values())


def with_refusals(
    consent: Mapping[tuple[str, str], ConsentRecord],
    refusals: Iterable[Mapping[tuple[str, str], ConsentRecord]],
) -> dict[tuple[str, str], ConsentRecord]:
    """A customer's own consent, with the refusals of the addresses they are messaged at
    put over any grant of theirs: another's "yes" never stands in for theirs, but the
    address's "no" holds whoever the message is for."""
    merged = dict(consent)
    for refused in refusals:
        for key, record in refused.items():
            own = merged.get(key)
            if own is None or own.is_granted:
                merged[key] = record
    return merged


def record_refusal(
    session: Session,
    *,
    workspace_id: int,
    customer: Customer,
    channel: str,
    purposes: Sequence[str],
    source: str,
) -> None:
    """A "no" from the address ``channel`` reaches the customer at (an unsubscribe link in
    an email to it, a carrier's report of a STOP from it): recorded on the customer, and
    on the profile holding the address if another does, so it holds for every profile
    messaged there."""
    profiles = [customer.id]
    address = address_for(customer, channel)
    if address is not None:
        holder = session.scalar(
            select(CustomerIdentity.customer_id).where(
                CustomerIdentity.workspace_id == workspace_id,
                CustomerIdentity.kind == address[0],
                CustomerIdentity.value == address[1],
            )
        )
        if holder is not None and holder != customer.id:
            profiles.append(holder)
    for profile in profiles:
        for purpose in purposes:
            record_consent(
                session,
                workspace_id=workspace_id,
                customer_id=profile,
                channel=channel,
                purpose=purpose,
                is_granted=False,
                source=source,
                only_if_changed=True,
            )
