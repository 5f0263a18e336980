"""``POST /webhooks/shopify/{workspace}``: Shopify's deliveries.

Plain Starlette, no FastAPI dependency machinery: this route takes a store's whole event
stream and is kept as lean as the framework allows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse

from parley.clock import utc_now
from parley.db import Database
from parley.db.group_commit import group_commit
from parley.errors import Invalid, NotFound, PermissionDenied, Unauthenticated
from parley.events import Event, EventType
from parley.integrations.shopify import compliance, signature
from parley.integrations.shopify.mapping import MalformedPayload, UnknownTopic, map_delivery
from parley.privacy import service as privacy
from parley.privacy.service import CustomerRequest, StoreErasure
from parley.store_events import service as store_events
from parley.store_events.models import DELIVERY_KEY_LENGTH
from parley.store_events.service import Delivery, DeliveryRecord
from parley.workspaces import service as workspaces
from parley.workspaces.access import access_cache
from parley.workspaces.service import WorkspaceAccess

log = logging.getLogger(__name__)

KEPT_HEADERS = (
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "x-shopify-triggered-at",
    "x-shopify-api-version",
)


def _header(request: Request, name: str) -> str | None:
    # Newer deliveries may drop the X- prefix (e.g. ``shopify-hmac-sha256``).
    return request.headers.get(f"x-{name}") or request.headers.get(name)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


@dataclass(frozen=True)
class ShopifyHeaders:
    """The delivery headers parley reads, and the ones it keeps with the raw body."""

    hmac: str | None
    topic: str | None
    shop_domain: str | None
    webhook_id: str | None
    event_id: str | None
    triggered_at: str | None
    kept: dict[str, str]

    @classmethod
    def of(cls, request: Request) -> ShopifyHeaders:
        return cls(
            hmac=_header(request, "shopify-hmac-sha256"),
            topic=_header(request, "shopify-topic"),
            shop_domain=_header(request, "shopify-shop-domain"),
            webhook_id=_header(request, "shopify-webhook-id"),
            event_id=_header(request, "shopify-event-id"),
            triggered_at=_header(request, "shopify-triggered-at"),
            kept={name: value for name in KEPT_HEADERS if (value := request.headers.get(name))},
        )


@dataclass(frozen=True)
class Parsed:
    """A delivery read and mapped, or the reason it could not be."""

    delivery: Delivery | None = None
    mapped: list[Event] | None = None
    request: CustomerRequest | StoreErasure | None = None
    """A compliance topic's privacy request (then ``mapped`` is None)."""
    problem: Exception | None = None


def parse(headers: ShopifyHeaders, body: bytes) -> Parsed:
    """Decode and map a delivery whose signature matched: pure work, done before the
    database is written. Only a signed body is parsed, so a forged one costs no parsing
    and is a 401 whatever it holds."""
    topic = headers.topic
    if not topic:
        return Parsed(problem=Invalid("X-Shopify-Topic header is missing"))
    key = headers.event_id or headers.webhook_id
    if not key:
        return Parsed(problem=Invalid("X-Shopify-Webhook-Id header is missing"))
    if len(key) > DELIVERY_KEY_LENGTH:
        name = "X-Shopify-Event-Id" if headers.event_id else "X-Shopify-Webhook-Id"
        return Parsed(
            problem=Invalid(f"{name} header is longer than {DELIVERY_KEY_LENGTH} characters")
        )
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except ValueError as exc:  # also bad UTF-8, and an integer past Python's 4300 digits
        return Parsed(problem=Invalid(f"body is not valid JSON: {exc}"))
    except RecursionError:
        return Parsed(problem=Invalid("body nests JSON too deeply"))
    triggered_at = _parse_time(headers.triggered_at)
    delivery = Delivery(
        source="shopify",
        delivery_key=key,
        topic=topic,
        headers=headers.kept,
        body=text,
        triggered_at=triggered_at,
    )
    if topic in compliance.TOPICS:
        try:
            return Parsed(delivery=delivery, request=compliance.read_request(topic, payload))
        except MalformedPayload as exc:
            return Parsed(problem=exc)
    try:
        mapped = map_delivery(topic, payload, received_at=triggered_at or utc_now())
    except UnknownTopic:
        return Parsed(delivery=delivery)
    except MalformedPayload as exc:
        return Parsed(problem=exc)
    return Parsed(delivery=delivery, mapped=mapped)


@dataclass(frozen=True)
class Verified:
    """A delivery whose signature matched its workspace's secrets, parsed and mapped
    (``mapped`` is None for a topic parley does not use)."""

    workspace: WorkspaceAccess
    delivery: Delivery
    mapped: list[Event] | None
    request: CustomerRequest | StoreErasure | None = None


@dataclass(frozen=True)
class Answer:
    """What to tell Shopify, once the writes are committed."""

    body: dict[str, object]
    uninstalled: bool = False


def verify(db: Database, slug: str, headers: ShopifyHeaders, body: bytes) -> Verified:
    """Check the signature and the shop, then parse and map: everything done before the
    database is written. Raises the refusal (404, 401, 403 for another shop's delivery,
    then 422 for a malformed body)."""
    workspace = _verified_workspace(db, slug, headers, body)
    _check_shop(workspace, headers)
    parsed = parse(headers, body)
    if parsed.problem is not None:
        log.warning("shopify %s for %s refused: %s", headers.topic, slug, parsed.problem)
        raise parsed.problem
    assert parsed.delivery is not None
    return Verified(
        workspace=workspace,
        delivery=parsed.delivery,
        mapped=parsed.mapped,
        request=parsed.request,
    )


def store(session: Session, verified: Verified) -> Answer:
    """Store and plan a verified delivery in the caller's transaction. Acts on nothing
    outside it: a group commit may roll this back and run it again."""
    delivery, mapped = verified.delivery, verified.mapped
    if verified.request is not None:
        return _take_request(session, verified, verified.request)
    if mapped is None:
        status, reason = _recorded_as(verified)
        store_events.record_delivery(
            session, workspace=verified.workspace, delivery=delivery, status=status, reason=reason
        )
        return Answer({"status": "ignored", "reason": f"unhandled topic {delivery.topic}"})
    result = store_events.ingest(
        session, workspace=verified.workspace, delivery=delivery, mapped=mapped
    )
    uninstalled = any(event.type is EventType.STORE_UNINSTALLED for event in mapped)
    if result.is_duplicate:
        return Answer({"status": "duplicate"}, uninstalled)
    return Answer(
        {"status": "accepted", "events": result.events, "journeys_started": result.runs_started},
        uninstalled,
    )


def _take_request(
    session: Session, verified: Verified, request: CustomerRequest | StoreErasure
) -> Answer:
    """A compliance delivery: stored, and its request queued for a job, once."""
    delivery_id = store_events.record_delivery(
        session,
        workspace=verified.workspace,
        delivery=verified.delivery,
        status=store_events.PROCESSED,
        reason=None,
    )
    if delivery_id is None:
        return Answer({"status": "duplicate"})
    workspace_id, now = verified.workspace.id, utc_now()
    if isinstance(request, StoreErasure):
        privacy.receive_store_erasure(
            session, workspace_id=workspace_id, erasure=request, delivery_id=delivery_id, now=now
        )
        return Answer({"status": "accepted", "request": "store erasure"})
    request_id = privacy.receive_customer_request(
        session, workspace_id=workspace_id, request=request, delivery_id=delivery_id, now=now
    )
    return Answer({"status": "accepted", "request": request.kind.value, "id": request_id})


def stage(session: Session, group: list[Verified]) -> None:
    """A group commit's deliveries recorded together, and their shoppers looked up
    together, before each is applied."""
    store_events.record_deliveries(
        session,
        [
            DeliveryRecord(verified.workspace.id, verified.delivery, *_recorded_as(verified))
            for verified in group
        ],
    )
    store_events.prefetch_shoppers(
        session,
        [(verified.workspace.id, verified.mapped) for verified in group if verified.mapped],
    )


def _recorded_as(verified: Verified) -> tuple[str, str | None]:
    """The status (and reason) a delivery's raw row gets."""
    if verified.mapped is None and verified.request is None:
        return "ignored", f"topic {verified.delivery.topic!r} is not used by parley"
    return store_events.PROCESSED, None


def committed(db: Database, slug: str, answer: Answer) -> dict[str, object]:
    """After the commit: a store that uninstalled parley is forgotten at once."""
    if answer.uninstalled:
        access_cache(db).forget(slug)
    return answer.body


def receive(db: Database, slug: str, headers: ShopifyHeaders, body: bytes) -> dict[str, object]:
    """Verify, then store and plan in a transaction of its own; the answer to give Shopify.

    The signature check, parsing and mapping happen first, outside the transaction, so
    the database (on SQLite, its one writer) is held only for the writes. The route does
    the same through a group commit.
    """
    verified = verify(db, slug, headers, body)
    with db.transaction() as session:
        answer = store(session, verified)
    return committed(db, slug, answer)


def _verified_workspace(
    db: Database, slug: str, headers: ShopifyHeaders, body: bytes
) -> WorkspaceAccess:
    """The workspace, once the delivery's signature matches one of its secrets; a secret
    that does not match what this process remembers is read again before refusing."""
    cache = access_cache(db)
    workspace = cache.get(slug)
    if workspace is not None and not _signed_for(workspace, headers, body):
        workspace = cache.refreshed(slug)
    if workspace is None:
        raise NotFound(f"unknown workspace {slug!r}")
    if not _signed_for(workspace, headers, body):
        log.warning(
            "shopify webhook for %s refused: bad or missing HMAC (topic=%s, webhook_id=%s)",
            slug,
            headers.topic,
            headers.webhook_id,
        )
        raise Unauthenticated("HMAC signature does not match")
    return workspace


def _check_shop(workspace: WorkspaceAccess, headers: ShopifyHeaders) -> None:
    """Refuse a delivery naming another shop than the one the workspace records.

    Every store installed from one Shopify app shares its secret, so the signature alone
    does not say which store a delivery is for: posted to another store's route, it would
    act on that store (RELIABILITY T2). A workspace with no shop recorded has only its
    own secret to go by.
    """
    recorded, named = workspace.shopify_shop_domain, headers.shop_domain
    if recorded is None or named is None or named.lower() == recorded.lower():
        return
    log.warning(
        "shopify webhook for %s refused: it is for shop %s, the store is %s (topic=%s,"
        " webhook_id=%s)",
        workspace.slug,
        named,
        recorded,
        headers.topic,
        headers.webhook_id,
    )
    raise PermissionDenied(f"this delivery is for {named}, not this store's shop")


def _signed_for(workspace: WorkspaceAccess, headers: ShopifyHeaders, body: bytes) -> bool:
    secrets = workspaces.shopify_secrets(workspace, now=utc_now())
    return signature.verify(body, headers.hmac, secrets)


async def shopify_webhook(request: Request) -> JSONResponse:
    body = await request.body()
    db: Database = request.app.state.db
    slug = request.path_params["workspace"]
    headers = ShopifyHeaders.of(request)
    answer = await group_commit(db).run(lambda: verify(db, slug, headers, body), store, stage=stage)
    return JSONResponse(committed(db, slug, answer))
