"""``write_rows`` over ``unnested``: a batch's rows each get their own values."""

from __future__ import annotations

from sqlalchemy import update

from parley.clock import utc_now
from parley.db.upsert import batch_values, dialect_of, write_rows
from parley.messaging import service as outbox
from parley.messaging.models import Message, MessageStatus
from support import rows, seed

MESSAGES = outbox.MESSAGES


def _statement(dialect: str) -> object:
    batch = batch_values(
        dialect,
        {"message": MESSAGES.c.id, "body": MESSAGES.c.body, "decision": MESSAGES.c.decision},
    )
    return (
        update(MESSAGES)
        .where(MESSAGES.c.id == batch["message"])
        .values(body=batch["body"], decision=batch["decision"])
    )


def test_each_row_of_a_batch_gets_its_own_values_json_lists_included(db):
    workspace_id = seed(db)
    with db.transaction() as session:
        stored = [
            Message(
                **{
                    **outbox.blank_row(workspace_id=workspace_id, now=utc_now()),
                    "idempotency_key": key,
                    "message_type": "order_confirmation",
                    "channel": "email",
                    "body": "before",
                    "status": MessageStatus.SENT,
                }
            )
            for key in ("a", "b", "c")
        ]
        session.add_all(stored)
    ids = [message.id for message in stored]
    with db.transaction() as session:
        write_rows(
            session,
            _statement(dialect_of(session)),
            [
                {"message": ids[2], "body": "third", "decision": [{"channel": "sms"}]},
                {"message": ids[0], "body": "first", "decision": []},
            ],
        )

    found = {message.id: (message.body, message.decision) for message in rows(db, Message)}
    assert found == {
        ids[0]: ("first", []),
        ids[1]: ("before", []),
        ids[2]: ("third", [{"channel": "sms"}]),
    }
