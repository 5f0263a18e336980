"""What every messaging-provider webhook shares: verify, store raw, apply, acknowledge.

Each provider route reads its request and hands :func:`receive` a verifier and a parser.
``receive`` first checks the signature against *this* workspace's accounts, read in a
short transaction of their own (never any other store's secret), before the body is
parsed at all. Then, through the group commit (receipts come two or three per message
sent, so under load many wait together and share one transaction), it keeps the raw
delivery once (a retried delivery is a duplicate) and applies each event: messages go to
the inbox, receipts to the outbox's statuses. An event naming an account that is not this
workspace's is ignored and logged, so a payload can never pick its store. Only after the
commit is the provider answered 200.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy.orm import Session
from starlette.requests import Request

from parley.channels.base import (
    InboundEvent,
    InboundMessage,
    MalformedWebhook,
    MarketingPreference,
    SignatureError,
    StatusUpdate,
    TemplateReview,
)
from parley.channels.meta import PartlyMalformed
from parley.clock import utc_now
from parley.db import Database
from parley.db.group_commit import group_commit
from parley.db.text import storable
from parley.errors import Invalid, NotFound, TryAgain, Unauthenticated
from parley.inbox import service as inbox
from parley.jobs import queue
from parley.messaging import whatsapp_templates
from parley.store_events import service as store_events
from parley.store_events.service import Delivery, DeliveryRecord
from parley.workspaces.access import AccountKeys, ProviderAccess, provider_access_cache
from parley.workspaces.models import Workspace

log = logging.getLogger(__name__)

# A receipt can overtake the record of the send it is about; try it again shortly.
STATUS_RETRY_DELAY = timedelta(seconds=5)


@dataclass(frozen=True)
class Parsed:
    """Events read from a body, or why it could not be read (told only after verifying)."""

    events: list[InboundEvent] = field(default_factory=list)
    problem: str | None = None
    unreadable: list[str] = field(default_factory=list)
    """Why parts of a batch could not be read while others could: the delivery is still
    applied (the provider would resend the same bytes forever) and its raw body kept."""


def parse_with(parse: Callable[[], list[InboundEvent]]) -> Parsed:
    try:
        return Parsed(events=parse())
    except PartlyMalformed as exc:
        if not exc.events:
            return Parsed(problem=str(exc))
        return Parsed(events=exc.events, unreadable=exc.problems)
    except MalformedWebhook as exc:
        return Parsed(problem=str(exc))


def nudge_worker(request: Request) -> None:
    """Wake this process's embedded worker: the assistant's reply should not wait a poll."""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.nudge()


def delivery_key(body: bytes) -> str:
    """Providers without a delivery id resend the same bytes: the body's hash is its key."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class InboundDelivery:
    """One provider request, as its route read it: how to verify it and how to parse it."""

    provider: str
    key: str
    """What makes a retried delivery a duplicate (a body hash, MessageSid + status...)."""
    body: str
    headers: dict[str, str]
    verify: Callable[[Sequence[AccountKeys]], None]
    parse: Callable[[], list[InboundEvent]]


@dataclass(frozen=True)
class CheckedDelivery:
    """A delivery whose signature matched one of its workspace's accounts, parsed."""

    workspace_id: int
    addresses: Mapping[str, str]
    """The workspace's account addresses on this provider, by their lower case."""
    delivery: Delivery
    events: list[InboundEvent]
    unreadable: list[str] = field(default_factory=list)
    """Parts of the body that could not be read (see :class:`Parsed`)."""

    @property
    def reason(self) -> str | None:
        """What the stored delivery says of itself: the parts left unread, if any."""
        return "; ".join(self.unreadable) or None


async def receive(db: Database, slug: str, delivery: InboundDelivery) -> dict[str, object]:
    """Verify and parse, then store and apply through the group commit (deliveries
    waiting together share a transaction); the JSON answer for the provider."""
    try:
        return await group_commit(db).run(lambda: check(db, slug, delivery), store, stage=stage)
    except inbox.DuplicateMessage as exc:
        # Another delivery carrying one of these messages committed it meanwhile; this
        # one's other events were rolled back with it, so the provider must resend.
        raise TryAgain("a message in this delivery was being stored concurrently") from exc


def check(db: Database, slug: str, delivery: InboundDelivery) -> CheckedDelivery:
    """Everything that may refuse a delivery, before any write: the workspace (404), the
    signature against *its* accounts (401), then the body (422). A batch of which only
    some parts are unreadable is not refused: the rest is applied and the raw delivery
    kept with the reason, as a retry would carry the same bad part again.

    The accounts are what this process read of them within the last second; a signature
    they do not match is checked again against a fresh read before it is refused, so a
    secret changed elsewhere works on its first delivery.
    """
    provider = delivery.provider
    cache = provider_access_cache(db)
    access = cache.get((slug, provider))
    try:
        workspace_id = _verified(slug, provider, access, delivery)
    except SignatureError:
        access = cache.refreshed((slug, provider))
        try:
            workspace_id = _verified(slug, provider, access, delivery)
        except SignatureError as exc:
            log.warning("%s webhook for %s refused: %s", provider, slug, exc)
            raise Unauthenticated(f"signature check failed: {exc}") from exc
    addresses = {account.address.lower(): account.address for account in access.accounts}
    parsed = parse_with(delivery.parse)
    if parsed.problem is not None:
        log.warning("%s webhook for %s refused: %s", provider, slug, parsed.problem)
        raise Invalid(parsed.problem)
    for problem in parsed.unreadable:
        log.warning("%s webhook for %s: a part was left unread: %s", provider, slug, problem)
    return CheckedDelivery(
        workspace_id=workspace_id,
        addresses=addresses,
        delivery=Delivery(
            source=provider,
            delivery_key=storable(delivery.key),
            topic=provider,
            headers={name: storable(value) for name, value in delivery.headers.items()},
            body=storable(delivery.body),
        ),
        # Text no database can store is kept replaced (parley.db.text): refused, the
        # same bytes would fail on every retry and the message be lost for good.
        events=[storable(event) for event in parsed.events],
        unreadable=parsed.unreadable,
    )


def _verified(slug: str, provider: str, access: ProviderAccess, delivery: InboundDelivery) -> int:
    """The workspace's id once the delivery's signature matches one of its accounts."""
    if access.workspace is None:
        raise NotFound(f"unknown workspace {slug!r}")
    if not access.accounts:
        raise SignatureError(f"no {provider} account is connected")
    delivery.verify(access.accounts)
    return access.workspace.id


def stage(session: Session, group: list[CheckedDelivery]) -> None:
    """A group commit's deliveries recorded together, before each is applied."""
    store_events.record_deliveries(
        session,
        [
            DeliveryRecord(
                checked.workspace_id, checked.delivery, store_events.PROCESSED, checked.reason
            )
            for checked in group
        ],
    )


def store(session: Session, checked: CheckedDelivery) -> dict[str, object]:
    """Keep the raw delivery once and apply its events, in the caller's (maybe shared)
    transaction; acts on nothing outside it, as a group commit may run it twice."""
    workspace = session.get_one(Workspace, checked.workspace_id)
    provider = checked.delivery.source
    stored = store_events.record_delivery(
        session,
        workspace=workspace,
        delivery=checked.delivery,
        status=store_events.PROCESSED,
        reason=checked.reason,
    )
    if stored is None:
        return {"status": "duplicate"}
    counts = {
        "messages": 0,
        "statuses": 0,
        "duplicates": 0,
        "ignored": 0,
        "templates": 0,
        "preferences": 0,
        "malformed": len(checked.unreadable),
    }
    for event in checked.events:
        if event.account is not None:
            pool = (
                event.messaging_service
                if isinstance(event, InboundMessage | StatusUpdate)
                else None
            )
            address = _own_address(checked.addresses, account=event.account, pool=pool)
            if address is None:
                log.warning(
                    "%s webhook for %s names another account; ignored", provider, workspace.slug
                )
                counts["ignored"] += 1
                continue
            event = replace(event, account=address)
        if isinstance(event, InboundMessage):
            _apply_message(session, workspace, event, counts)
        elif isinstance(event, TemplateReview):
            _apply_review(session, workspace, event, counts)
        elif isinstance(event, MarketingPreference):
            inbox.apply_marketing_preference(session, workspace=workspace, preference=event)
            counts["preferences"] += 1
        else:
            _apply_status(session, workspace, event, counts)
    return {"status": "accepted", **counts}


def _own_address(addresses: Mapping[str, str], *, account: str, pool: str | None) -> str | None:
    """The workspace's own address an event names (as the account stores it), or None
    when it names another store's.

    Through a sender pool (a Twilio Messaging Service) an event names the pool's number
    (``account``) and the pool: a store whose address is the pool owns it, and its inbound
    messages keep the pool as the address written to, so the reply goes out through it
    too. A store whose address is the number owns it as any event naming its number.
    """
    for named in (pool, account):
        if named is not None and named.lower() in addresses:
            return addresses[named.lower()]
    return None


def _apply_message(
    session: Session, workspace: Workspace, event: InboundMessage, counts: dict[str, int]
) -> None:
    if event.is_echo:
        counts["ignored"] += 1
        return
    received = inbox.record_inbound(session, workspace=workspace, inbound=event)
    counts["duplicates" if received.is_duplicate else "messages"] += 1


def _apply_review(
    session: Session, workspace: Workspace, event: TemplateReview, counts: dict[str, int]
) -> None:
    counts["templates"] += 1
    change = whatsapp_templates.apply_review(
        session, workspace_id=workspace.id, review=event, now=utc_now()
    )
    if change is not None:
        log.warning("WhatsApp template for %s changed at Meta: %s", workspace.slug, change)


def _apply_status(
    session: Session, workspace: Workspace, event: StatusUpdate, counts: dict[str, int]
) -> None:
    counts["statuses"] += 1
    if inbox.apply_status(session, workspace_id=workspace.id, status=event):
        return
    queue.enqueue(
        session,
        kind=inbox.RETRY_STATUS,
        payload=inbox.status_payload(event),
        workspace_id=workspace.id,
        due_at=utc_now() + STATUS_RETRY_DELAY,
        idempotency_key=f"status:{event.channel}:{event.provider_message_id}:{event.status}",
        max_attempts=5,
    )
