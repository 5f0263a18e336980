"""A journey in the marketing lane: consent for marketing, and one-click unsubscribe headers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from parley.channels.base import ChannelKind, PermanentChannelError
from parley.customers.models import ConsentRecord, Customer
from parley.demo.seed import DemoShopper
from parley.demo.simulate import order_lifecycle
from parley.http.unsubscribe import _unsubscribe
from parley.integrations.shopify import payloads
from parley.jobs.models import Job, Lane
from parley.journeys.service import ADVANCE
from parley.messaging.models import Message
from parley.messaging.unsubscribe import make_token, read_token
from support import (
    SECRET,
    TWO_CONFIRMATIONS,
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    edit_journey,
    inbox_worker,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    signed,
    to_lane,
)

GRACE = {
    "id": 7002,
    "email": "grace@example.com",
    "phone": "+12025550143",
    "first_name": "Grace",
    "last_name": "Hopper",
}


@pytest.fixture
def marketing_confirmation(db):
    """The confirmation journey moved to the marketing lane (as a store might for a promo)."""
    workspace_id = seed(db)
    to_lane(db, "order_confirmation", "marketing", workspace_id=workspace_id)
    return workspace_id


def test_marketing_email_carries_one_click_unsubscribe_headers(
    db, frozen_clock, marketing_confirmation
):
    adapters = recording_adapters()
    post(db, deliveries("Ada")[0])  # Ada consented to marketing email
    drain(make_worker(db, adapters))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = email.headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://parley.test/unsubscribe/")
    [message] = rows(db, Message)
    assert read_token(url.rsplit("/", 1)[1], secret_key="k") == (
        marketing_confirmation,
        message.customer_id,
        "email",
    )


def test_marketing_email_without_marketing_consent_is_skipped_with_the_reason(
    db, frozen_clock, marketing_confirmation
):
    adapters = recording_adapters()
    post(db, deliveries("Alan")[0])  # Alan never consented to marketing
    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message)
    assert (message.status, message.status_reason) == (
        "skipped",
        "no channel allowed: email: no marketing consent",
    )


def test_transactional_email_has_no_unsubscribe_headers(db, frozen_clock):
    seed(db)
    adapters = recording_adapters()
    post(db, deliveries("Ada")[0])
    drain(make_worker(db, adapters))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.headers == {}


def _journey_jobs(db) -> dict[str, str]:
    return {job.idempotency_key: job.lane for job in rows(db, Job) if job.kind == ADVANCE}


def test_a_marketing_journeys_next_step_stays_in_the_marketing_lane(
    db, frozen_clock, marketing_confirmation
):
    # Given a marketing journey that sends twice in a row
    edit_journey(
        db, "order_confirmation", workspace_id=marketing_confirmation, steps=TWO_CONFIRMATIONS
    )
    post(db, deliveries("Ada")[0])  # Ada consented to marketing email

    # When the first send goes out
    asyncio.run(make_worker(db, recording_adapters()).run_once())

    # Then the job for the second waits in the marketing lane, as the first did
    assert _journey_jobs(db) == {"journey:1:0": Lane.MARKETING, "journey:1:1": Lane.MARKETING}


def test_a_marketing_journeys_fallback_to_the_next_channel_stays_in_the_marketing_lane(
    db, frozen_clock, marketing_confirmation
):
    # Given the provider refuses Ada's marketing email for good
    adapters = recording_adapters()
    adapters[ChannelKind.EMAIL].script = [
        PermanentChannelError("mailbox unavailable", provider_code="550")
    ]
    post(db, deliveries("Ada")[0])

    # When the refusal is recorded
    asyncio.run(make_worker(db, adapters).run_once())

    # Then the job trying the next channel waits in the marketing lane
    assert _journey_jobs(db) == {"journey:1:0": Lane.MARKETING, "journey:1:0:x1": Lane.MARKETING}


def _store_sends(db, customer: dict, *, consented_at, webhook_id: str) -> None:
    """The store's ``customers/update`` for ``customer``, its consent dated ``consented_at``."""
    body, headers = signed(
        "customers/update",
        payloads.customer_payload(customer=customer, created_at=consented_at),
        webhook_id=webhook_id,
    )
    post(db, None, body=body, headers=headers)


def test_a_stop_refuses_marketing_sms_though_the_store_records_a_marketing_grant_after_it(
    db, frozen_clock, tmp_path
):
    # Given Grace texted STOP, then signed up for SMS marketing at the store's checkout
    seed(db)
    frozen_clock.advance(timedelta(hours=6))  # 11:00 in New York: not her quiet hours
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE["phone"], text="STOP")
    drain(inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path / "model"))
    _store_sends(
        db,
        {**GRACE, "sms_consent": True},
        consented_at=frozen_clock.advance(timedelta(minutes=5)),
        webhook_id="signs-up-at-checkout",
    )
    [grace] = rows(db, Customer, Customer.phone == GRACE["phone"])
    current = {
        (r.channel, r.purpose): r.is_granted
        for r in rows(db, ConsentRecord, ConsentRecord.customer_id == grace.id)
    }
    assert current == {("sms", "transactional"): False, ("sms", "marketing"): True}

    # When a promotion goes out on the dispatch journey's channels
    to_lane(db, "dispatch", "marketing")
    for delivery in deliveries("Grace", order_id=503, number=1503)[:2]:
        post(db, delivery)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))

    # Then it is not texted: until she texts START, her STOP forbids everything on SMS
    assert adapters[ChannelKind.SMS].sent == []
    [promotion] = rows(db, Message, Message.message_type == "dispatch", Message.channel.is_(None))
    assert (promotion.status, promotion.status_reason) == (
        "skipped",
        "no channel allowed: whatsapp: no marketing consent; sms: opted out; "
        "email: no marketing consent",
    )


# Two store customers (two Shopify ids, never merged) who share one phone and one email.
MUM = {"id": 8101, "first_name": "May", "last_name": "Ray"}
SON = {"id": 8102, "first_name": "Sol", "last_name": "Ray"}
FAMILY_PHONE = "+12025550177"
FAMILY_EMAIL = "family@example.com"


def _family_signs_up(db, frozen_clock, **consent: bool) -> None:
    """Mum, then her son, sign up at the store with the family's phone and email."""
    signed_up = frozen_clock.now - timedelta(days=30)
    for person in (MUM, SON):
        _store_sends(
            db,
            {**person, "phone": FAMILY_PHONE, "email": FAMILY_EMAIL, **consent},
            consented_at=signed_up,
            webhook_id=f"signs-up-{person['id']}",
        )
    assert len(rows(db, Customer, Customer.phone == FAMILY_PHONE)) == 2


def _son_orders(db, frozen_clock, *, steps: int) -> None:
    son = DemoShopper(
        str(SON["id"]), "Sol", "Ray", FAMILY_EMAIL, FAMILY_PHONE, "America/New_York", (), ""
    )
    lifecycle = order_lifecycle(
        secret=SECRET, order_id=903, number=1903, shopper=son, start=frozen_clock.now
    )
    for delivery in list(lifecycle)[:steps]:
        post(db, delivery)


def test_a_stop_from_a_phone_two_store_customers_share_stops_marketing_to_it_for_both(
    db, frozen_clock, tmp_path
):
    # Given mum and her son, two store customers, both signed up for SMS marketing on the
    # family phone; mum's profile holds the number, as the first to give it
    seed(db)
    frozen_clock.advance(timedelta(hours=6))  # 11:00 in New York: not quiet hours
    _family_signs_up(db, frozen_clock, sms_consent=True)

    # When the phone texts STOP
    customer_writes(db, channel=ChannelKind.SMS, sender=FAMILY_PHONE, text="STOP")
    drain(inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path / "model"))

    # Then a promotion planned for the son is not texted to the number that said STOP
    to_lane(db, "dispatch", "marketing")
    _son_orders(db, frozen_clock, steps=2)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert adapters[ChannelKind.SMS].sent == []
    [son] = rows(db, Customer, Customer.first_name == "Sol")
    [promotion] = rows(
        db,
        Message,
        Message.customer_id == son.id,
        Message.message_type == "dispatch",
        Message.channel.is_(None),
    )
    assert (promotion.status, promotion.status_reason) == (
        "skipped",
        "no channel allowed: whatsapp: no marketing consent; sms: opted out; "
        "email: no marketing consent",
    )


def test_an_unsubscribe_from_an_email_two_store_customers_share_stops_marketing_to_it(
    db, frozen_clock, tmp_path
):
    # Given mum and her son, both signed up for marketing email at the family address
    seed(db)
    _family_signs_up(db, frozen_clock, email_consent=True)
    mum, son = rows(db, Customer, Customer.email == FAMILY_EMAIL)

    # When the family address unsubscribes by the link in an email sent to mum
    token = make_token(secret_key="k", workspace_id=1, customer_id=mum.id, channel="email")
    _unsubscribe(db, "k", token)

    # Then the son's promotion is not emailed to the address that unsubscribed
    to_lane(db, "order_confirmation", "marketing")
    _son_orders(db, frozen_clock, steps=1)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message, Message.customer_id == son.id)
    assert (message.status, message.status_reason) == (
        "skipped",
        "no channel allowed: email: opted out",
    )
