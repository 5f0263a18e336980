"""Frequency caps (RELIABILITY S17): at most one marketing message per channel in the
store's window, however many sends decide at once; order updates are never capped."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from parley.channels.base import ChannelKind, PermanentChannelError, TransientChannelError
from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.journeys import service as journeys
from parley.messaging import frequency
from parley.messaging.frequency import FrequencyCaps
from parley.messaging.models import MarketingSlot, Message
from parley.workspaces.models import Workspace
from support import (
    count,
    deliveries,
    drain,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    to_lane,
)


def _ada(db) -> int:
    [ada] = rows(db, Customer, Customer.email == "ada@example.com")
    return ada.id


def _take(db, customer_id: int, key: str, window=timedelta(hours=16)):
    with db.transaction() as session:
        return frequency.take_slot(
            session,
            workspace_id=1,
            customer_id=customer_id,
            channel="email",
            idempotency_key=key,
            now=utc_now(),
            window=window,
        )


def test_two_sends_deciding_at_the_same_moment_take_the_slot_once(db, frozen_clock):
    seed(db)
    ada = _ada(db)
    for attempt in range(5):
        start = threading.Barrier(2)
        results: dict[str, object] = {}

        def decide(key: str, results=results, start=start) -> None:
            start.wait()
            results[key] = _take(db, ada, key)

        threads = [
            threading.Thread(target=decide, args=(f"round-{attempt}-{side}",)) for side in "ab"
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        passed = [key for key, last in results.items() if last is None]
        assert len(passed) == 1, results
        [stopped] = [last for last in results.values() if last is not None]
        assert stopped == utc_now()
        frozen_clock.advance(timedelta(hours=16))
    assert count(db, MarketingSlot) == 1


def test_the_same_message_decided_again_keeps_its_slot(db, frozen_clock):
    seed(db)
    ada = _ada(db)
    assert _take(db, ada, "promo:1") is None
    frozen_clock.advance(timedelta(minutes=5))
    assert _take(db, ada, "promo:1") is None  # e.g. its sender had no room the first time
    assert _take(db, ada, "promo:2") == utc_now()
    frozen_clock.advance(timedelta(hours=16))
    assert _take(db, ada, "promo:2") is None


def _in_two_workers_at_once(db, adapters) -> None:
    workers = [make_worker(db, adapters) for _ in range(2)]
    threads = [
        threading.Thread(target=lambda w=worker: asyncio.run(w.run_until_idle()))
        for worker in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drain(make_worker(db, adapters))


def test_two_journeys_firing_together_send_one_marketing_email_and_record_the_other(
    db, frozen_clock
):
    seed(db)  # Ada agreed to marketing email
    to_lane(db, "order_confirmation", "marketing")
    post(db, deliveries("Ada", order_id=501, number=1501)[0])
    post(db, deliveries("Ada", order_id=502, number=1502)[0])
    adapters = recording_adapters()
    _in_two_workers_at_once(db, adapters)

    [sent] = adapters[ChannelKind.EMAIL].sent
    assert sent.to == "ada@example.com"
    messages = rows(db, Message, Message.message_type == "order_confirmation")
    assert sorted(m.status for m in messages) == ["sent", "skipped"]
    [skipped] = [m for m in messages if m.status == "skipped"]
    assert (skipped.channel, skipped.recipient, skipped.status_reason) == (
        "email",
        "ada@example.com",
        "frequency cap: marketing by email at most once every 16 h; the last went "
        "2026-03-02 10:00 UTC",
    )

    frozen_clock.advance(timedelta(hours=16))
    post(db, deliveries("Ada", order_id=503, number=1503)[0])
    drain(make_worker(db, adapters))
    assert len(adapters[ChannelKind.EMAIL].sent) == 2


def test_order_updates_are_never_capped(db, frozen_clock):
    seed(db)
    post(db, deliveries("Ada", order_id=501, number=1501)[0])
    post(db, deliveries("Ada", order_id=502, number=1502)[0])
    adapters = recording_adapters()
    _in_two_workers_at_once(db, adapters)
    assert len(adapters[ChannelKind.EMAIL].sent) == 2
    assert count(db, MarketingSlot) == 0


def test_a_store_without_a_cap_on_email_sends_every_marketing_email(db, frozen_clock):
    seed(db)
    to_lane(db, "order_confirmation", "marketing")
    with db.transaction() as session:
        store = session.get_one(Workspace, 1)
        store.settings = {**store.settings, "frequency_caps": {"email": 0}}
    post(db, deliveries("Ada", order_id=501, number=1501)[0])
    post(db, deliveries("Ada", order_id=502, number=1502)[0])
    adapters = recording_adapters()
    drain(make_worker(db, adapters))
    assert len(adapters[ChannelKind.EMAIL].sent) == 2


def test_caps_are_klaviyos_defaults_until_a_store_sets_its_own():
    assert FrequencyCaps.of({}).window("email") == timedelta(hours=16)
    assert FrequencyCaps.of({}).window("sms") == timedelta(hours=24)
    assert FrequencyCaps.of({"frequency_caps": {"sms": 0}}).window("sms") is None
    for hours in (-1, 721, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 720 hours"):
            FrequencyCaps({"email": hours})


def test_a_promotion_the_stores_rate_holds_back_does_not_cap_her_next_one(db, frozen_clock):
    # Two promotions by email; the store sends one marketing message an hour, and Alan
    # and Ada each agreed to marketing email
    workspace_id = seed(db)
    to_lane(db, "order_confirmation", "marketing")
    to_lane(db, "dispatch", "marketing")
    with db.transaction() as session:
        store = session.get_one(Workspace, workspace_id)
        store.settings = {**store.settings, "marketing_rate": {"per_hour": 1}}
        for email in ("alan@example.com", "ada@example.com"):
            [customer] = session.scalars(select(Customer).where(Customer.email == email))
            customers.record_consent(
                session,
                workspace_id=workspace_id,
                customer_id=customer.id,
                channel="email",
                purpose="marketing",
                is_granted=True,
                source="checkout",
            )
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan", order_id=701, number=1701)[0])
    drain(worker)
    ada_placed, ada_dispatched, *_ = deliveries("Ada", order_id=702, number=1702)
    post(db, ada_placed)
    drain(worker)
    assert [m.to for m in adapters[ChannelKind.EMAIL].sent] == ["alan@example.com"]

    # Ada's waits for the next hour, holding no slot, and the store then switches the
    # promotion off: it never goes
    [alan] = rows(db, Customer, Customer.email == "alan@example.com")
    assert [(slot.customer_id, slot.channel) for slot in rows(db, MarketingSlot)] == [
        (alan.id, "email")
    ]
    with db.transaction() as session:
        journeys.update_journey(
            session, workspace_id=workspace_id, key="order_confirmation", is_enabled=False
        )
    frozen_clock.advance(timedelta(hours=2))
    drain(worker)

    # Her order ships: her first marketing email of the day goes
    post(db, ada_dispatched)
    drain(worker)
    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.recipient, dispatch.status, dispatch.status_reason) == (
        "ada@example.com",
        "sent",
        None,
    )
    assert [m.to for m in adapters[ChannelKind.EMAIL].sent] == [
        "alan@example.com",
        "ada@example.com",
    ]


def test_a_promotion_the_provider_refused_does_not_cap_her_next_one(db, frozen_clock):
    # Given Ada agreed to marketing email, and the mail server refuses the first
    # promotion's content outright
    seed(db)
    to_lane(db, "order_confirmation", "marketing")
    to_lane(db, "dispatch", "marketing")
    adapters = recording_adapters()
    adapters[ChannelKind.EMAIL].script.append(
        PermanentChannelError("5.7.1 message content rejected", provider_code="554")
    )
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Ada", order_id=801, number=1801)
    post(db, placed)
    drain(worker)
    [confirmation] = rows(
        db, Message, Message.message_type == "order_confirmation", Message.channel == "email"
    )
    assert (confirmation.status, confirmation.status_reason) == (
        "failed",
        "5.7.1 message content rejected",
    )

    # When her order ships an hour later
    frozen_clock.advance(timedelta(hours=1))
    post(db, dispatched)
    drain(worker)

    # Then the promotion goes: the one that never reached her holds no slot
    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.recipient, dispatch.status, dispatch.status_reason) == (
        "ada@example.com",
        "sent",
        None,
    )
    assert [m.to for m in adapters[ChannelKind.EMAIL].sent] == ["ada@example.com"]
    assert [slot.idempotency_key for slot in rows(db, MarketingSlot)] == [dispatch.idempotency_key]


def test_a_promotion_that_failed_after_the_provider_may_have_taken_it_keeps_its_slot(
    db, frozen_clock
):
    # Given Ada's promotion ends in the dead letter after timeouts, any of which may have
    # reached her
    seed(db)
    to_lane(db, "order_confirmation", "marketing")
    to_lane(db, "dispatch", "marketing")
    adapters = recording_adapters()
    adapters[ChannelKind.EMAIL].script.extend(TransientChannelError("timed out") for _ in range(20))
    worker = make_worker(db, adapters, max_attempts_base=2)
    placed, dispatched, *_ = deliveries("Ada", order_id=802, number=1802)
    post(db, placed)
    for _ in range(8):
        drain(worker)
        frozen_clock.advance(timedelta(minutes=10))
    [confirmation] = rows(
        db, Message, Message.message_type == "order_confirmation", Message.channel == "email"
    )
    assert confirmation.status_reason == "dead letter after 8 attempts: timed out"
    adapters[ChannelKind.EMAIL].script.clear()

    # When her order ships within the cap's 16 hours
    post(db, dispatched)
    drain(worker)

    # Then the next promotion is capped, as if the first had gone
    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert dispatch.status == "skipped"
    assert dispatch.status_reason.startswith("frequency cap: marketing by email")
    assert adapters[ChannelKind.EMAIL].sent == []
