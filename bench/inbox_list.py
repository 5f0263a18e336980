"""The agents' inbox list at 10,000 conversations: server time of ``GET /inbox``.

Seeds one workspace with ``--conversations`` conversations (customers, identities, three
messages each, an assistant turn on most, read markers for half) by bulk inserts, signs an
agent in through the real login form, then times whole ASGI requests in-process (session
middleware, CSRF, the list queries, Jinja), ``--requests`` of each after a warm-up:

- ``GET /inbox`` with the default filters (open + pending, waiting-time order, page 1),
- ``GET /inbox?assignee=mine``, a search (``q=``), and a conversation page,
- the ceiling: ``GET /account`` on the same app, session and templates (a signed-in page
  with no list), and the bare ``SELECT`` of one page of conversations on the same engine.

Run: ``.venv/bin/python bench/inbox_list.py --db sqlite`` (or ``--db postgres``).
Goal: ``GET /inbox`` p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit
from benchkit import Row
from sqlalchemy import event, insert, select

GOAL_MS = 200.0
EMAIL = "agent@bench.parley.test"
PASSWORD = "bench agent password"
CHANNELS = ("whatsapp", "sms", "email", "instagram", "webchat")
INTENTS = ("track_order", "get_refund", "greeting", "cancel_order", "sizing")


def seed(url: str, conversations: int) -> tuple[int, int]:
    """Bulk-load the workspace; returns (its id, one open conversation id)."""
    from parley.accounts import service as accounts
    from parley.accounts.models import Role
    from parley.customers.models import Customer, CustomerIdentity
    from parley.db import Database
    from parley.inbox.models import AssistantTurn, Conversation, ConversationRead
    from parley.messaging.models import Message
    from parley.workspaces.models import Workspace

    db = Database(url)
    now = datetime.now(UTC)
    try:
        with db.transaction() as session:
            workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == "bench"))
            assert workspace_id is not None
            agent = accounts.create_user(
                session, email=EMAIL, name="Bench Agent", password=PASSWORD, now=now
            )
            admin = accounts.create_user(
                session,
                email="admin@bench.parley.test",
                name="Bench Admin",
                password=PASSWORD,
                now=now,
            )
            accounts.add_member(
                session, workspace_id=workspace_id, user_id=agent.id, role=Role.AGENT, now=now
            )
            accounts.add_member(
                session, workspace_id=workspace_id, user_id=admin.id, role=Role.ADMIN, now=now
            )
            agent_id, admin_id = agent.id, admin.id
        customers, identities, rows, messages, turns, marks = [], [], [], [], [], []
        statuses = ["open"] * 12 + ["pending"] * 3 + ["snoozed"] * 2 + ["resolved"] * 3
        for i in range(1, conversations + 1):
            channel = CHANNELS[i % len(CHANNELS)]
            status = statuses[i % len(statuses)]
            at = now - timedelta(minutes=conversations - i)
            customers.append(
                {
                    "id": i, "workspace_id": workspace_id, "first_name": "Shopper",
                    "last_name": f"No{i}", "email": f"shopper{i}@bench.example",
                    "phone": f"+1202555{i:04d}"[:12], "created_at": at, "updated_at": at,
                }
            )  # fmt: skip
            identities.append(
                {
                    "workspace_id": workspace_id, "customer_id": i, "kind": "email",
                    "value": f"shopper{i}@bench.example", "created_at": at,
                }
            )  # fmt: skip
            waiting = status in ("open", "pending") and i % 3 != 0
            rows.append(
                {
                    "id": i, "workspace_id": workspace_id, "customer_id": i, "status": status,
                    "owner": "human" if i % 4 == 0 else "assistant",
                    "assignee_id": (agent_id, admin_id, None, None, None)[i % 5],
                    "channel": channel, "low_confidence_count": 0, "has_assistant_replied": True,
                    "last_inbound_at": at, "last_message_at": at,
                    "waiting_since": at if waiting else None, "created_at": at, "updated_at": at,
                }
            )  # fmt: skip
            for n, direction in enumerate(("inbound", "outbound", "inbound")):
                messages.append(
                    {
                        "id": 3 * i + n, "workspace_id": workspace_id, "customer_id": i,
                        "conversation_id": i, "direction": direction,
                        "author": "customer" if direction == "inbound" else "assistant",
                        "idempotency_key": f"bench:{i}:{n}", "message_type": "reply",
                        "purpose": "transactional", "channel": channel,
                        "body": f"Message {n} of shopper {i}: where is my order #{1000 + i}?",
                        "headers": {}, "decision": [], "attempts": 0,
                        "status": "received" if direction == "inbound" else "delivered",
                        "created_at": at + timedelta(seconds=n),
                        "status_updated_at": at + timedelta(seconds=n),
                    }
                )  # fmt: skip
            if i % 5:
                turns.append(
                    {
                        "workspace_id": workspace_id, "conversation_id": i, "message_id": 3 * i,
                        "intent": INTENTS[i % len(INTENTS)], "confidence": 0.9, "entities": {},
                        "action": "answered", "lookups": [], "created_at": at,
                    }
                )  # fmt: skip
            if i % 2:
                marks.append(
                    {
                        "workspace_id": workspace_id, "conversation_id": i, "user_id": agent_id,
                        "read_at": at + timedelta(seconds=1),
                    }
                )  # fmt: skip
        with db.transaction() as session:
            for model, batch in (
                (Customer, customers),
                (CustomerIdentity, identities),
                (Conversation, rows),
                (Message, messages),
                (AssistantTurn, turns),
                (ConversationRead, marks),
            ):
                for start in range(0, len(batch), 5_000):
                    session.execute(insert(model), batch[start : start + 5_000])
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
        open_id = next(row["id"] for row in rows if row["status"] == "open")
        return workspace_id, open_id
    finally:
        db.dispose()


def timed(get: Callable[[], Any], n: int) -> list[float]:
    for _ in range(5):
        get()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        answer = get()
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.status_code
    return samples


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from parley.db import Database
    from parley.http.app import create_app
    from parley.inbox.models import Conversation
    from parley.runtime import Runtime
    from parley.settings import get_settings

    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="parley-bench-"))
    target = benchkit.Target(kind, workdir, pg_admin_url=opts.pg_url)
    try:
        url = target.fresh("inbox_list")
        # Its store is the 10,000 conversations seed() writes (with their own ids).
        benchkit.prepare_parley_db(url, history=0)
        t0 = time.monotonic()
        workspace_id, open_id = seed(url, opts.conversations)
        seed_s = time.monotonic() - t0
        settings = get_settings(database_url=url, embedded_worker=False)
        db = Database(url)
        statements = [0]
        event.listen(
            db.engine,
            "before_cursor_execute",
            lambda *_: statements.__setitem__(0, statements[0] + 1),
        )
        app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
        results: dict[str, Any] = {
            "db": kind,
            "conversations": opts.conversations,
            "seed_s": seed_s,
        }
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
            form = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token is not None
            signed = client.post(
                "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)}
            )
            assert signed.status_code == 303, signed.text

            def page(path: str) -> Callable[[], Any]:
                return lambda: client.get(path, headers={"accept": "text/html"})

            first = client.get("/inbox").text
            assert first.count('data-test="conversation-row"') == 50
            statements[0] = 0
            client.get("/inbox")
            results["inbox_statements"] = statements[0]
            for name, path in (
                ("inbox", "/inbox"),
                ("mine", "/inbox?assignee=mine"),
                ("search", "/inbox?q=shopper4242%40bench.example"),
                ("conversation", f"/inbox/{open_id}"),
                ("account", "/account"),
            ):
                samples = timed(page(path), opts.requests)
                results[name] = {
                    "p50_ms": benchkit.percentile(samples, 50),
                    "p95_ms": benchkit.percentile(samples, 95),
                }

        def bare() -> Any:
            with db.transaction() as session:
                list(
                    session.scalars(
                        select(Conversation)
                        .where(
                            Conversation.workspace_id == workspace_id,
                            Conversation.status.in_(("open", "pending")),
                        )
                        .order_by(Conversation.waiting_since, Conversation.last_message_at.desc())
                        .limit(51)
                    )
                )

            class Ok:
                status_code = 200

            return Ok()

        samples = timed(bare, opts.requests)
        results["bare_select"] = {
            "p50_ms": benchkit.percentile(samples, 50),
            "p95_ms": benchkit.percentile(samples, 95),
        }
        db.dispose()
        results["rows"] = [row.as_dict() for row in rows_of(results)]
        return results
    finally:
        if not opts.keep:
            target.cleanup()


def rows_of(r: dict[str, Any]) -> list[Row]:
    account = r["account"]["p50_ms"]
    return [
        Row(
            f"GET /inbox p95, {r['conversations']:,} conversations",
            r["inbox"]["p95_ms"],
            "ms",
            ceiling=r["account"]["p95_ms"],
            ceiling_label="GET /account p95, same app",
            goal=f"< {GOAL_MS:.0f} ms",
            passed=r["inbox"]["p95_ms"] < GOAL_MS,
            note=f"p50 {r['inbox']['p50_ms']:.1f} ms, {r['inbox_statements']} SQL statements "
            "per request (session, list, names, previews, labels, unread, tabs)",
        ),
        Row(
            "GET /inbox p50",
            r["inbox"]["p50_ms"],
            "ms",
            ceiling=account,
            ceiling_label="GET /account p50",
        ),
        Row(
            "GET /inbox?assignee=mine p50",
            r["mine"]["p50_ms"],
            "ms",
            ceiling=account,
            ceiling_label="GET /account p50",
        ),
        Row(
            "GET /inbox?q=<email> p50",
            r["search"]["p50_ms"],
            "ms",
            ceiling=account,
            ceiling_label="GET /account p50",
        ),
        Row(
            "GET /inbox/{id} p50 (list + timeline + sidebar)",
            r["conversation"]["p50_ms"],
            "ms",
            ceiling=account,
            ceiling_label="GET /account p50",
        ),
        Row(
            "bare SELECT of one page p50",
            r["bare_select"]["p50_ms"],
            "ms",
            note="the list's page query alone, same engine: the database floor",
        ),
    ]


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    title = f"inbox list on {result['db']} ({result.get('machine', benchkit.machine_line())})"
    return benchkit.render_table(title, rows, [f"seeded in {result['seed_s']:.1f} s"])


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley inbox list bench")
    p.add_argument("--conversations", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=50, help="timed requests per page")
    return p


def main() -> None:
    opts = parser().parse_args()
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    main()
