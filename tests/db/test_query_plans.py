"""The webhooks' and the worker's statements search indexes; none walks a whole table,
nor all of one store's rows.

A statement that scans grows slower with every order a store takes, and on the webhook
and send paths that is every request. So does one that searches an index by the
workspace alone: SQLite once looked each delivery receipt's message up that way and
read every message of the store for it. SQLite's planner is deterministic (no
statistics until ANALYZE), so its plans are pinned here for every statement those paths
send; PostgreSQL plans from statistics, and the webhook's identity lookup is checked on
it in ``tests/inbox/test_identity.py``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, select

from parley import clock
from parley.channels.base import ChannelKind, StatusUpdate
from parley.db import Database
from parley.demo.seed import DemoShopper
from parley.demo.simulate import order_lifecycle, shopper_dict
from parley.inbox import service as inbox
from parley.integrations.shopify import payloads
from parley.messaging.models import Message
from support import (
    SECRET,
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    signed,
)

SHOPPERS = ("Ada", "Grace", "Alan", "Frida")
TABLE_SCAN = re.compile(r"^SCAN (?!(\d+ )?CONSTANT ROWS?$)")
SUBQUERY = re.compile(r"^(?:CO-ROUTINE|MATERIALIZE) (\w+)$")
STORE_WIDE = re.compile(r"^SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \(workspace_id=\?\)$")
PER_STORE = {
    "messages",
    "conversations",
    "customers",
    "customer_identities",
    "consent_records",
    "orders",
    "fulfillments",
    "store_events",
    "webhook_deliveries",
    "journey_runs",
    "jobs",
}
"""Tables that grow with a store's trade (a store's journeys and templates do not)."""
WRITERS = (
    (ChannelKind.WHATSAPP, "+447700900001"),
    (ChannelKind.SMS, "+447700900002"),
    (ChannelKind.WHATSAPP, "+447700900123"),
)


def _a_busy_store(db: Database, orders: int) -> None:
    """Orders placed, shipped and delivered by every demo shopper, their messages sent."""
    for n in range(orders):
        for delivery in deliveries(SHOPPERS[n % len(SHOPPERS)], order_id=900 + n, number=n):
            post(db, delivery)
    drain(make_worker(db, recording_adapters()))


def _growing_with_the_store(line: str) -> bool:
    """A plan step that reads a whole table, or every row of one store in it."""
    store_wide = STORE_WIDE.match(line)
    return bool(TABLE_SCAN.match(line)) or bool(store_wide and store_wide[1] in PER_STORE)


def _plans_growing_with_the_store(
    db: Database, flow: Callable[[], None], *, at_least: int = 10
) -> dict[str, list[str]]:
    """Run ``flow``; the plan steps of its reads and updates that grow with the store."""
    sent: dict[str, object] = {}

    def record(_conn, _cursor, statement, parameters, _context, executemany):
        # INSERTs are left out: their plans list the foreign-key checks SQLite would make
        # if an upsert changed a parent key, which none of these does.
        if statement.lstrip().split()[0].upper() in {"SELECT", "UPDATE", "DELETE", "WITH"}:
            sent.setdefault(statement, parameters[0] if executemany else parameters)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        flow()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(sent) >= at_least  # the flow was recorded
    found = {}
    with db.engine.connect() as connection:
        for statement, parameters in sent.items():
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            steps = [row[-1] for row in plan]
            # A subquery's or a CTE's rows, scanned where the statement uses them: the
            # steps that made those rows are judged on their own lines.
            made = {m[1] for step in steps if (m := SUBQUERY.match(step))}
            growing = [
                step
                for step in steps
                if _growing_with_the_store(step) and step.removeprefix("SCAN ") not in made
            ]
            if growing:
                found[" ".join(statement.split())[:160]] = growing
    return found


def _busy_sqlite_store(sqlite_template: Path, tmp_path: Path) -> Database:
    path = tmp_path / "parley.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    seed(db)
    _a_busy_store(db, 12)
    return db


def test_ingest_and_dispatch_never_scan_a_table(sqlite_template, tmp_path):
    db = _busy_sqlite_store(sqlite_template, tmp_path)

    def orders_moving() -> None:
        # Shoppers' orders move together, so a batch's lookups ask for several customers
        # at once: SQLite plans an IN list of one and of many differently. Two of them
        # wrote on WhatsApp lately, so the numbers their windows are open with are read.
        start = clock.utc_now() + timedelta(days=1)
        for phone in ("+447911123456", "+525512345678"):
            customer_writes(db, channel=ChannelKind.WHATSAPP, sender=phone, text="hi")
        lifecycles = zip(
            deliveries("Grace", order_id=990, number=99, start=start),
            deliveries("Alan", order_id=991, number=100, start=start),
            deliveries("Ada", order_id=992, number=101, start=start),
            deliveries("Frida", order_id=993, number=102, start=start),
            strict=True,
        )
        for n, same_step in enumerate(lifecycles):
            for delivery in same_step:
                post(db, delivery)
            if n == 1:  # the dispatch messages go out while the orders are still moving
                drain(make_worker(db, recording_adapters()))
        drain(make_worker(db, recording_adapters()))

    found = _plans_growing_with_the_store(db, orders_moving)
    db.dispose()
    assert found == {}, "\n".join(f"{s}: {p}" for s, p in found.items())


def test_conversations_and_receipts_never_read_all_of_a_stores_messages(sqlite_template, tmp_path):
    db = _busy_sqlite_store(sqlite_template, tmp_path)

    def customers_write_and_are_answered() -> None:
        for channel, sender in WRITERS:
            customer_writes(db, channel=channel, sender=sender, text="where is my order?")
            customer_writes(db, channel=channel, sender=sender, text="can I talk to a person?")
        drain(inbox_worker(db, all_adapters()))

    def receipts_arrive() -> None:
        # The last one is for a message not recorded (yet): it is looked for, then retried.
        for workspace_id, channel, provider_message_id in [*replies, (1, "whatsapp", "wamid.X")]:
            receipt = StatusUpdate(
                channel=ChannelKind(channel),
                provider_message_id=provider_message_id,
                status="delivered",
            )
            with db.transaction() as session:
                inbox.apply_status(session, workspace_id=workspace_id, status=receipt)

    customers_write_and_are_answered()  # the conversations exist: now measure
    found = _plans_growing_with_the_store(db, customers_write_and_are_answered)
    with db.transaction() as session:
        replies = session.execute(
            select(Message.workspace_id, Message.channel, Message.provider_message_id)
            .where(Message.provider_message_id.is_not(None))
            .order_by(Message.id.desc())
            .limit(4)
        ).all()
    assert len(replies) == 4
    found |= _plans_growing_with_the_store(db, receipts_arrive, at_least=2)
    db.dispose()
    assert found == {}, "\n".join(f"{s}: {p}" for s, p in found.items())


def test_a_send_to_a_phone_another_profile_holds_reads_its_refusals_by_key(
    sqlite_template, tmp_path
):
    # Given Grace, who texted STOP, and another store customer giving her number
    db = _busy_sqlite_store(sqlite_template, tmp_path)
    customer_writes(db, channel=ChannelKind.SMS, sender="+12025550143", text="STOP")
    son = DemoShopper(
        "8102", "Sol", "Hopper", "sol@example.com", "+12025550143", "America/New_York", (), ""
    )
    body, headers = signed(
        "customers/create",
        payloads.customer_payload(customer=shopper_dict(son), created_at=clock.utc_now()),
        webhook_id="sol",
    )
    post(db, None, body=body, headers=headers)

    def his_order_ships() -> None:
        start = clock.utc_now() + timedelta(days=1)
        lifecycle = order_lifecycle(
            secret=SECRET, order_id=994, number=103, shopper=son, start=start
        )
        for delivery in list(lifecycle)[:2]:
            post(db, delivery)
        drain(make_worker(db, recording_adapters()))

    found = _plans_growing_with_the_store(db, his_order_ships)
    [skipped] = rows(db, Message, Message.recipient == "+12025550143", Message.status == "skipped")
    db.dispose()
    assert found == {}, "\n".join(f"{s}: {p}" for s, p in found.items())
    assert skipped.status_reason == "opted out: not sent on sms"  # her STOP was read
