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
from parley.db import Database
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
