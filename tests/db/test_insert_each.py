"""``insert_each_returning``: one result per row, in order, None where a row was skipped."""

from __future__ import annotations

from parley.clock import utc_now
from parley.db.upsert import insert_each_returning
from parley.messaging import service as outbox
from parley.messaging.models import Message, MessageStatus
from support import rows, seed


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


def test_each_row_gets_its_id_in_order_and_a_taken_key_gets_none(db):
    workspace_id = seed(db)
    with db.transaction() as session:
        [taken] = insert_each_returning(
            session, outbox._insert_message(session), [_row(workspace_id, "a", "first a")]
        )
    with db.transaction() as session:
        ids = insert_each_returning(
            session,
            outbox._insert_message(session),
            [
                _row(workspace_id, "b", "b"),
                _row(workspace_id, "a", "second a"),
                _row(workspace_id, "c", "c"),
                _row(workspace_id, "b", "second b"),
            ],
        )
    assert taken is not None
    assert ids[1] is ids[3] is None
    assert ids[0] is not None
    assert ids[2] is not None
    assert ids[0] < ids[2]
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
    assert stored["c"].attachments is None
    assert stored["c"].created_at.tzinfo is not None
