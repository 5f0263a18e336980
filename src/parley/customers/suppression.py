"""Opt-outs that outlive an erasure (RELIABILITY P3).

A customer who said no (STOP on SMS, an unsubscribe link, "unsubscribed" at the store)
and then asked to be erased must stay unreachable for what they refused: the store's next
import of its customer list brings their address back, often still marked "subscribed"
from before the STOP, and without a trace of the "no" parley would message them again.

So the erasure keeps, for each channel and purpose they had refused, a **suppression**:
a keyed hash (HMAC-SHA256) of each address the refusal covered, never the address. When
an address comes back in the same store (a platform import, an order, a message they
write), the hash matches and the refusal is recorded on the new profile before anything
can be sent. The key is derived from ``PARLEY_SECRET_KEY`` (HKDF, a label of its own), so
the table alone, a dump or a backup, cannot be turned back into phone numbers by trying
them all; former keys listed in ``PARLEY_CREDENTIALS_PREVIOUS_SECRET_KEYS`` still match,
and a key dropped from that list forgets the suppressions made with it.

What lifts one is a new "yes" given after the erasure: the customer's own START on the
channel, or a platform grant whose consent is dated after the suppression. A platform
grant without a date, or dated before, is the old state coming back, and is not applied.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from parley.customers.identity import normalise_phone
from parley.customers.models import ConsentRecord, CustomerIdentity, IdentityKind, Suppression
from parley.db.base import table_of
from parley.db.upsert import insert_on, per_dialect

log = logging.getLogger(__name__)

_HKDF_INFO = b"parley suppression tokens v1"
SUPPRESSIONS = table_of(Suppression)

# The address a channel reaches someone at, by the kind of identity that holds it. SMS and
# WhatsApp both reach a phone number; a WhatsApp id is the number without its "+".
_ADDRESS_OF_CHANNEL = {
    "email": "email",
    "sms": "phone",
    "whatsapp": "phone",
    "instagram": "instagram",
    "webchat": "webchat",
}
SOURCE = "kept through an erasure"
"""The consent ledger's ``source`` for a refusal a suppression brought back."""


@dataclass(frozen=True)
class Kept:
    """One suppression that matched: what was refused, and since when."""

    channel: str
    purpose: str
    since: datetime


@lru_cache(maxsize=1)
def _keys() -> tuple[bytes, ...]:
    """The current key first, then each former one still listed."""
    from parley.settings import get_settings

    settings = get_settings()
    return tuple(
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            secret.encode()
        )
        for secret in (settings.secret_key, *settings.credentials_previous_secret_keys)
    )


def address_of(kind: str, value: str) -> tuple[str, str] | None:
    """The address an identity is, in one spelling whatever its source; None for the
    platform's own customer id, which no one is messaged at."""
    if kind == IdentityKind.SHOPIFY:
        return None
    if kind == IdentityKind.WHATSAPP:
        phone = normalise_phone(value if value.startswith("+") else f"+{value}")
        return ("phone", phone) if phone else None
    return str(kind), value


def _digest(key: bytes, address: tuple[str, str]) -> str:
    kind, value = address
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def digests(identities: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Every hash, under every key, of these identities' addresses, to the address."""
    found: dict[str, tuple[str, str]] = {}
    for kind, value in identities:
        address = address_of(kind, value)
        if address is not None:
            for key in _keys():
                found[_digest(key, address)] = address
    return found


def keep(
    session: Session,
    *,
    workspace_id: int,
    identities: Iterable[tuple[str, str]],
    consent: Iterable[ConsentRecord],
    now: datetime,
) -> int:
    """Before an erasure: keep every refusal standing in ``consent`` (the customer's
    latest statement per channel and purpose, across their profiles) for each address of
    ``identities`` that channel reaches. Returns how many (address, channel, purpose) are
    now kept."""
    addresses = {a for kind, value in identities if (a := address_of(kind, value)) is not None}
    key = _keys()[0]
    refused = {(r.channel, r.purpose) for r in consent if not r.is_granted}
    rows = [
        {
            "workspace_id": workspace_id,
            "digest": _digest(key, address),
            "channel": channel,
            "purpose": purpose,
            "created_at": now,
        }
        for channel, purpose in sorted(refused)
        for address in sorted(addresses)
        if address[0] == _ADDRESS_OF_CHANNEL.get(channel)
    ]
    if rows:
        session.connection().execute(_insert(session), rows)
    return len(rows)


@per_dialect
def _insert(dialect: str) -> Any:
    return insert_on(dialect, SUPPRESSIONS).on_conflict_do_nothing(
        index_elements=["workspace_id", "digest", "channel", "purpose"]
    )


@per_dialect
def _select(dialect: str) -> Any:
    return select(
        SUPPRESSIONS.c.digest,
        SUPPRESSIONS.c.channel,
        SUPPRESSIONS.c.purpose,
        SUPPRESSIONS.c.created_at,
    ).where(
        SUPPRESSIONS.c.workspace_id == bindparam("workspace_id"),
        SUPPRESSIONS.c.digest.in_(bindparam("digests", expanding=True)),
    )


def matching(
    session: Session, *, workspace_id: int, identities: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[Kept]]:
    """The suppressions these identities' addresses match, by address."""
    wanted = digests(identities)
    if not wanted:
        return {}
    found: dict[tuple[str, str], list[Kept]] = {}
    for row in session.connection().execute(
        _select(session), {"workspace_id": workspace_id, "digests": sorted(wanted)}
    ):
        found.setdefault(wanted[row.digest], []).append(
            Kept(row.channel, row.purpose, row.created_at)
        )
    return found


def refusals(
    kept: Mapping[tuple[str, str], list[Kept]], identities: Iterable[tuple[str, str]]
) -> list[Kept]:
    """What the suppressions in ``kept`` refuse to someone known by ``identities``: each
    (channel, purpose) once, with its latest suppression, so a grant must be dated after
    that one to lift it. A suppression counts only under an address its channel reaches
    (an SMS refusal of a number, not of an email)."""
    latest: dict[tuple[str, str], Kept] = {}
    for kind, value in identities:
        address = address_of(kind, value)
        if address is None:
            continue
        for one in kept.get(address, []):
            if _ADDRESS_OF_CHANNEL.get(one.channel) != address[0]:
                continue
            known = latest.get((one.channel, one.purpose))
            if known is None or one.since > known.since:
                latest[(one.channel, one.purpose)] = one
    return [latest[pair] for pair in sorted(latest)]


def _identities_of(
    session: Session, *, workspace_id: int, customer_id: int
) -> list[tuple[str, str]]:
    return [
        (row.kind, row.value)
        for row in session.execute(
            select(CustomerIdentity.kind, CustomerIdentity.value).where(
                CustomerIdentity.workspace_id == workspace_id,
                CustomerIdentity.customer_id == customer_id,
            )
        )
    ]


def standing(
    session: Session, *, workspace_id: int, customer_id: int, channel: str, purpose: str
) -> Kept | None:
    """The suppression, if any, that still refuses this customer ``purpose`` on
    ``channel``."""
    identities = _identities_of(session, workspace_id=workspace_id, customer_id=customer_id)
    kept = matching(session, workspace_id=workspace_id, identities=identities)
    return next(
        (
            one
            for one in refusals(kept, identities)
            if one.channel == channel and one.purpose == purpose
        ),
        None,
    )


def lift(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    channel: str,
    purposes: Iterable[str],
) -> int:
    """A new "yes" from the customer: drop the suppressions of ``purposes`` on
    ``channel`` for every address they hold. Returns how many were dropped."""
    identities = _identities_of(session, workspace_id=workspace_id, customer_id=customer_id)
    wanted = [
        digest
        for digest, address in digests(identities).items()
        if address[0] == _ADDRESS_OF_CHANNEL.get(channel)
    ]
    if not wanted:
        return 0
    result = session.execute(
        delete(Suppression).where(
            Suppression.workspace_id == workspace_id,
            Suppression.digest.in_(wanted),
            Suppression.channel == channel,
            Suppression.purpose.in_(list(purposes)),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
