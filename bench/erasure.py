"""Erasure bench: webhook latency while a privacy erasure runs, against the same webhooks alone.

Shopify's compliance webhooks ask parley to delete a whole store once it has been
uninstalled for a while (``shop/redact``) and one customer's data on request
(``customers/redact``). A store is hundreds of thousands of rows, so its erasure deletes a
batch to a transaction with a rest after each (:func:`parley.privacy.tasks.erase_store`);
a customer is erased in one transaction, then the store's other raw deliveries (about
5 KB each) are searched for their details a window to a transaction with rests
(``CustomerRequestTask``). On SQLite every transaction holds the one writer; this bench
checks the batches and the rests do their job where it matters, in the latency of the
webhooks arriving meanwhile.

One database: the bench store's history (2,000 orders through the webhook path, a sent
message each), ``--rows`` more raw deliveries of the bench store (a real Shopify body
each; a handful name one customer, who also placed an order through the webhook path),
and a second store, "gone", uninstalled, holding about ``--rows`` rows spread as a
store's are (raw ``orders/create`` and ``fulfillments/create`` deliveries with real
bodies, their store events, customers and identities, orders, fulfilments, journey runs,
sent messages and their delivery attempts, done jobs, a few conversations). One
``parley serve`` (``bench/server.py``, embedded worker off) and the load generator
(``bench/loadgen.py``, its own CPU):

1. parley's webhook at ``--rate`` for ``--quiet-duration`` seconds, nothing else running:
   the ceiling;
2. the same rate for ``--duration`` seconds; ``--erase-after`` seconds in, a process
   pinned to the server's CPUs erases "gone" as the ``privacy.erase_store`` job does
   (``erase_store`` with the production budget and rest, part after part until it is
   finished). The webhooks *due* while it ran are picked out by time (both processes read
   the machine's monotonic clock) and their p50/p99 reported against run 1;
3. the same rate for ``--customer-duration`` seconds, with a customer erasure of the
   bench store's customer instead, ``--erase-after`` seconds in: the request recorded by
   ``receive_customer_request`` and carried out by the real ``CustomerRequestTask`` (its
   ``prepare``: the erasure's one transaction; its ``perform``: the windowed search; its
   ``finish_batch``, part after part), called directly rather than through a worker,
   which would also run the bench store's pending journey jobs.

Then the database is checked: no row of "gone" left in any table, the customer's email
and phone in no raw delivery, and every other delivery of the bench store kept.

Run: ``.venv/bin/python bench/erasure.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit
from benchkit import PYTHON, Child, Row, Target
from ingest import Seq, log, start_server
from sweep import P99_GOAL_MS, at_rate, in_background, window_figures

GONE_SLUG = "gone"
GONE_SECRET = "gone-shopify-secret"
GONE_SHOP_DOMAIN = "gone-store.myshopify.com"
GONE_SHOPPERS = 2 * 10**7
"""``Shopper`` numbers of the gone store's customers, clear of every bench's own."""
GONE_ORDERS = 7_500_000_000
GONE_CHUNK = 500
"""Gone store orders written to a transaction (about 6,500 rows)."""
ROWS_PER_ORDER = 13.1
"""Rows one order of the gone store makes (see :func:`gone_chunk`)."""
EXTRA_SHOPPERS = 3 * 10**7
EXTRA_CHUNK = 2_000
ERASE_SEQ = 90_123_456
"""``order_delivery`` sequence number of the bench store's customer who asks to be erased."""
MENTIONS = 6
"""Raw deliveries among the bench store's extra ones that name that customer."""


# --------------------------------------------------------------------------- the data


def erased_shopper() -> benchkit.Shopper:
    """The bench store's customer erased in run 3 (an SMS shopper: an email and a phone)."""
    return benchkit.Shopper(ERASE_SEQ, "sms")


def bench_store_id(db: Any, slug: str = benchkit.SLUG) -> int:
    from sqlalchemy import select

    from parley.workspaces.models import Workspace

    with db.transaction() as session:
        found = session.scalar(select(Workspace.id).where(Workspace.slug == slug))
    assert found is not None
    return int(found)


def fill_bench_store(url: str, rows: int) -> None:
    """The bench store as a store that has been sending: a sent message for each of its
    history's journey runs; the erased customer's order through the webhook path; then
    ``rows`` more raw deliveries (``orders/updated`` bodies of other shoppers), of which
    :data:`MENTIONS`, spread among them, name the erased customer."""
    from sqlalchemy import insert, select

    from parley.db import Database
    from parley.integrations.shopify import payloads
    from parley.journeys.models import JourneyRun
    from parley.messaging.service import MESSAGES
    from parley.store_events.models import WebhookDelivery

    db = Database(url)
    try:
        workspace_id = bench_store_id(db)
        now = datetime.now(UTC)
        with db.transaction() as session:
            runs = session.execute(
                select(JourneyRun.id, JourneyRun.customer_id).where(
                    JourneyRun.workspace_id == workspace_id
                )
            ).all()
            sent = [
                sent_message(workspace_id, f"bench-history:{run.id}", now, run.customer_id, run.id)
                for run in runs
            ]
            if sent:
                session.connection().execute(MESSAGES.insert(), sent)
        benchkit.store_deliveries(
            db, [benchkit.order_delivery(ERASE_SEQ, channel="sms")], per_transaction=1
        )
        shopper = erased_shopper()
        every = max(1, rows // MENTIONS)
        naming = {every // 2 + i * every for i in range(MENTIONS)}
        _, headers = benchkit.order_delivery(0)
        for start in range(0, rows, EXTRA_CHUNK):
            batch = []
            for n in range(start, min(rows, start + EXTRA_CHUNK)):
                at = now - timedelta(days=10) + timedelta(seconds=n)
                if n in naming:
                    topic = "customers/update" if n % 2 else "orders/updated"
                    body = (
                        payloads.customer_payload(customer=shopper.customer, created_at=at)
                        if topic == "customers/update"
                        else order_body(ERASE_SEQ + 1 + n, shopper, at)
                    )
                else:
                    topic = "orders/updated"
                    body = order_body(n, benchkit.Shopper(EXTRA_SHOPPERS + n, "email"), at)
                batch.append(
                    {
                        "workspace_id": workspace_id,
                        "source": "shopify",
                        "delivery_key": f"extra-{n}",
                        "topic": topic,
                        "headers": headers,
                        "body": payloads.encode(body).decode(),
                        "status": "processed",
                        "triggered_at": at,
                        "received_at": at,
                    }
                )
            with db.transaction() as session:
                session.execute(insert(WebhookDelivery), batch)
    finally:
        db.dispose()


def order_body(n: int, shopper: benchkit.Shopper, at: datetime) -> dict[str, Any]:
    from parley.integrations.shopify import payloads

    return payloads.order_payload(
        order_id=GONE_ORDERS + n,
        number=1001 + n,
        customer=shopper.customer,
        line_items=list(benchkit.ITEMS),
        created_at=at,
    )


def sent_message(
    workspace_id: int, key: str, at: datetime, customer_id: int | None, run_id: int | None
) -> dict[str, Any]:
    """An order confirmation parley sent by email (the text about 700 characters, the HTML
    about 2 KB, as the built-in template's)."""
    from parley.messaging.service import blank_row

    row = blank_row(workspace_id=workspace_id, now=at)
    row.update(
        customer_id=customer_id,
        journey_run_id=run_id,
        step_index=0,
        idempotency_key=key,
        message_type="order_confirmation",
        channel="email",
        recipient=f"{key}@bench.example",
        subject="Thanks for your order",
        body="Thank you for your order. " * 27,
        html="<p>Thank you for your order.</p>" * 64,
        status="sent",
        provider="smtp",
        provider_message_id=f"<{key}@bench.example>",
        attempts=1,
        sent_at=at,
    )
    return row


def fill_gone_store(url: str, rows: int) -> int:
    """The store to erase, uninstalled, with about ``rows`` rows; its id."""
    from sqlalchemy import select

    from parley.db import Database
    from parley.journeys.models import Journey
    from parley.workspaces.models import Workspace
    from parley.workspaces.service import create_workspace

    db = Database(url)
    try:
        with db.transaction() as session:
            workspace = create_workspace(
                session, slug=GONE_SLUG, name="Gone Store", shopify_secret=GONE_SECRET
            )
            workspace.shopify_shop_domain = GONE_SHOP_DOMAIN
            workspace_id = workspace.id
            journey_id = session.scalar(
                select(Journey.id).where(
                    Journey.workspace_id == workspace_id, Journey.key == "order_confirmation"
                )
            )
        assert journey_id is not None
        orders = max(2, math.ceil(rows / ROWS_PER_ORDER))
        for start in range(0, orders, GONE_CHUNK):
            with db.transaction() as session:
                gone_chunk(
                    session, workspace_id, journey_id, range(start, min(orders, start + GONE_CHUNK))
                )
        with db.transaction() as session:
            gone = session.get_one(Workspace, workspace_id)
            gone.is_active = False
            gone.uninstalled_at = datetime.now(UTC) - timedelta(days=2)
    finally:
        db.dispose()
    return workspace_id


def gone_chunk(session: Any, workspace_id: int, journey_id: int, numbers: range) -> None:
    """Orders ``numbers`` of the gone store, as its webhooks and its worker left them: per
    order two raw deliveries (``orders/create``, ``fulfillments/create``) and their two
    store events, the order, its fulfilment, a journey run, the confirmation sent (and its
    delivery attempt), two done jobs; a customer (two identities, a consent record) for
    every two orders; a conversation (and one event of it) for every twenty."""
    from sqlalchemy import insert

    from parley.commerce.models import Fulfillment, Order
    from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
    from parley.inbox.models import Conversation, ConversationEvent
    from parley.integrations.shopify import payloads
    from parley.integrations.shopify.mapping import map_delivery
    from parley.jobs.models import Job, JobStatus
    from parley.journeys.models import JourneyRun
    from parley.messaging.models import DeliveryAttempt, Message
    from parley.store_events.models import StoreEvent, WebhookDelivery
    from parley.store_events.service import _subject

    def ids(model: Any, values: list[dict[str, Any]]) -> list[int]:
        statement = insert(model).returning(model.id, sort_by_parameter_order=True)
        return list(session.scalars(statement, values).all())

    at = datetime.now(UTC) - timedelta(days=40)
    shoppers = {n: benchkit.Shopper(GONE_SHOPPERS + n // 2, "email") for n in numbers}
    firsts = [n for n in numbers if n % 2 == 0]  # chunks start at even numbers
    customer_ids = dict(
        zip(
            [n // 2 for n in firsts],
            ids(
                Customer,
                [
                    {
                        "workspace_id": workspace_id,
                        "first_name": "Gone",
                        "last_name": f"Shopper{n // 2}",
                        "email": shoppers[n].customer["email"],
                        "country_code": "US",
                        "source_updated_at": at,
                        "created_at": at,
                        "updated_at": at,
                    }
                    for n in firsts
                ],
            ),
            strict=True,
        )
    )
    session.execute(
        insert(CustomerIdentity),
        [
            {
                "workspace_id": workspace_id,
                "customer_id": customer_ids[n // 2],
                "kind": kind,
                "value": value,
                "created_at": at,
            }
            for n in firsts
            for kind, value in (
                ("shopify", str(shoppers[n].customer["id"])),
                ("email", shoppers[n].customer["email"]),
            )
        ],
    )
    session.execute(
        insert(ConsentRecord),
        [
            {
                "workspace_id": workspace_id,
                "customer_id": customer_ids[n // 2],
                "channel": "email",
                "purpose": "marketing",
                "is_granted": False,
                "source": "shopify",
                "recorded_at": at,
            }
            for n in firsts
        ],
    )
    deliveries, mapped = [], []
    for n in numbers:
        customer = shoppers[n].customer
        for topic, body in (
            ("orders/create", order_body(n, shoppers[n], at)),
            (
                "fulfillments/create",
                payloads.fulfillment_payload(
                    fulfillment_id=8_500_000_000 + n,
                    order_id=GONE_ORDERS + n,
                    customer=customer,
                    tracking_company="UPS",
                    tracking_number=f"1Z999AA1{n:08d}",
                    tracking_url=f"https://www.ups.com/track?tracknum=1Z999AA1{n:08d}",
                    shipment_status=None,
                    created_at=at,
                    line_items=list(benchkit.ITEMS),
                    order_number=1001 + n,
                ),
            ),
        ):
            raw = payloads.encode(body)
            webhook_id = str(uuid.uuid4())
            deliveries.append(
                {
                    "workspace_id": workspace_id,
                    "source": "shopify",
                    "delivery_key": webhook_id,
                    "topic": topic,
                    "headers": payloads.webhook_headers(
                        topic,
                        raw,
                        GONE_SECRET,
                        shop_domain=GONE_SHOP_DOMAIN,
                        webhook_id=webhook_id,
                        triggered_at=at,
                    ),
                    "body": raw.decode(),
                    "status": "processed",
                    "triggered_at": at,
                    "received_at": at,
                }
            )
            [event] = map_delivery(topic, body, received_at=at)
            mapped.append((n, event))
    delivery_ids = ids(WebhookDelivery, deliveries)
    session.execute(
        insert(StoreEvent),
        [
            {
                "workspace_id": workspace_id,
                "delivery_id": delivery_id,
                "type": event.type,
                "subject": _subject(event),
                "order_external_id": str(GONE_ORDERS + n),
                "customer_id": customer_ids[n // 2],
                "payload": event.payload.model_dump(mode="json"),
                "occurred_at": event.occurred_at,
                "recorded_at": at,
            }
            for delivery_id, (n, event) in zip(delivery_ids, mapped, strict=True)
        ],
    )
    session.execute(
        insert(Order),
        [
            {
                "workspace_id": workspace_id,
                "customer_id": customer_ids[n // 2],
                "external_id": str(GONE_ORDERS + n),
                "number": f"#{1001 + n}",
                "email": shoppers[n].customer["email"],
                "currency": "USD",
                "total_price": 48,
                "financial_status": "paid",
                "fulfillment_status": "fulfilled",
                "line_items": list(benchkit.ITEMS),
                "shipping_address": {"name": "Gone Shopper", "city": "Portland", "zip": "04101"},
                "placed_at": at,
                "source_updated_at": at,
                "created_at": at,
                "updated_at": at,
            }
            for n in numbers
        ],
    )
    session.execute(
        insert(Fulfillment),
        [
            {
                "workspace_id": workspace_id,
                "external_id": str(8_500_000_000 + n),
                "order_external_id": str(GONE_ORDERS + n),
                "status": "success",
                "tracking_company": "UPS",
                "tracking_number": f"1Z999AA1{n:08d}",
                "line_items": list(benchkit.ITEMS),
                "created_at": at,
                "updated_at": at,
            }
            for n in numbers
        ],
    )
    run_ids = ids(
        JourneyRun,
        [
            {
                "workspace_id": workspace_id,
                "journey_id": journey_id,
                "run_key": f"order:{GONE_ORDERS + n}",
                "customer_id": customer_ids[n // 2],
                "order_external_id": str(GONE_ORDERS + n),
                "context": {"order_external_id": str(GONE_ORDERS + n), "journey_version": 1},
                "status": "completed",
                "started_at": at,
                "ended_at": at,
            }
            for n in numbers
        ],
    )
    message_ids = ids(
        Message,
        [
            sent_message(workspace_id, f"gone:{n}", at, customer_ids[n // 2], run)
            for n, run in zip(numbers, run_ids, strict=True)
        ],
    )
    session.execute(
        insert(DeliveryAttempt),
        [
            {
                "workspace_id": workspace_id,
                "message_id": message,
                "number": 1,
                "channel": "email",
                "outcome": "sent",
                "started_at": at,
                "finished_at": at,
            }
            for message in message_ids
        ],
    )
    session.execute(
        insert(Job),
        [
            {
                "workspace_id": workspace_id,
                "kind": kind,
                "payload": payload,
                "idempotency_key": key,
                "lane": "transactional",
                "status": JobStatus.DONE,
                "due_at": at,
                "attempts": 1,
                "max_attempts": 8,
                "created_at": at,
                "updated_at": at,
            }
            for run, message in zip(run_ids, message_ids, strict=True)
            for kind, payload, key in (
                ("journeys.advance", {"run_id": run, "step": 0}, f"gone-journey:{run}:0"),
                ("journeys.advance", {"run_id": run, "step": 1}, f"gone-journey:{run}:1"),
            )
        ],
    )
    talked = [n for n in numbers if n % 20 == 0]
    if talked:
        conversation_ids = ids(
            Conversation,
            [
                {
                    "workspace_id": workspace_id,
                    "customer_id": customer_ids[n // 2],
                    "status": "resolved",
                    "owner": "assistant",
                    "channel": "email",
                    "last_message_at": at,
                    "created_at": at,
                    "updated_at": at,
                    "resolved_at": at,
                }
                for n in talked
            ],
        )
        session.execute(
            insert(ConversationEvent),
            [
                {
                    "workspace_id": workspace_id,
                    "conversation_id": conversation,
                    "kind": "resolved",
                    "actor": "assistant",
                    "detail": {},
                    "created_at": at,
                }
                for conversation in conversation_ids
            ],
        )


def prepare(url: str, rows: int) -> int:
    """The bench store (history, sent messages, extra deliveries, the customer to erase),
    then the gone store; on PostgreSQL the planner's statistics, as autovacuum keeps them.
    The gone store's id."""
    benchkit.prepare_parley_db(url)
    fill_bench_store(url, rows)
    gone = fill_gone_store(url, rows)
    if url.startswith("postgresql"):
        from parley.db import Database

        db = Database(url)
        try:
            with db.engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
        finally:
            db.dispose()
    return gone


def store_rows(url: str, workspace_id: int) -> dict[str, int]:
    """The store's rows left, by table (``parley.privacy.erasure.remaining_rows``), and
    ``workspaces`` 1 while its own row is there."""
    from parley.db import Database
    from parley.privacy.erasure import remaining_rows
    from parley.workspaces.models import Workspace

    db = Database(url)
    try:
        with db.transaction() as session:
            counts = remaining_rows(session, workspace_id=workspace_id)
            if session.get(Workspace, workspace_id) is not None:
                counts["workspaces"] = 1
    finally:
        db.dispose()
    return counts


def naming_deliveries(url: str) -> int:
    """Raw deliveries (of any store) whose body has the erased customer's email or phone."""
    customer = erased_shopper().customer
    return benchkit.count_rows(
        url,
        "SELECT count(*) FROM webhook_deliveries WHERE body LIKE '%{}%' OR body LIKE '%{}%'".format(
            customer["email"], customer["phone"]
        ),
    )


# --------------------------------------------------------------------------- the erasures


class Timeline:
    """Each transaction's span and each batch's table, recorded inside the erasing process."""

    def __init__(self) -> None:
        self.transactions: list[tuple[float, float]] = []
        self.batches: list[tuple[float, float, str, int]] = []
        self.waits: list[float] = []


def timed_database(url: str, timeline: Timeline) -> Any:
    """parley's ``Database``, recording the span of every transaction it runs."""
    from parley.db import Database

    class TimedDatabase(Database):
        @contextmanager
        def transaction(self) -> Iterator[Any]:
            started = time.perf_counter()
            with super().transaction() as session:
                yield session
            timeline.transactions.append((started, time.perf_counter()))

        @contextmanager
        def transaction_unchecked(self) -> Iterator[Any]:
            started = time.perf_counter()
            with super().transaction_unchecked() as session:
                yield session
            timeline.transactions.append((started, time.perf_counter()))

    return TimedDatabase(url)


def longest(timeline: Timeline, count: int = 3) -> list[dict[str, Any]]:
    """The longest transactions, each with the table its batch deleted from."""
    spans = sorted(timeline.transactions, key=lambda span: span[0] - span[1])[:count]
    found = []
    for start, end in spans:
        tables = [table for s, _, table, _ in timeline.batches if start <= s <= end]
        found.append({"seconds": end - start, "table": tables[0] if tables else None})
    return found


def erase_store_child(url: str, workspace_id: int) -> None:
    """Erase the store as ``privacy.erase_store`` jobs do, part after part (each
    ``erase_store`` with the production budget and rest) until it is finished; print its
    window, what it deleted and its longest transactions as JSON."""
    import parley.privacy.tasks as tasks
    from parley.housekeeping import BUDGET_SECONDS, REST_SECONDS

    timeline = Timeline()
    batch = tasks.erase_store_batch

    def timed_batch(session: Any, *, workspace_id: int) -> tuple[str, int] | None:
        # The transaction begins here rather than at the batch's first statement (on
        # SQLite: BEGIN IMMEDIATE, the wait for the writer), so the batch's own time is
        # told apart from that wait.
        waited = time.perf_counter()
        session.connection()
        started = time.perf_counter()
        timeline.waits.append(started - waited)
        found = batch(session, workspace_id=workspace_id)
        timeline.batches.append(
            (
                started,
                time.perf_counter(),
                found[0] if found else "workspaces",
                found[1] if found else 1,
            )
        )
        return found

    tasks.erase_store_batch = timed_batch  # type: ignore[assignment]
    db = timed_database(url, timeline)
    deleted: dict[str, int] = {}
    parts = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    while True:
        parts += 1
        result = tasks.erase_store(db, workspace_id, BUDGET_SECONDS, REST_SECONDS)
        for table, count in result.deleted.items():
            deleted[table] = deleted.get(table, 0) + count
        if result.finished:
            break
    ended = time.perf_counter()
    cpu = time.process_time() - cpu0
    db.dispose()
    phases: dict[str, dict[str, Any]] = {}
    for start, end, table, count in timeline.batches:
        phase = phases.setdefault(
            table, {"start": start, "end": end, "rows": 0, "batches": 0, "longest": 0.0}
        )
        phase["end"] = end
        phase["rows"] += count
        phase["batches"] += 1
        phase["longest"] = max(phase["longest"], end - start)
    print(
        json.dumps(
            {
                "start": started,
                "end": ended,
                "cpu_seconds": cpu,
                "parts": parts,
                "deleted": deleted,
                "transactions": len(timeline.transactions),
                "longest": longest(timeline),
                "longest_wait": max(timeline.waits, default=0.0),
                "phases": phases,
            }
        )
    )


def erase_customer_child(url: str) -> None:
    """The erased customer's request recorded as the ``customers/redact`` webhook records
    it, then carried out by parley's ``CustomerRequestTask`` as a worker would (prepare in
    a transaction, perform, finish in a transaction), part after part; print the windows
    of the erasure and of the search, and what they deleted, as JSON."""
    from sqlalchemy import func, select, update

    import parley.privacy.tasks as tasks
    from parley.jobs.models import Job, JobStatus
    from parley.jobs.queue import ClaimedJob
    from parley.privacy.models import PrivacyRequest, RequestKind
    from parley.privacy.service import CustomerRequest, Subject, receive_customer_request
    from parley.store_events.models import WebhookDelivery

    timeline = Timeline()
    search = tasks.delete_mentions
    windows: list[tuple[float, float, int, int | None]] = []

    def timed_search(session: Any, **kwargs: Any) -> Any:
        waited = time.perf_counter()
        session.connection()  # as in the store's erasure: the wait for the writer apart
        started = time.perf_counter()
        timeline.waits.append(started - waited)
        found = search(session, **kwargs)
        windows.append((started, time.perf_counter(), found.deleted, found.after))
        return found

    tasks.delete_mentions = timed_search  # type: ignore[assignment]
    db = timed_database(url, timeline)
    shopper = erased_shopper().customer
    subject = Subject(
        platform_customer_id=str(shopper["id"]), email=shopper["email"], phone=shopper["phone"]
    )
    workspace_id = bench_store_id(db)
    started = time.perf_counter()
    with db.transaction() as session:
        request_id = receive_customer_request(
            session,
            workspace_id=workspace_id,
            request=CustomerRequest(kind=RequestKind.ERASURE, subject=subject),
            delivery_id=None,
            now=datetime.now(UTC),
        )
        searched, last_id = session.execute(
            select(func.count(), func.max(WebhookDelivery.id)).where(
                WebhookDelivery.workspace_id == workspace_id
            )
        ).one()
    task = tasks.CustomerRequestTask(db)
    key: str | None = f"privacy:{request_id}"
    erasure: tuple[float, float] | None = None
    search_window: list[float] = []
    parts = 0
    cpu0 = time.process_time()
    while key is not None:
        parts += 1
        with db.transaction() as session:
            job = session.scalars(select(Job).where(Job.idempotency_key == key)).one()
            claimed = ClaimedJob(
                id=job.id,
                kind=job.kind,
                payload=dict(job.payload or {}),
                workspace_id=job.workspace_id,
                attempts=job.attempts,
                max_attempts=job.max_attempts,
                due_at=job.due_at,
                locked_by="bench",
            )
        begun = time.perf_counter()
        with db.transaction() as session:
            work = task.prepare(session, claimed)
        if erasure is None:
            erasure = (begun, time.perf_counter())
        search_window.append(time.perf_counter())
        result = asyncio.run(task.perform(work))
        search_window.append(time.perf_counter())
        with db.transaction() as session:
            task.finish_batch(session, [(claimed, work, result)])
            session.execute(update(Job).where(Job.id == claimed.id).values(status=JobStatus.DONE))
        key = None
        if isinstance(result, tuple) and result[1].after is not None:
            key = f"privacy:{request_id}:after:{result[1].after}"
    ended = time.perf_counter()
    cpu = time.process_time() - cpu0
    with db.transaction() as session:
        request = session.get_one(PrivacyRequest, request_id)
        status, summary = request.status, request.summary
    db.dispose()
    assert erasure is not None
    # The first window past the last delivery there was when the request came.
    caught_up = next(
        (i for i, (_, _, _, after) in enumerate(windows) if after is None or after >= last_id),
        len(windows) - 1,
    )
    print(
        json.dumps(
            {
                "start": started,
                "end": ended,
                "erase_start": erasure[0],
                "erase_end": erasure[1],
                "search_start": search_window[0],
                "search_end": search_window[-1],
                "cpu_seconds": cpu,
                "parts": parts,
                "searched": int(searched or 0),
                "caught_up": windows[caught_up][1],
                "windows_to_catch_up": caught_up + 1,
                "windows": len(windows),
                "longest_window": max((e - s for s, e, _, _ in windows), default=0.0),
                "longest_wait": max(timeline.waits, default=0.0),
                "window_spans": [(s, e) for s, e, _, _ in windows],
                "longest_transaction": max(e - s for s, e in timeline.transactions),
                "found": sum(count for _, _, count, _ in windows),
                "status": status,
                "summary": summary,
            }
        )
    )


def child_json(child: Child, *, timeout: float) -> dict[str, Any]:
    """The JSON line an erasing process printed last, or why there is none."""
    lines = [line for line in child.communicate(timeout=timeout).splitlines() if line[:1] == "{"]
    if not lines:
        raise RuntimeError(
            f"the eraser printed nothing (exit {child.proc.returncode}):\n{child.tail()}"
        )
    found: dict[str, Any] = json.loads(lines[-1])
    return found


# --------------------------------------------------------------------------- the runs


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix=f"parley-bench-erasure-{kind}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    target = Target(kind, workdir, pg_admin_url=opts.pg_url)
    server_cpus, loadgen_cpu = benchkit.default_cpus()
    seq = Seq()
    common = {"cpu": loadgen_cpu, "warmup": 1.0, "gen_procs": 2, "connections": 128}
    result: dict[str, Any] = {"db": kind, "workdir": str(workdir), "rate": opts.rate}
    try:
        url = target.fresh("erasure")
        log(f"[{kind}] filling: the bench store and {opts.rows:,} extra deliveries, then 'gone'")
        t0 = time.monotonic()
        gone = prepare(url, opts.rows)
        result["fill_seconds"] = time.monotonic() - t0
        result["gone_before"] = store_rows(url, gone)
        result["bench_deliveries_before"] = bench_deliveries(url)
        result["naming_before"] = naming_deliveries(url)
        log(
            f"    'gone' holds {sum(result['gone_before'].values()):,} rows; the bench store "
            f"{result['bench_deliveries_before']:,} raw deliveries, "
            f"{result['naming_before']} naming the customer"
        )
        server, port = start_server(
            url, workdir, "server-erasure", cpus=server_cpus, worker=False, sandbox=False
        )
        parley_url = f"http://127.0.0.1:{port}/webhooks/shopify/{benchkit.SLUG}"
        try:
            log(f"[{kind}] {opts.rate:.0f}/s for {opts.quiet_duration}s, nothing else running")
            quiet = at_rate(
                parley_url, opts, seq, common, duration=opts.quiet_duration, server_pid=server.pid
            )
            result["quiet"] = quiet
            log(f"    p50 {quiet['p50_ms']:.1f} ms  p99 {quiet['p99_ms']:.1f} ms")
            loads = [quiet]
            for phase, flag, duration in (
                ("store", "--erase-store-only", opts.duration),
                ("customer", "--erase-customer-only", opts.customer_duration),
            ):
                log(
                    f"[{kind}] {opts.rate:.0f}/s for {duration}s, erasing the {phase} "
                    f"{opts.erase_after}s in"
                )
                records_path = workdir / f"records-{phase}.json"
                generator, loaded = in_background(
                    parley_url,
                    argparse.Namespace(**{**vars(opts), "duration": duration}),
                    seq,
                    common,
                    records_path,
                )
                time.sleep(opts.erase_after)
                args = [PYTHON, str(Path(__file__).resolve()), flag, url]
                if phase == "store":
                    args += ["--workspace-id", str(gone)]
                eraser = Child(
                    args, cpus=server_cpus, capture=True, log=workdir / f"erase-{phase}.log"
                )
                try:
                    erased = child_json(eraser, timeout=1800)
                finally:
                    eraser.stop()
                generator.join(timeout=1800)
                records = json.loads(records_path.read_text())
                loads.append(loaded)
                result[phase] = figures(phase, erased, records)
                result[phase]["load"] = loaded
                report_phase(kind, phase, result[phase])
        finally:
            server.stop()
        result["gone_left"] = store_rows(url, gone)
        result["naming_left"] = naming_deliveries(url)
        result["bench_deliveries_after"] = bench_deliveries(url)
        result["accepted"] = sum(load["requests"] - sum(load["errors"].values()) for load in loads)
    finally:
        if not opts.keep:
            target.cleanup()
    result["rows"] = [row.as_dict() for row in rows_for(result)]
    return result


def bench_deliveries(url: str) -> int:
    return benchkit.count_rows(
        url,
        "SELECT count(*) FROM webhook_deliveries WHERE workspace_id = "
        f"(SELECT id FROM workspaces WHERE slug = '{benchkit.SLUG}')",
    )


def figures(phase: str, erased: dict[str, Any], records: list[list[float]]) -> dict[str, Any]:
    """The erasure's own figures, the webhooks due while it ran, and (the store's) those
    due while each table was being deleted from."""
    out = {
        "erased": erased,
        "during": window_figures(records, erased["start"], erased["end"]),
        "last_due": max(due for due, _, _ in records),
    }
    if phase == "store":
        out["tables"] = {
            table: window_figures(records, p["start"], p["end"])
            for table, p in erased["phases"].items()
        }
    else:
        out["erase_txn"] = window_figures(records, erased["erase_start"], erased["erase_end"])
        out["search"] = window_figures(records, erased["search_start"], erased["search_end"])
    return out


def report_phase(kind: str, phase: str, found: dict[str, Any]) -> None:
    erased, during = found["erased"], found["during"]
    seconds = erased["end"] - erased["start"]
    if phase == "store":
        worst: dict[str, Any] = (erased["longest"] or [{"seconds": 0.0, "table": None}])[0]
        log(
            f"    erased {sum(erased['deleted'].values()):,} rows in {seconds:.1f}s "
            f"({erased['parts']} parts); longest transaction {worst['seconds'] * 1000:.0f} ms "
            f"({worst['table']}); during it p50 {during['p50_ms']:.1f} ms p99 "
            f"{during['p99_ms']:.1f} ms"
        )
        for table, inside in found["tables"].items():
            p = erased["phases"][table]
            log(
                f"      {table:22} {p['rows']:>8,} rows {p['end'] - p['start']:7.2f}s longest "
                f"{p['longest'] * 1000:7.1f} ms  webhooks {inside['requests']:>5} p99 "
                f"{inside['p99_ms']:8.1f} ms"
            )
    else:
        log(
            f"    erased in {(erased['erase_end'] - erased['erase_start']) * 1000:.0f} ms, "
            f"searched the {erased['searched']:,} deliveries there were in "
            f"{erased['caught_up'] - erased['search_start']:.1f}s and went on to "
            f"{erased['search_end'] - erased['search_start']:.1f}s ({erased['windows']} windows, "
            f"longest {erased['longest_window'] * 1000:.0f} ms); during it p50 "
            f"{during['p50_ms']:.1f} ms p99 {during['p99_ms']:.1f} ms; {erased['summary']}"
        )


def rows_for(r: dict[str, Any]) -> list[Row]:
    quiet, store, customer = r["quiet"], r["store"], r["customer"]
    rate = f"{r['rate']:.0f}/s"
    rows: list[Row] = []
    erased = store["erased"]
    seconds = erased["end"] - erased["start"]
    deleted = sum(erased["deleted"].values())
    during = store["during"]
    worst_table = max(
        store["tables"].items(),
        key=lambda item: -1.0 if math.isnan(item[1]["p99_ms"]) else item[1]["p99_ms"],
        default=None,
    )
    longest_txn: dict[str, Any] = (erased["longest"] or [{"seconds": 0.0, "table": None}])[0]
    rows += latency_rows(
        f"while a store's erasure runs ({rate})",
        during,
        quiet,
        truncated=store["last_due"] < erased["end"],
        extra=(
            f"; longest transaction {longest_txn['seconds'] * 1000:.0f} ms ({longest_txn['table']}"
            f"), longest wait for the writer before a batch {erased['longest_wait'] * 1000:.0f} ms"
            + (
                f"; worst table phase {worst_table[0]}: p99 {worst_table[1]['p99_ms']:.1f} ms "
                f"over {worst_table[1]['requests']} webhooks"
                if worst_table
                else ""
            )
        ),
    )
    rows.append(
        Row(
            "rows deleted by the store's erasure /s",
            deleted / seconds if seconds else None,
            "/s",
            note=(
                f"{deleted:,} rows in {seconds:.1f} s ({erased['parts']} parts of at most "
                f"20 s, {erased['transactions']:,} transactions), {erased['cpu_seconds']:.1f} s "
                "of the eraser's CPU"
            ),
        )
    )
    erased = customer["erased"]
    erase_ms = (erased["erase_end"] - erased["erase_start"]) * 1000
    in_txn = customer["erase_txn"]
    rows += latency_rows(
        f"while a customer's erasure runs ({rate})",
        customer["during"],
        quiet,
        truncated=customer["last_due"] < erased["end"],
        extra=(
            f"; the erasure's transaction {erase_ms:.0f} ms (webhooks due in it: "
            f"{in_txn['requests']}, max {fmt_ms(in_txn['max_ms'])}); webhooks due during "
            f"the search: p99 {fmt_ms(customer['search']['p99_ms'])} of "
            f"{customer['search']['requests']}"
        ),
    )
    to_catch_up = erased["caught_up"] - erased["search_start"]
    chased = erased["search_end"] - erased["caught_up"]
    rows.append(
        Row(
            "raw deliveries searched for the customer /s",
            erased["searched"] / to_catch_up if to_catch_up > 0 else None,
            "/s",
            note=(
                f"the {erased['searched']:,} deliveries the store held at the request in "
                f"{to_catch_up:.1f} s ({erased['windows_to_catch_up']} windows); the longest "
                f"window {erased['longest_window'] * 1000:.0f} ms, the longest wait for the "
                f"writer before one {erased['longest_wait'] * 1000:.0f} ms; "
                f"{erased['cpu_seconds']:.1f} s of the eraser's CPU; request {erased['status']}: "
                f"{erased['summary']}"
            ),
        )
    )
    rows.append(
        Row(
            "the search's time on deliveries that arrived after the request",
            chased,
            "s",
            note=(
                f"{erased['windows'] - erased['windows_to_catch_up']} more windows after it had "
                f"searched every delivery there was at the request ({erased['parts']} parts in "
                "all): the search ends at the newest delivery there was at the erasure"
            ),
        )
    )
    gone_left = sum(r["gone_left"].values())
    # Those naming the customer are emptied and kept, their platforms' dedupe keys.
    expected = r["bench_deliveries_before"] + r["accepted"]
    kept_wrong = abs(r["bench_deliveries_after"] - expected)
    rows.append(
        Row(
            "rows left that should be gone, or gone that should stay",
            gone_left + r["naming_left"] + kept_wrong,
            "",
            goal="0",
            passed=gone_left == 0 and r["naming_left"] == 0 and kept_wrong == 0,
            note=(
                f"erased store: {gone_left} of {sum(r['gone_before'].values()):,} rows left "
                f"{r['gone_left'] or ''}; deliveries naming the customer "
                f"{r['naming_before']} -> {r['naming_left']}; the bench store's deliveries "
                f"{r['bench_deliveries_after']:,}, expected {expected:,} ("
                f"{r['bench_deliveries_before']:,} + {r['accepted']:,} accepted, "
                f"the {r['naming_before']} naming the customer emptied and kept)"
            ),
        )
    )
    return rows


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def latency_rows(
    what: str, during: dict[str, Any], quiet: dict[str, Any], *, truncated: bool, extra: str
) -> list[Row]:
    p99 = during["p99_ms"]
    return [
        Row(
            f"webhook p99 {what}",
            p99,
            "ms",
            ceiling=quiet["p99_ms"],
            ceiling_label="same rate, alone",
            goal=f"< {P99_GOAL_MS:.0f} ms",
            passed=p99 < P99_GOAL_MS and during["ok"] == during["requests"] > 0,
            note=(
                f"{during['ok']} of {during['requests']} webhooks due during it answered "
                f"200; max {fmt_ms(during['max_ms'])}"
                + ("; the load ended before the erasure did" if truncated else "")
                + extra
            ),
        ),
        Row(
            f"webhook p50 {what}",
            during["p50_ms"],
            "ms",
            ceiling=quiet["p50_ms"],
            ceiling_label="same rate, alone",
        ),
    ]


def phases_line(result: dict[str, Any]) -> str:
    """The store erasure's tables whose longest batch took over 50 ms, and the webhooks'
    p99 while their rows were deleted."""
    store = result["store"]
    slow = [
        f"{table} {p['rows']:,} rows in {p['end'] - p['start']:.1f} s, longest batch "
        f"{p['longest'] * 1000:,.0f} ms, webhook p99 {store['tables'][table]['p99_ms']:,.1f} ms"
        for table, p in store["erased"]["phases"].items()
        if p["longest"] * 1000 > P99_GOAL_MS
    ]
    return "store erasure, tables with a batch over 50 ms: " + ("; ".join(slow) or "none")


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    gone = sum(result["gone_before"].values())
    return benchkit.render_table(
        f"erasure on {result['db']}: a store of {gone:,} rows erased, a customer searched for "
        f"in {result['customer']['erased']['searched']:,} raw deliveries; filled in "
        f"{result['fill_seconds']:.0f} s",
        rows,
        [
            line
            for line in (
                phases_line(result),
                benchkit.interference_line(
                    [
                        load.get("interference")
                        for load in (
                            result["quiet"],
                            result["store"]["load"],
                            result["customer"]["load"],
                        )
                    ]
                ),
                result.get("machine", ""),
            )
            if line
        ],
    )


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley erasure bench")
    p.add_argument(
        "--rows",
        type=int,
        default=50_000,
        help="rows of the erased store, and extra raw deliveries of the bench store",
    )
    p.add_argument("--rate", type=float, default=200.0, help="webhooks/s during every run")
    p.add_argument("--quiet-duration", type=float, default=6.0)
    p.add_argument(
        "--duration",
        type=float,
        default=100.0,
        help="seconds of the store erasure's run (the load goes on after the erasure ends)",
    )
    p.add_argument(
        "--customer-duration",
        type=float,
        default=20.0,
        help="seconds of the customer erasure's run",
    )
    p.add_argument("--erase-after", type=float, default=3.0, help="seconds into those runs")
    p.add_argument("--erase-store-only", default=None, help=argparse.SUPPRESS)
    p.add_argument("--erase-customer-only", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workspace-id", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main() -> None:
    opts = parser().parse_args()
    if opts.erase_store_only:
        erase_store_child(opts.erase_store_only, opts.workspace_id)
        return
    if opts.erase_customer_only:
        erase_customer_child(opts.erase_customer_only)
        return
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    sys.exit(main())
