"""A store's template that cannot be filled in for a real order is a skipped send with
its reason, not a job that retries until it is dead-lettered.

``catalog.save_template`` compiles a template and renders it on a sample order only, so
wording that fails on one real order's data reaches the send path: that customer heard
nothing, and the message row must say why (DESIGN: "the reason for every skipped send is
recorded and visible").
"""

from __future__ import annotations

from parley.channels.base import ChannelKind
from parley.messaging import catalog
from parley.messaging.models import Message
from parley.messaging.types import MessageType
from support import deliveries, drain, make_worker, post, recording_adapters, rows, seed


def test_a_template_that_fails_on_the_real_order_is_recorded_skipped_with_why(db, frozen_clock):
    seed(db)
    with db.transaction() as session:
        catalog.save_template(
            session,
            workspace_id=1,
            message_type=MessageType.ORDER_CONFIRMATION,
            channel=ChannelKind.EMAIL,
            content={
                "subject": "Order {{ order.number }}",
                "text": "Each item costs {{ order.total|float / (order.item_count - 1) }}",
            },
        )
    adapters = recording_adapters()
    placed, *_ = deliveries("Ada")

    post(db, placed)
    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message, Message.message_type == "order_confirmation")
    assert message.status == "skipped"
    assert "text: float division by zero" in (message.status_reason or "")
