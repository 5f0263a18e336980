"""What every messaging-provider webhook shares: verify, store raw, apply, acknowledge.

Each provider route reads its request and hands :func:`receive` a verifier and a parser.
In one transaction ``receive`` checks the signature against *this* workspace's accounts
(never any other store's secret) before the body is parsed at all, keeps the raw delivery
once (a retried delivery is a duplicate), and applies each event: messages go to the
inbox, receipts to the outbox's statuses. An event naming an account that is not this
workspace's is ignored and logged, so a payload can never pick its store. Only then is
the provider answered 200.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request

from parley.channels.base import (
    InboundEvent,
    InboundMessage,
    MalformedWebhook,
    SignatureError,
    StatusUpdate,
)
from parley.clock import utc_now
from parley.db import Database
from parley.errors import Invalid, NotFound, TryAgain, Unauthenticated
from parley.inbox import service as inbox
from parley.jobs import queue
from parley.store_events import service as store_events
from parley.store_events.service import Delivery
from parley.workspaces import service as workspaces
from parley.workspaces.models import ChannelAccount, Workspace

log = logging.getLogger(__name__)

# A receipt can overtake the record of the send it is about; try it again shortly.
STATUS_RETRY_DELAY = timedelta(seconds=5)


@dataclass(frozen=True)
class Parsed:
    """Events read from a body, or why it could not be read (told only after verifying)."""

    events: list[InboundEvent] = field(default_factory=list)
    problem: str | None = None


def parse_with(parse: Callable[[], list[InboundEvent]]) -> Parsed:
    try:
        return Parsed(events=parse())
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
    verify: Callable[[list[ChannelAccount]], None]
    parse: Callable[[], list[InboundEvent]]


def receive(db: Database, slug: str, delivery: InboundDelivery) -> dict[str, object]:
    """Verify, parse, store and apply one delivery; the JSON answer for the provider."""
    try:
        with db.transaction() as session:
            return _receive(session, slug, delivery)
    except inbox.DuplicateMessage as exc:
        # Another delivery carrying one of these messages committed it meanwhile; this
        # one's other events were rolled back with it, so the provider must resend.
        raise TryAgain("a message in this delivery was being stored concurrently") from exc


def _receive(session: Session, slug: str, delivery: InboundDelivery) -> dict[str, object]:
    provider = delivery.provider
    workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        raise NotFound(f"unknown workspace {slug!r}")
    accounts = workspaces.channel_accounts(session, workspace_id=workspace.id, provider=provider)
    try:
        if not accounts:
            raise SignatureError(f"no {provider} account is connected")
        delivery.verify(accounts)
    except SignatureError as exc:
        log.warning("%s webhook for %s refused: %s", provider, slug, exc)
        raise Unauthenticated(f"signature check failed: {exc}") from exc
    parsed = parse_with(delivery.parse)
    if parsed.problem is not None:
        log.warning("%s webhook for %s refused: %s", provider, slug, parsed.problem)
        raise Invalid(parsed.problem)
    stored = store_events.record_delivery(
        session,
        workspace=workspace,
        delivery=Delivery(
            source=provider,
            delivery_key=delivery.key,
            topic=provider,
            headers=delivery.headers,
            body=delivery.body,
        ),
        status="processed",
        reason=None,
    )
    if stored is None:
        return {"status": "duplicate"}
    addresses = {account.address.lower() for account in accounts}
    counts = {"messages": 0, "statuses": 0, "duplicates": 0, "ignored": 0}
    for event in parsed.events:
        if event.account is not None and event.account.lower() not in addresses:
            log.warning("%s webhook for %s names another account; ignored", provider, slug)
            counts["ignored"] += 1
        elif isinstance(event, InboundMessage):
            _apply_message(session, workspace, event, counts)
        else:
            _apply_status(session, workspace, event, counts)
    return {"status": "accepted", **counts}


def _apply_message(
    session: Session, workspace: Workspace, event: InboundMessage, counts: dict[str, int]
) -> None:
    if event.is_echo:
        counts["ignored"] += 1
        return
    received = inbox.record_inbound(session, workspace=workspace, inbound=event)
    counts["duplicates" if received.is_duplicate else "messages"] += 1


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
