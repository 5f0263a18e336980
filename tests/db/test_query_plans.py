"""The webhook's and the worker's statements search indexes; none walks a whole table.

A statement that scans grows slower with every order a store takes, and on the webhook
and send paths that is every request. SQLite's planner is deterministic (no statistics
until ANALYZE), so its plans are pinned here for every statement those paths send;
PostgreSQL plans from statistics, and the webhook's identity lookup is checked on it in
``tests/inbox/test_identity.py``.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

from sqlalchemy import event

from parley import clock
from parley.channels.base import ChannelKind, StatusUpdate
from parley.db import Database
from parley.inbox import service as inbox
from parley.messaging import service as outbox
from parley.messaging.models import MessageStatus
from support import deliveries, drain, make_worker, post, recording_adapters, seed

SHOPPERS = ("Ada", "Grace", "Alan", "Frida")
TABLE_SCAN = re.compile(r"^SCAN (?!(\d+ )?CONSTANT ROWS?$)")


def _a_busy_store(db: Database, orders: int) -> None:
    """Orders placed, shipped and delivered by every demo shopper, their messages sent."""
    for n in range(orders):
        for delivery in deliveries(SHOPPERS[n % len(SHOPPERS)], order_id=900 + n, number=n):
            post(db, delivery)
    drain(make_worker(db, recording_adapters()))


def test_ingest_and_dispatch_never_scan_a_table(sqlite_template, tmp_path):
    path = tmp_path / "parley.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    seed(db)
    _a_busy_store(db, 12)
    sent: dict[str, object] = {}

    def record(_conn, _cursor, statement, parameters, _context, executemany):
        # INSERTs are left out: their plans list the foreign-key checks SQLite would make
        # if an upsert changed a parent key, which none of these does.
        if statement.lstrip().split()[0].upper() in {"SELECT", "UPDATE", "DELETE"}:
            sent.setdefault(statement, parameters[0] if executemany else parameters)

    event.listen(db.engine, "before_cursor_execute", record)
    start = clock.utc_now() + timedelta(days=1)
    for n, delivery in enumerate(deliveries("Grace", order_id=990, number=99, start=start)):
        post(db, delivery)
        if n == 1:  # the dispatch messages go out while the order is still moving
            drain(make_worker(db, recording_adapters()))
    drain(make_worker(db, recording_adapters()))
    event.remove(db.engine, "before_cursor_execute", record)

    scans = {}
    with db.engine.connect() as connection:
        for statement, parameters in sent.items():
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            scanned = [row[-1] for row in plan if TABLE_SCAN.match(row[-1])]
            if scanned:
                scans[" ".join(statement.split())[:160]] = scanned
    db.dispose()
    assert len(sent) > 20  # both paths were recorded
    assert scans == {}, "\n".join(f"{s}: {p}" for s, p in scans.items())


def test_a_receipt_finds_its_message_by_provider_id_not_among_the_stores_messages(
    sqlite_template, tmp_path
):
    """Receipts come two or three per message sent: their lookup must not grow with the
    store. Without statistics SQLite once chose the (workspace, customer) index for it
    and read every message of the store for each receipt."""
    path = tmp_path / "parley.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    workspace_id = seed(db)
    with db.transaction() as session:
        for n in range(3):
            outbox.insert_message(
                session,
                {
                    **outbox.blank_row(workspace_id=workspace_id, now=clock.utc_now()),
                    "idempotency_key": f"plan-{n}",
                    "message_type": "dispatch",
                    "channel": "whatsapp",
                    "status": MessageStatus.SENT,
                    "provider": "whatsapp",
                    "provider_message_id": f"wamid.plan-{n}",
                },
            )
    sent: dict[str, object] = {}

    def record(_conn, _cursor, statement, parameters, _context, executemany):
        if "messages" in statement:
            sent.setdefault(statement, parameters)

    event.listen(db.engine, "before_cursor_execute", record)
    for wamid, status in (("wamid.plan-1", "delivered"), ("wamid.unknown", "read")):
        receipt = StatusUpdate(
            channel=ChannelKind.WHATSAPP, provider_message_id=wamid, status=status
        )
        with db.transaction() as session:
            inbox.apply_status(session, workspace_id=workspace_id, status=receipt)
    event.remove(db.engine, "before_cursor_execute", record)

    plans = {}
    with db.engine.connect() as connection:
        for statement, parameters in sent.items():
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans[statement.split()[0]] = [
                row[-1] for row in plan if "messages" in row[-1].split()[:2]
            ]
    db.dispose()
    by_provider_id = (
        "SEARCH messages USING INDEX ix_messages_provider "
        "(workspace_id=? AND provider=? AND provider_message_id=?)"
    )
    assert plans == {"UPDATE": [by_provider_id], "SELECT": [by_provider_id]}
