"""``insert_batch_returning``: one result per row, in the batch's order, None where a row
was not inserted (its key stored already, or an earlier row of the batch had it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from parley.clock import utc_now
from parley.db.upsert import insert_batch_returning
from parley.messaging import service as outbox
from parley.messaging.models import Message, MessageStatus
from parley.workspaces.service import create_workspace
from support import rows, seed

KEY = ("workspace_id", "idempotency_key")


def _row(workspace_id: int, key: str, body: str) -> dict[str, object]:
    return {
        **outbox.blank_row(workspace_id=workspace_id, now=utc_now()),
        "idempotency_key": key,
        "message_type": "order_confirmation",
        "channel": "email",
        "body": body,
        "status": MessageStatus.SENDING,
        "template": {"name": "order_confirmation", "language": "en", "parameters": ["Ada"]},
        "decision": [{"channel": "email", "ok": True}],
    }


def _insert(db, batch: list[dict[str, object]]) -> list[Any]:
    with db.transaction() as session:
        return insert_batch_returning(session, outbox._insert_message(session), batch, keys=KEY)


def test_each_row_gets_its_id_and_a_taken_or_repeated_key_gets_none(db):
    workspace_id = seed(db)
    [taken] = _insert(db, [_row(workspace_id, "a", "first a")])

    ids = _insert(
        db,
        [
            _row(workspace_id, "b", "b"),
            _row(workspace_id, "a", "second a"),
            _row(workspace_id, "c", "c"),
            _row(workspace_id, "b", "second b"),
        ],
    )

    assert taken is not None
    assert ids[1] is ids[3] is None
    stored = {m.idempotency_key: m for m in rows(db, Message)}
    assert {key: (m.id, m.body) for key, m in stored.items()} == {
        "a": (taken, "first a"),
        "b": (ids[0], "b"),
        "c": (ids[2], "c"),
    }
    assert stored["c"].template == {
        "name": "order_confirmation",
        "language": "en",
        "parameters": ["Ada"],
    }
    assert stored["c"].decision == [{"channel": "email", "ok": True}]
    assert stored["c"].headers == {}
    assert stored["c"].attachments is None
    assert stored["c"].created_at.tzinfo is not None


def test_the_same_key_in_two_workspaces_is_two_rows(db):
    first = seed(db)
    with db.transaction() as session:
        second = create_workspace(session, slug="other", name="Other store").id

    ids = _insert(db, [_row(first, "k", "first's"), _row(second, "k", "second's")])

    assert None not in ids
    stored = {m.id: (m.workspace_id, m.body) for m in rows(db, Message)}
    assert stored == {ids[0]: (first, "first's"), ids[1]: (second, "second's")}


def test_a_batch_is_one_statement_on_postgresql_and_a_statement_a_row_on_sqlite(db):
    workspace_id = seed(db)
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    ids = _insert(db, [_row(workspace_id, str(n), f"body {n}") for n in range(50)])

    inserts = [statement for statement in sent if statement.startswith("INSERT")]
    assert len(inserts) == (1 if db.is_postgres else 50)
    stored = {m.id: m.body for m in rows(db, Message)}
    assert [stored[message_id] for message_id in ids] == [f"body {n}" for n in range(50)]


def test_an_empty_batch_sends_nothing(db):
    seed(db)
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    assert _insert(db, []) == []
    assert sent == []
