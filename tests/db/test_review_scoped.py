"""``in_workspaces`` given no pairs matches no row: an empty ``or_()`` is no condition at
all, and a caller that forgot to check for an empty batch read every store's rows."""

from __future__ import annotations

import warnings

from sqlalchemy import select

from parley.clock import utc_now
from parley.db.scoped import in_workspaces
from parley.messaging import service as outbox
from parley.messaging.models import Message, MessageStatus
from parley.workspaces import service as workspaces
from support import seed


def test_no_pairs_find_no_row_in_any_store(db):
    demo = seed(db)
    with db.transaction() as session:
        other = workspaces.create_workspace(session, slug="other", name="Other").id
        for workspace_id in (demo, other):
            session.add(
                Message(
                    **{
                        **outbox.blank_row(workspace_id=workspace_id, now=utc_now()),
                        "idempotency_key": f"key-{workspace_id}",
                        "message_type": "order_confirmation",
                        "channel": "email",
                        "body": "hello",
                        "status": MessageStatus.SENT,
                    }
                )
            )

    with db.transaction() as session, warnings.catch_warnings():
        warnings.simplefilter("error")  # SQLAlchemy deprecates an empty or_() too
        condition = in_workspaces(session, Message.workspace_id, Message.idempotency_key, [])
        found = session.scalars(select(Message.idempotency_key).where(condition)).all()

    assert found == []
