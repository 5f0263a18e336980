"""Exit rules judged on when things happened, not on when parley heard of them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley import clock, events
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import Message
from parley.store_events import service as store_events
from parley.store_events.service import Delivery
from parley.workspaces.models import Workspace
from support import drain, edit_journey, make_worker, recording_adapters, rows, seed, shopper

ADA = shopper("Ada")
CUSTOMER = {"external_id": "7001", "email": ADA.email, "first_name": "Ada"}


def _receive(db, key: str, type_: str, payload: dict, occurred_at) -> None:
    """An event as the generic API takes it in, stamped with when it happened."""
    with db.transaction() as session:
        workspace = session.get_one(Workspace, 1)
        event = events.Event.build(
            events.EventType(type_),
            events.parse_payload(events.EventType(type_), payload),
            occurred_at,
        )
        store_events.ingest(
            session,
            workspace=workspace,
            delivery=Delivery(source="api", delivery_key=key, topic=type_, headers={}, body=key),
            mapped=[event],
        )


def _cart_reminder_an_hour_after_checkout(db) -> None:
    """The store's order confirmation reworked into a cart reminder: it ends once the
    customer orders after starting the checkout (an order from last month does not)."""
    seed(db)
    edit_journey(
        db,
        "order_confirmation",
        trigger={"event": "checkout.started"},
        run_key="checkout",
        exit=[{"event": "order.created", "match": "customer", "since_run_start": True}],
        steps=[{"type": "wait", "hours": 1}, {"type": "send", "message": "order_confirmation"}],
    )


def _checkout(db, at) -> None:
    payload = {"external_id": "c-1", "customer": CUSTOMER, "email": ADA.email}
    _receive(db, "checkout", "checkout.started", payload, at)


def _order(db, at) -> None:
    payload = {"external_id": "o-1", "number": "#1", "customer": CUSTOMER, "email": ADA.email}
    _receive(db, "order", "order.created", payload, at)


def test_an_order_placed_after_the_checkout_ends_the_run_though_it_arrived_first(db, frozen_clock):
    """The checkout's delivery was held up (a platform retry): the order, placed two
    minutes after the checkout began, reached parley three minutes before it."""
    _cart_reminder_an_hour_after_checkout(db)
    started = clock.utc_now()
    frozen_clock.advance(timedelta(minutes=2))
    _order(db, clock.utc_now())
    frozen_clock.advance(timedelta(minutes=3))
    _checkout(db, started)
    worker = make_worker(db, recording_adapters())
    drain(worker)
    frozen_clock.advance(timedelta(hours=1))
    drain(worker)

    [run] = rows(db, JourneyRun)
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, "order.created")
    assert rows(db, Message) == []


@pytest.mark.parametrize(
    ("days_before", "order_arrives_first"),
    [
        pytest.param(30, True, id="last_months_order"),
        pytest.param(0.001, True, id="order_just_before"),
        pytest.param(30, False, id="last_months_order_imported_after"),
        pytest.param(0.001, False, id="order_just_before_arriving_after"),
    ],
)
def test_an_order_placed_before_the_checkout_leaves_the_run_going(
    db, frozen_clock, days_before, order_arrives_first
):
    """Whichever reaches parley first: an order placed before the checkout began (one
    from last month a store imports, or one whose delivery was held up) is not the
    order this checkout became."""
    _cart_reminder_an_hour_after_checkout(db)
    placed = clock.utc_now() - timedelta(days=days_before)
    if order_arrives_first:
        _order(db, placed)
    _checkout(db, clock.utc_now())
    if not order_arrives_first:
        frozen_clock.advance(timedelta(minutes=1))
        _order(db, placed)
    worker = make_worker(db, recording_adapters())
    drain(worker)
    frozen_clock.advance(timedelta(hours=1))
    drain(worker)

    [run] = rows(db, JourneyRun)
    assert (run.status, run.exit_reason) == (RunStatus.COMPLETED, None)
    assert [m.message_type for m in rows(db, Message)] == ["order_confirmation"]


def test_the_event_that_starts_a_run_does_not_end_it(db, frozen_clock):
    """A thank-you for a customer's order that a later order of theirs makes moot: the
    order that triggered it is not that later order."""
    seed(db)
    edit_journey(
        db,
        "order_confirmation",
        run_key="customer",
        exit=[{"event": "order.created", "match": "customer", "since_run_start": True}],
        steps=[{"type": "wait", "hours": 1}, {"type": "send", "message": "order_confirmation"}],
    )
    _order(db, clock.utc_now() - timedelta(minutes=5))
    worker = make_worker(db, recording_adapters())
    drain(worker)
    frozen_clock.advance(timedelta(hours=1))
    drain(worker)

    [run] = rows(db, JourneyRun)
    assert (run.status, run.exit_reason) == (RunStatus.COMPLETED, None)
    assert [m.message_type for m in rows(db, Message)] == ["order_confirmation"]
