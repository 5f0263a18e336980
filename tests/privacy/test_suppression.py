"""A customer's "no" outlives their erasure (RELIABILITY P3): STOP, redact, re-import from
Shopify, and the marketing send is still refused. Nor does the store's next record of
them, carrying its consent from before the "no", undo it while they are on file."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from parley import clock
from parley.accounts.models import AuditEntry
from parley.channels.base import ChannelKind
from parley.customers import suppression
from parley.customers.models import ConsentRecord, Customer, Suppression
from parley.http.unsubscribe import _unsubscribe
from parley.integrations.shopify import payloads
from parley.jobs.worker import Worker, WorkerConfig
from parley.messaging.models import Message
from parley.messaging.unsubscribe import make_token
from parley.privacy.models import PrivacyRequest
from parley.privacy.tasks import CustomerRequestTask
from parley.settings import get_settings
from parley.workspaces import service as workspaces
from support import (
    SECRET,
    all_adapters,
    count,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    rows,
    seed,
    signed,
    to_lane,
    where_found,
)

GRACE = {
    "id": 7002,
    "email": "grace@example.com",
    "phone": "+12025550143",
    "first_name": "Grace",
    "last_name": "Hopper",
}
ADA = {
    "id": 7001,
    "email": "ada@example.com",
    "phone": "+447911123456",
    "first_name": "Ada",
    "last_name": "Lovelace",
}
OTHER_SECRET = "the-other-store's-secret"


@pytest.fixture(autouse=True)
def _midday_in_new_york():
    """Grace's marketing texts go at once: it is noon where she is (not her quiet hours)."""
    clock.FrozenClock(datetime(2026, 6, 10, 16, 0, tzinfo=UTC)).install()
    yield
    clock.reset_clock()


@pytest.fixture(autouse=True)
def _fresh_keys():
    """Suppression keys come from the environment once per process: each test reads its own."""
    suppression._keys.cache_clear()
    yield
    suppression._keys.cache_clear()


def _import(db, customer: dict, *, at, webhook_id: str, slug: str = "demo", **kwargs) -> dict:
    """The store's platform sends the customer again (an import, a sign-up, an update):
    its consent dated ``at``, the record itself ``updated_at`` (default: ``at`` too)."""
    body, headers = signed(
        kwargs.get("topic", "customers/create"),
        payloads.customer_payload(
            customer=customer, created_at=at, updated_at=kwargs.get("updated_at")
        ),
        webhook_id=webhook_id,
        secret=kwargs.get("secret", SECRET),
    )
    return post(db, None, body=body, headers=headers, slug=slug)


def _redact(db, customer: dict, *, webhook_id: str) -> None:
    payload = {
        "shop_id": 1,
        "shop_domain": "parley-demo.myshopify.com",
        "customer": {key: customer[key] for key in ("id", "email", "phone")},
        "orders_to_redact": [],
    }
    body, headers = signed("customers/redact", payload, webhook_id=webhook_id)
    assert post(db, None, body=body, headers=headers)["status"] == "accepted"
    drain(Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig(batch_size=50)))


def _consent(db, phone: str, *, workspace_id: int = 1) -> dict[tuple[str, str], bool]:
    """The current statement per (channel, purpose) of the customer with this phone."""
    [customer] = rows(db, Customer, Customer.phone == phone, Customer.workspace_id == workspace_id)
    current: dict[tuple[str, str], bool] = {}
    for record in rows(db, ConsentRecord, ConsentRecord.customer_id == customer.id):
        current[(record.channel, record.purpose)] = record.is_granted
    return current


@pytest.fixture
def grace_said_stop(db, tmp_path):
    """Grace signed up for SMS marketing a month ago, texted STOP, and was erased; the SMS
    adapter that carried the one confirmation of her STOP. Returns when she signed up."""
    seed(db)
    signed_up = clock.utc_now() - timedelta(days=30)
    _import(db, {**GRACE, "sms_consent": True}, at=signed_up, webhook_id="grace-signs-up")
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is True
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE["phone"], text="STOP")
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert len(adapters[ChannelKind.SMS].sent) == 1  # the one confirmation of her STOP
    _redact(db, GRACE, webhook_id="redact-grace")
    assert count(db, Customer, Customer.email == GRACE["email"]) == 0
    return signed_up


def test_an_sms_stop_outlives_the_erasure_when_the_store_imports_the_customer_again(
    db, tmp_path, grace_said_stop
):
    # What the erasure kept: her refusal of SMS, for both purposes, and nothing that
    # names her.
    assert sorted((s.channel, s.purpose) for s in rows(db, Suppression)) == [
        ("sms", "marketing"),
        ("sms", "transactional"),
    ]
    assert where_found(db, "12025550143", "grace@example.com", "Hopper") == []
    [request] = rows(db, PrivacyRequest)
    assert request.summary.endswith(
        "; kept 2 opt-out(s) as suppressions (keyed hashes, no address)"
    )
    [entry] = rows(db, AuditEntry, AuditEntry.action == "customer_erased")
    assert entry.detail["kept_opt_outs"] == 2

    # The store's next import still says "subscribed", as it did before her STOP.
    _import(db, {**GRACE, "sms_consent": True}, at=grace_said_stop, webhook_id="re-import")
    assert _consent(db, GRACE["phone"]) == {
        ("sms", "marketing"): False,
        ("sms", "transactional"): False,
    }
    [kept] = rows(
        db, ConsentRecord, ConsentRecord.channel == "sms", ConsentRecord.purpose == "marketing"
    )
    assert kept.source == f"kept through an erasure on {clock.utc_now():%Y-%m-%d}"

    # A promotion on the dispatch journey's channels: WhatsApp, SMS, then email.
    to_lane(db, "dispatch", "marketing")
    for delivery in deliveries("Grace", order_id=503, number=1503)[:2]:
        post(db, delivery)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert adapters[ChannelKind.SMS].sent == []
    [promotion] = rows(db, Message, Message.message_type == "dispatch", Message.channel.is_(None))
    assert (promotion.status, promotion.status_reason) == (
        "skipped",
        "no channel allowed: whatsapp: no marketing consent; sms: opted out; "
        "email: no marketing consent",
    )


def test_a_customer_erased_without_refusing_anything_is_messaged_as_the_import_says(db, tmp_path):
    """The control: without a kept "no", the same re-import grants SMS marketing."""
    seed(db)
    signed_up = clock.utc_now() - timedelta(days=30)
    _import(db, {**GRACE, "sms_consent": True}, at=signed_up, webhook_id="grace-signs-up")
    _redact(db, GRACE, webhook_id="redact-grace")
    assert count(db, Suppression) == 0
    [request] = rows(db, PrivacyRequest)
    assert "kept" not in request.summary

    _import(db, {**GRACE, "sms_consent": True}, at=signed_up, webhook_id="re-import")
    assert _consent(db, GRACE["phone"]) == {("sms", "marketing"): True}
    to_lane(db, "dispatch", "marketing")
    for delivery in deliveries("Grace", order_id=503, number=1503)[:2]:
        post(db, delivery)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    [sms] = adapters[ChannelKind.SMS].sent
    assert sms.to == GRACE["phone"]


def test_a_marketing_grant_dated_after_the_erasure_lifts_that_refusal_only(db, grace_said_stop):
    later = clock.utc_now() + timedelta(days=2)
    _import(db, {**GRACE, "sms_consent": True}, at=later, webhook_id="signs-up-again")
    assert _consent(db, GRACE["phone"]) == {
        ("sms", "marketing"): True,
        ("sms", "transactional"): False,
    }
    assert [(s.channel, s.purpose) for s in rows(db, Suppression)] == [("sms", "transactional")]


def test_a_stale_grant_on_a_later_update_is_still_refused_and_logged(db, grace_said_stop, caplog):
    _import(db, {**GRACE}, at=grace_said_stop, webhook_id="re-import")
    with caplog.at_level(logging.INFO, logger="parley.customers.service"):
        _import(
            db,
            {**GRACE, "sms_consent": True},
            at=grace_said_stop,
            webhook_id="update",
            topic="customers/update",
        )
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is False
    assert count(db, Suppression) == 2
    assert "SMS marketing grant" not in caplog.text
    assert "sms marketing grant (dated" in caplog.text
    assert "12025550143" not in caplog.text


def test_start_from_the_returning_customer_restores_conversation_and_lifts_that_refusal_only(
    db, tmp_path, grace_said_stop
):
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE["phone"], text="START")
    assert _consent(db, GRACE["phone"]) == {
        ("sms", "marketing"): False,
        ("sms", "transactional"): True,
    }
    assert [(s.channel, s.purpose) for s in rows(db, Suppression)] == [("sms", "marketing")]
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    [confirmation] = adapters[ChannelKind.SMS].sent
    assert confirmation.to == GRACE["phone"]
    # A stale import afterwards still does not bring marketing back.
    _import(db, {**GRACE, "sms_consent": True}, at=grace_said_stop, webhook_id="re-import")
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is False


def test_a_message_from_the_erased_number_finds_the_refusal_and_gets_no_answer(
    db, tmp_path, grace_said_stop
):
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE["phone"], text="hello")
    [customer] = rows(db, Customer, Customer.phone == GRACE["phone"])
    refused = rows(db, ConsentRecord, ConsentRecord.customer_id == customer.id)
    assert {(r.channel, r.purpose, r.is_granted) for r in refused} == {
        ("sms", "marketing", False),
        ("sms", "transactional", False),
    }
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert adapters[ChannelKind.SMS].sent == []


def test_an_email_unsubscribe_outlives_the_erasure(db, tmp_path):
    seed(db)  # Ada consented to marketing email at checkout
    [ada] = rows(db, Customer, Customer.email == ADA["email"])
    _unsubscribe(
        db, "k", make_token(secret_key="k", workspace_id=1, customer_id=ada.id, channel="email")
    )
    _redact(db, ADA, webhook_id="redact-ada")
    assert [(s.channel, s.purpose) for s in rows(db, Suppression)] == [("email", "marketing")]

    _import(
        db,
        {**ADA, "email_consent": True},
        at=clock.utc_now() - timedelta(days=60),
        webhook_id="re-import",
    )
    to_lane(db, "order_confirmation", "marketing")
    post(db, deliveries("Ada", order_id=504, number=1504)[0])
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message, Message.message_type == "order_confirmation")
    assert (message.status, message.status_reason) == (
        "skipped",
        "no channel allowed: email: opted out",
    )


def test_the_refusal_is_kept_for_the_store_that_erased_them_only(db, grace_said_stop):
    with db.transaction() as session:
        other = workspaces.create_workspace(
            session, slug="other", name="Other store", shopify_secret=OTHER_SECRET
        ).id
    _import(
        db,
        {**GRACE, "sms_consent": True},
        at=grace_said_stop,
        webhook_id="other-store",
        slug="other",
        secret=OTHER_SECRET,
    )
    assert _consent(db, GRACE["phone"], workspace_id=other) == {("sms", "marketing"): True}


def test_a_kept_refusal_is_no_plain_hash_and_survives_a_key_rotation(
    db, grace_said_stop, monkeypatch
):
    [kept] = rows(db, Suppression, Suppression.purpose == "marketing")
    assert kept.digest not in {
        hashlib.sha256(value.encode()).hexdigest()
        for value in (GRACE["phone"], f"phone:{GRACE['phone']}", "12025550143")
    }
    old = suppression._keys()[0]
    former = json.dumps([get_settings().secret_key])
    monkeypatch.setenv("PARLEY_SECRET_KEY", "a-new-deployment-key")
    monkeypatch.setenv("PARLEY_CREDENTIALS_PREVIOUS_SECRET_KEYS", former)
    suppression._keys.cache_clear()
    assert suppression._keys()[0] != old
    assert suppression._keys()[1] == old
    _import(db, {**GRACE, "sms_consent": True}, at=grace_said_stop, webhook_id="re-import")
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is False


def _texts_grace_a_promotion(db, tmp_path) -> list:
    """A promotion on the dispatch journey's channels (WhatsApp, SMS, then email): the
    texts it sent."""
    to_lane(db, "dispatch", "marketing")
    for delivery in deliveries("Grace", order_id=503, number=1503)[:2]:
        post(db, delivery)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    return adapters[ChannelKind.SMS].sent


def test_a_store_record_carrying_its_consent_from_before_a_stop_does_not_undo_it(db, tmp_path):
    # Given Grace signed up for SMS marketing a month ago, then texted STOP
    seed(db)
    signed_up = clock.utc_now() - timedelta(days=30)
    _import(db, {**GRACE, "sms_consent": True}, at=signed_up, webhook_id="grace-signs-up")
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE["phone"], text="STOP")
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert len(adapters[ChannelKind.SMS].sent) == 1  # the one confirmation of her STOP

    # When the store edits her address: a new record, its SMS consent still the one it
    # dated a month ago
    _import(
        db,
        {**GRACE, "sms_consent": True},
        at=signed_up,
        updated_at=clock.utc_now(),
        webhook_id="address-edit",
        topic="customers/update",
    )

    # Then her STOP stands, and the promotion is not texted to her
    assert _consent(db, GRACE["phone"]) == {
        ("sms", "marketing"): False,
        ("sms", "transactional"): False,
    }
    assert _texts_grace_a_promotion(db, tmp_path) == []
    [promotion] = rows(db, Message, Message.message_type == "dispatch", Message.channel.is_(None))
    assert (promotion.status, promotion.status_reason) == (
        "skipped",
        "no channel allowed: whatsapp: no marketing consent; sms: opted out; "
        "email: no marketing consent",
    )


def test_a_store_record_carrying_its_consent_from_before_an_unsubscribe_does_not_undo_it(
    db, tmp_path
):
    # Given Ada, who consented to marketing email at checkout, then unsubscribed by link
    seed(db)
    [ada] = rows(db, Customer, Customer.email == ADA["email"])
    _unsubscribe(
        db, "k", make_token(secret_key="k", workspace_id=1, customer_id=ada.id, channel="email")
    )

    # When the store's next record of her still says "subscribed", as it did at checkout
    _import(
        db,
        {**ADA, "email_consent": True},
        at=clock.utc_now() - timedelta(days=60),
        updated_at=clock.utc_now(),
        webhook_id="address-edit",
        topic="customers/update",
    )

    # Then she stays unsubscribed, and the promotion is not emailed to her
    assert _consent(db, ADA["phone"])[("email", "marketing")] is False
    to_lane(db, "order_confirmation", "marketing")
    post(db, deliveries("Ada", order_id=504, number=1504)[0])
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message, Message.message_type == "order_confirmation")
    assert (message.status, message.status_reason) == (
        "skipped",
        "no channel allowed: email: opted out",
    )


def test_a_marketing_grant_the_store_dates_after_an_unsubscribe_subscribes_them_again(db):
    # Given Ada unsubscribed by link
    seed(db)
    [ada] = rows(db, Customer, Customer.email == ADA["email"])
    _unsubscribe(
        db, "k", make_token(secret_key="k", workspace_id=1, customer_id=ada.id, channel="email")
    )

    # When she signs up again at the store, after it
    _import(
        db,
        {**ADA, "email_consent": True},
        at=clock.utc_now() + timedelta(hours=2),
        webhook_id="signs-up-again",
        topic="customers/update",
    )

    # Then the store's new "yes" is hers
    assert _consent(db, ADA["phone"])[("email", "marketing")] is True


def test_a_late_delivery_of_an_older_store_record_does_not_undo_a_newer_unsubscribe(db):
    # Given Grace signed up at t1, and the store's record at t3 says she unsubscribed
    seed(db)
    now = clock.utc_now()
    t1, t2, t3 = now - timedelta(days=30), now - timedelta(days=2), now - timedelta(days=1)
    _import(db, {**GRACE, "sms_consent": True}, at=t1, webhook_id="v1")
    _import(
        db,
        {**GRACE, "sms_consent": "unsubscribed"},
        at=t3,
        webhook_id="v3",
        topic="customers/update",
    )
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is False

    # When Shopify delivers, late, the record of an address edit she made at t2
    _import(
        db,
        {**GRACE, "sms_consent": True},
        at=t1,
        updated_at=t2,
        webhook_id="v2-late",
        topic="customers/update",
    )

    # Then her unsubscribe stands
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is False


def test_a_late_delivery_of_an_older_refusal_does_not_undo_a_newer_store_grant(db):
    # Given the store's record at t2 says Grace subscribed to SMS marketing
    seed(db)
    now = clock.utc_now()
    t1, t2 = now - timedelta(days=3), now - timedelta(days=1)
    _import(db, {**GRACE, "sms_consent": True}, at=t2, webhook_id="v2")

    # When its record from t1, when she had unsubscribed, is delivered after it
    _import(
        db,
        {**GRACE, "sms_consent": "unsubscribed"},
        at=t1,
        webhook_id="v1-late",
        topic="customers/update",
    )

    # Then the store's latest word stands
    assert _consent(db, GRACE["phone"])[("sms", "marketing")] is True
