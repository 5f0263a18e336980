"""Test doubles and builders shared across the suite (imported as ``support``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import func, select, text

import parley.db.models  # noqa: F401  (every table registered, for every_row)
from parley import clock
from parley.assistant.classifier import Prediction
from parley.assistant.intents import Intent
from parley.assistant.service import Respond
from parley.channels.base import (
    Capabilities,
    ChannelKind,
    InboundMessage,
    OutboundMessage,
    SendResult,
    TemplateReview,
)
from parley.db import Database
from parley.db.base import Base
from parley.demo.seed import SHOPPERS, seed_demo
from parley.demo.simulate import order_lifecycle
from parley.http.webhooks.shopify import ShopifyHeaders, Verified, receive, verify
from parley.inbox import service as inbox
from parley.inbox.service import Received
from parley.inbox.tasks import ApplyStatusLater
from parley.integrations.shopify import payloads
from parley.jobs.periodic import enqueue_ticks
from parley.jobs.worker import Worker, WorkerConfig
from parley.journeys import service as journeys
from parley.journeys.engine import AdvanceJourney
from parley.messaging import whatsapp_templates
from parley.messaging.delivery import DeliverMessage
from parley.messaging.pace import Pacer
from parley.messaging.sending_domain import CHECK_SCHEDULE, DomainCheckTask
from parley.messaging.service import OutboxSettings
from parley.messaging.templates import TemplateRenderer
from parley.workspaces.models import Workspace

SECRET = "test-shopify-secret"
API_KEY = "test-api-key"


@dataclass
class RecordingAdapter:
    """A channel that records what it was asked to send; ``script`` can make it fail."""

    kind: ChannelKind
    sent: list[OutboundMessage] = field(default_factory=list)
    script: list[Exception] = field(default_factory=list)
    provider: ClassVar[str] = "recording"
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_len=10_000)
    _ids: itertools.count = field(default_factory=itertools.count)

    @classmethod
    def from_settings(cls, settings: Any) -> RecordingAdapter:
        raise NotImplementedError

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.script:
            raise self.script.pop(0)
        self.sent.append(message)
        return SendResult(provider_message_id=f"{self.kind}-{next(self._ids)}")

    async def aclose(self) -> None:
        return None


def recording_adapters() -> dict[ChannelKind, RecordingAdapter]:
    return {
        kind: RecordingAdapter(kind)
        for kind in (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WHATSAPP)
    }


def make_worker(
    db: Database,
    adapters: dict[ChannelKind, Any],
    *,
    max_attempts_base: float = 5.0,
    pacer: Pacer | None = None,
    sending_domain: str | None = None,
) -> Worker:
    task = AdvanceJourney(
        adapters=adapters,
        renderer=TemplateRenderer(),
        outbox_settings=OutboxSettings(
            public_url="http://parley.test", secret_key="k", sending_domain=sending_domain
        ),
        pacer=pacer,
    )
    return Worker(db, [task], WorkerConfig(batch_size=50, backoff_base_seconds=max_attempts_base))


def run_domain_check(
    db: Database, read: Callable[[str, str | None], Awaitable[Any]], deployment_domain: str
) -> None:
    """The hourly sending-domain check once, through a worker, reading DNS with ``read``."""
    worker = Worker(db, [DomainCheckTask(read, deployment_domain)], WorkerConfig(batch_size=10))
    with db.transaction() as session:
        enqueue_ticks(session, [CHECK_SCHEDULE], now=clock.utc_now())
    asyncio.run(worker.run_until_idle())


def drain(worker: Worker) -> int:
    return asyncio.run(worker.run_until_idle())


def hold_next_send(worker: Worker, frozen: clock.FrozenClock) -> None:
    """Claim the next job, hand its message to the provider and stop before recording the
    answer, as a worker killed mid-send does; past the lease, the next worker holds it."""
    [claimed] = worker._claim()
    [(job, work)] = worker._prepare_all([claimed])
    asyncio.run(worker.tasks[job.kind].perform(work))
    frozen.advance(timedelta(seconds=61))
    drain(worker)


def seed(db: Database) -> int:
    with db.transaction() as session:
        return seed_demo(session, shopify_secret=SECRET, api_key=API_KEY).id


def shopper(first_name: str) -> Any:
    return next(s for s in SHOPPERS if s.first_name == first_name)


def edit_journey(db: Database, key: str, *, workspace_id: int = 1, **changes: Any) -> None:
    """A store editing a journey's definition (``steps=[...]``, ``lane=...``)."""
    with db.transaction() as session:
        journey = next(
            j for j in journeys.list_journeys(session, workspace_id=workspace_id) if j.key == key
        )
        journeys.update_journey(
            session,
            workspace_id=workspace_id,
            key=key,
            definition={**journey.definition, **changes},
        )


def to_lane(db: Database, key: str, lane: str, *, workspace_id: int = 1) -> None:
    """A store moving a journey to another lane, as it might to run it as a promotion."""
    edit_journey(db, key, workspace_id=workspace_id, lane=lane)


TWO_CONFIRMATIONS = [{"type": "send", "message": "order_confirmation"}] * 2
"""Steps of an order confirmation that sends twice in a row."""


def promotions_without_caps(db: Database) -> None:
    """The store runs its order confirmation as a promotion, with no frequency cap: each
    order placed is one marketing send."""
    to_lane(db, "order_confirmation", "marketing")
    with db.transaction() as session:
        workspace = session.get_one(Workspace, 1)
        caps = {"email": 0, "sms": 0, "whatsapp": 0, "instagram": 0}
        workspace.settings = {**workspace.settings, "frequency_caps": caps}


def meta_holds(db: Database, *templates: TemplateReview, workspace_id: int = 1) -> None:
    """The store's WhatsApp templates as Meta lists them, as the hourly sync records it."""
    with db.transaction() as session:
        whatsapp_templates.record_listing(
            session, workspace_id=workspace_id, listed=list(templates), now=clock.utc_now()
        )


def deliveries(
    first_name: str, *, order_id: int = 501, number: int = 1501, start: datetime | None = None
) -> list[Any]:
    """The four signed deliveries of one order: placed, dispatched, out for delivery, delivered."""
    return list(
        order_lifecycle(
            secret=SECRET,
            order_id=order_id,
            number=number,
            shopper=shopper(first_name),
            start=start or clock.utc_now(),
        )
    )


class FakeRequestHeaders:
    """Enough of a Starlette request for ``ShopifyHeaders.of``."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = {name.lower(): value for name, value in headers.items()}


def verified(db: Database, body: bytes, headers: dict[str, str], slug: str = "demo") -> Verified:
    """A delivery checked and mapped as the route does before its write (``store``)."""
    return verify(db, slug, ShopifyHeaders.of(FakeRequestHeaders(headers)), body)  # type: ignore[arg-type]


def post(
    db: Database,
    delivery: Any,
    *,
    slug: str = "demo",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, object]:
    """Run a delivery through the webhook's domain path, as the route does."""
    request = FakeRequestHeaders(headers if headers is not None else delivery.headers)
    return receive(
        db, slug, ShopifyHeaders.of(request), body if body is not None else delivery.body
    )  # type: ignore[arg-type]


def signed(
    topic: str,
    payload: dict[str, Any],
    *,
    webhook_id: str,
    secret: str = SECRET,
    at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = payloads.encode(payload)
    return body, payloads.webhook_headers(
        topic,
        body,
        secret,
        shop_domain=payloads.DEMO_SHOP_DOMAIN,
        webhook_id=webhook_id,
        triggered_at=at or clock.utc_now(),
    )


def count(db: Database, model: Any, *where: Any) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def rows(
    db: Database, model: Any, *where: Any, order_by: Callable[[Any], Any] | None = None
) -> list[Any]:
    with db.transaction() as session:
        query = select(model).where(*where)
        query = query.order_by(order_by(model) if order_by else model.id)
        return list(session.scalars(query))


class RuleClassifier:
    """A stand-in for the intent model: the first rule whose words the text contains wins.

    Domain tests pin what the assistant *does* with an intent; the model's own accuracy is
    tested in ``tests/assistant``.
    """

    RULES: ClassVar[list[tuple[str, Intent]]] = [
        ("where is my order", Intent.TRACK_ORDER),
        ("where's my order", Intent.TRACK_ORDER),
        ("track", Intent.TRACK_ORDER),
        ("return", Intent.RETURN_ITEM),
        ("refund", Intent.GET_REFUND),
        ("human", Intent.CONTACT_HUMAN_AGENT),
        ("agent", Intent.CONTACT_HUMAN_AGENT),
        ("terrible", Intent.COMPLAINT),
        ("size", Intent.SIZING),
        ("how long", Intent.DELIVERY_PERIOD),
        ("hello", Intent.GREETING),
        ("thanks", Intent.THANKS),
    ]

    def predict(self, text: str) -> Prediction:
        lowered = text.lower()
        for words, intent in self.RULES:
            if words in lowered:
                return Prediction(intent, 0.95)
        return Prediction(Intent.OUT_OF_SCOPE, 0.2)


def inbox_worker(
    db: Database,
    adapters: dict[ChannelKind, Any],
    *,
    classifier: Any = None,
    lookups: Any = None,
    tmp_model_dir: Any = None,
    pacer: Pacer | None = None,
) -> Worker:
    """A worker with every task: journeys, reply delivery, late receipts, the assistant."""

    outbox_settings = OutboxSettings(public_url="http://parley.test", secret_key="k")
    respond_options: dict[str, Any] = {"classifier": classifier or RuleClassifier()}
    if lookups is not None:
        respond_options["lookups"] = lookups
    tasks: list[Any] = [
        AdvanceJourney(
            adapters=adapters,
            renderer=TemplateRenderer(),
            outbox_settings=outbox_settings,
            pacer=pacer,
        ),
        DeliverMessage(adapters=adapters, outbox_settings=outbox_settings, pacer=pacer),
        ApplyStatusLater(),
        Respond(model_dir=Path(tmp_model_dir or "var/assistant"), **respond_options),
    ]
    return Worker(db, tasks, WorkerConfig(batch_size=50, backoff_base_seconds=5.0))


def all_adapters() -> dict[ChannelKind, RecordingAdapter]:
    return {kind: RecordingAdapter(kind) for kind in ChannelKind}


def customer_writes(
    db: Database,
    *,
    channel: ChannelKind,
    sender: str,
    text: str,
    slug: str = "demo",
    **fields: Any,
) -> Received:
    """A customer's message, recorded as the webhook routes record it."""
    message = InboundMessage(
        channel=channel,
        provider_message_id=fields.pop("provider_message_id", f"in-{next(_inbound_ids)}"),
        sender=sender,
        text=text,
        **fields,
    )
    with db.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
        assert workspace is not None
        return inbox.record_inbound(session, workspace=workspace, inbound=message)


_inbound_ids = itertools.count(1)
INSTAGRAM_SHOPPER = "ig-7001"


def instagram_dm(db: Database, mid: str, text: str, **fields: Any) -> Received:
    """A direct message (or its edit or unsend, by ``kind``) from one Instagram shopper."""
    return customer_writes(
        db,
        channel=ChannelKind.INSTAGRAM,
        sender=INSTAGRAM_SHOPPER,
        text=text,
        provider_message_id=mid,
        **fields,
    )


def every_row(db: Database, *, but_store: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows as plain dicts (sealed columns come back as stored: encrypted),
    except those of the store ``but_store``."""
    found: dict[str, list[dict[str, Any]]] = {}
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            query = select(table)
            if but_store is not None and "workspace_id" in table.c:
                query = query.where(
                    (table.c.workspace_id != but_store) | table.c.workspace_id.is_(None)
                )
            found[table.name] = [dict(row._mapping) for row in connection.execute(query)]
    return found


def where_found(db: Database, *needles: str, but_store: int | None = None) -> list[tuple[str, str]]:
    """``(table, needle)`` for every row holding one of ``needles`` in any column,
    compared case-insensitively over the row's JSON text."""
    lowered = [needle.lower() for needle in needles]
    hits = []
    for table, table_rows in every_row(db, but_store=but_store).items():
        for row in table_rows:
            text = json.dumps(row, default=str, ensure_ascii=False).lower()
            hits.extend((table, needle) for needle in lowered if needle in text)
    return hits


def until_waiting_for_a_lock(db: Database, writer: threading.Thread) -> None:
    """Return once ``writer`` waits for a row lock on PostgreSQL, or is done without
    waiting: the moment a race test commits the transaction it raced."""
    deadline = time.monotonic() + 10
    while writer.is_alive() and time.monotonic() < deadline:
        with db.engine.connect() as connection:
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.05)
