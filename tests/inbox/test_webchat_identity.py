"""A web-chat visitor who gives their email joins the store's profile for that email."""

from __future__ import annotations

from parley.channels.base import ChannelKind
from parley.customers.models import CustomerMerge
from parley.inbox import service as inbox
from support import customer_writes, rows, seed


def test_a_visitor_giving_a_known_email_joins_that_customer(db):
    workspace_id = seed(db)
    visitor = customer_writes(db, channel=ChannelKind.WEBCHAT, sender="v-123", text="hi")
    with db.transaction() as session:
        customer_id = inbox.identify_visitor(
            session, workspace_id=workspace_id, visitor_id="v-123", email=" Ada@Example.com "
        )
    ada = rows(db, CustomerMerge)[0].kept_customer_id
    assert customer_id == ada
    again = customer_writes(db, channel=ChannelKind.WEBCHAT, sender="v-123", text="me again")
    assert again.customer_id == ada
    assert again.conversation_id == visitor.conversation_id


def test_a_malformed_email_changes_nothing(db):
    workspace_id = seed(db)
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="v-9", text="hi")
    with db.transaction() as session:
        assert (
            inbox.identify_visitor(
                session, workspace_id=workspace_id, visitor_id="v-9", email="not-an-email"
            )
            is None
        )
    assert rows(db, CustomerMerge) == []
