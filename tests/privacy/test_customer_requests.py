"""Shopify's ``customers/redact`` and ``customers/data_request``: a customer's data in one
store erased, or gathered for the store owner, by a job after the delivery is answered."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from parley import clock
from parley.accounts.models import AuditEntry
from parley.channels import meta
from parley.channels.base import ChannelKind, StatusUpdate
from parley.channels.email_inbound import mailgun
from parley.commerce.models import Order
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.demo.simulate import order_lifecycle
from parley.errors import TryAgain
from parley.housekeeping import Retention, sweep
from parley.http.app import create_app
from parley.inbox import service as inbox
from parley.inbox.models import AssistantTurn, Conversation
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.journeys.models import JourneyRun
from parley.messaging.models import Message
from parley.privacy import erasure
from parley.privacy.models import PrivacyRequest
from parley.privacy.tasks import CustomerRequestTask
from parley.runtime import Runtime
from parley.settings import Settings, get_settings
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces import service as workspaces
from support import (
    API_KEY,
    all_adapters,
    count,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    rows,
    seed,
    shopper,
    signed,
    until_waiting_for_a_lock,
    where_found,
)

ADA = {"id": 7001, "email": "ada@example.com", "phone": "+447911123456"}
ADA_TRACES = ("ada@example.com", "7911123456", "Lovelace")
OTHER_SECRET = "the-other-store's-secret"
DEMO = Settings()
EMPTIED = ("{}", {}, "body erased with the customer it named")
"""A raw delivery's body, headers and reason once the erasure emptied it."""


def _privacy_worker(db) -> Worker:
    return Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig(batch_size=50))


def _request(db, topic: str, payload: dict, *, webhook_id: str) -> dict:
    body, headers = signed(topic, payload, webhook_id=webhook_id)
    return post(db, None, body=body, headers=headers)


def _redact_ada(db, *, webhook_id: str = "redact-ada") -> dict:
    payload = {
        "shop_id": 1,
        "shop_domain": "parley-demo.myshopify.com",
        "customer": ADA,
        "orders_to_redact": [501],
    }
    return _request(db, "customers/redact", payload, webhook_id=webhook_id)


@contextmanager
def _app(db) -> Iterator[TestClient]:
    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as client:
        yield client


def _whatsapp(client: TestClient, text: str, *, message_id: str) -> dict:
    """Ada writes on WhatsApp, as Meta delivers it (signed, her number as ``wa_id``)."""
    message = {"from": "447911123456", "id": message_id, "type": "text", "text": {"body": text}}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": DEMO.whatsapp_phone_number_id},
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": "447911123456"}],
        "messages": [{**message, "timestamp": "1767225600"}],
    }
    change = {"field": "messages", "value": value}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [change]}]})
    signature = meta.sign(body.encode(), DEMO.demo_meta_app_secret)
    response = client.post(
        "/webhooks/whatsapp/demo",
        content=body,
        headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _mailgun(client: TestClient, fields: dict[str, str]) -> None:
    """An email to the store, as Mailgun's route posts it (signed, the sender a field)."""
    timestamp, token = str(int(time.time())), f"token-{fields['Message-Id']}"
    signature = mailgun.sign(timestamp, token, DEMO.demo_mailgun_signing_key)
    signed_fields = {**fields, "timestamp": timestamp, "token": token, "signature": signature}
    response = client.post("/webhooks/email/demo", data=signed_fields)
    assert response.status_code == 200, response.text


@pytest.fixture
def stores(db, tmp_path):
    """The demo store where Ada and Grace each ordered, were sent the order's messages and
    wrote in, and another store where Ada is a customer too; the other store's id."""
    seed(db)
    with db.transaction() as session:
        other = workspaces.create_workspace(
            session, slug="other", name="Other store", shopify_secret=OTHER_SECRET
        ).id
    for delivery in deliveries("Ada", order_id=501, number=1501):
        post(db, delivery)
    for delivery in deliveries("Grace", order_id=502, number=1502):
        post(db, delivery)
    for delivery in order_lifecycle(
        secret=OTHER_SECRET,
        order_id=601,
        number=2601,
        shopper=shopper("Ada"),
        start=clock.utc_now(),
    ):
        post(db, delivery, slug="other")
    customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender="+447911123456",
        text="Ada Lovelace: where is #1501?",
    )
    customer_writes(db, channel=ChannelKind.SMS, sender="+12025550143", text="Grace: thanks!")
    # A topic parley stores without mapping, naming Ada's number as WhatsApp writes it.
    unmapped = {"customer_id": 7001, "phone_number": "447911123456"}
    body, headers = signed("customers_marketing_consent/update", unmapped, webhook_id="consent")
    assert post(db, None, body=body, headers=headers)["status"] == "ignored"
    # And one naming her by email, in another case than the one parley keeps.
    unmapped = {"email": "ADA@Example.com", "accepts_marketing": True}
    body, headers = signed("customers_email_marketing_consent/update", unmapped, webhook_id="e")
    assert post(db, None, body=body, headers=headers)["status"] == "ignored"
    drain(inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path / "model"))
    return other


def _rows_pointing_at_rows_gone(db) -> list:
    """SQLite's own check of every foreign key (the erasure runs with them unchecked
    there); PostgreSQL checks each as it goes, so it has none to report."""
    if db.is_postgres:
        return []
    with db.engine.connect() as connection:
        return list(connection.exec_driver_sql("PRAGMA foreign_key_check"))


def _grace(db) -> dict[str, int]:
    """How many of each kind of row the demo store holds about Grace."""
    [grace] = rows(db, Customer, Customer.email == "grace@example.com", Customer.workspace_id == 1)
    mine = grace.id
    return {
        "identities": count(db, CustomerIdentity, CustomerIdentity.customer_id == mine),
        "consents": count(db, ConsentRecord, ConsentRecord.customer_id == mine),
        "orders": count(db, Order, Order.customer_id == mine),
        "messages": count(db, Message, Message.customer_id == mine),
        "conversations": count(db, Conversation, Conversation.customer_id == mine),
        "runs": count(db, JourneyRun, JourneyRun.customer_id == mine),
        "events": count(db, StoreEvent, StoreEvent.customer_id == mine),
        "deliveries": count(db, WebhookDelivery, WebhookDelivery.body.contains("grace@example")),
    }


def test_customer_redact_erases_everything_the_store_held_on_them_and_nothing_else(db, stores):
    before_grace = _grace(db)
    assert before_grace["messages"] >= 3
    assert before_grace["conversations"] == 1
    assert where_found(db, *ADA_TRACES, but_store=stores)
    other_store_before = where_found(db, "ada@example.com", but_store=1)
    assert len(other_store_before) >= 5
    waiting = count(db, Job, Job.status == JobStatus.PENDING, Job.workspace_id == 1)
    assert waiting == 2  # Ada's and Grace's satisfaction checks, a day after delivery
    profiles, turns = count(db, Customer, Customer.workspace_id == 1), count(db, AssistantTurn)

    answer = _redact_ada(db)
    assert answer == {"status": "accepted", "request": "erasure", "id": 1}
    drain(_privacy_worker(db))

    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    assert _rows_pointing_at_rows_gone(db) == []
    assert count(db, Customer, Customer.workspace_id == 1) == profiles - 1
    assert count(db, AssistantTurn) == turns - 1
    assert count(db, Job, Job.status == JobStatus.PENDING, Job.workspace_id == 1) == 1
    assert count(db, Order, Order.workspace_id == 1) == 1
    assert _grace(db) == before_grace
    # Ada is the other store's customer too, and it asked for nothing.
    assert where_found(db, "ada@example.com", but_store=1) == other_store_before
    assert count(db, Customer, Customer.workspace_id == stores) == 1
    [request] = rows(db, PrivacyRequest)
    assert (request.kind, request.status, request.reference, request.subject) == (
        "erasure",
        "done",
        "7001",
        None,
    )
    assert request.summary is not None
    assert request.summary.startswith("deleted ")
    [entry] = rows(db, AuditEntry, AuditEntry.action == "customer_erased")
    assert (entry.workspace_id, entry.actor_id, entry.detail["request"]) == (1, None, 1)
    assert entry.detail["deleted"]["customer profiles"] == 1
    assert "customer profiles 1" in request.summary
    assert "orders 1" in request.summary


def test_the_search_of_other_deliveries_goes_on_in_parts_until_every_one_is_searched(db, stores):
    _redact_ada(db)
    task = CustomerRequestTask(db, budget_seconds=0, rest_seconds=0, window=2)
    drain(Worker(db, [task], WorkerConfig()))
    parts = rows(db, Job, Job.kind == "privacy.customer_request")
    assert len(parts) >= 3
    assert [job.payload.get("after", 0) for job in parts] == sorted(
        job.payload.get("after", 0) for job in parts
    )
    assert {job.status for job in parts} == {JobStatus.DONE}
    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    [request] = rows(db, PrivacyRequest)
    assert (request.status, request.subject) == ("done", None)
    # Her order's four deliveries, and the two naming her that carried none of her
    # events, found by the search.
    assert "raw platform deliveries' contents 6," in request.summary
    [entry] = rows(db, AuditEntry, AuditEntry.action == "customer_erased")
    assert entry.detail["deleted"]["customer profiles"] == 1


def test_the_search_covers_the_deliveries_there_at_the_erasure_not_those_arriving_after(db, stores):
    _redact_ada(db)
    task = CustomerRequestTask(db, budget_seconds=0, rest_seconds=0, window=2)
    asyncio.run(Worker(db, [task], WorkerConfig(batch_size=1)).run_once())
    later = {"customer_id": 7001, "phone_number": "447911123456"}
    body, headers = signed("customers_marketing_consent/update", later, webhook_id="later")
    post(db, None, body=body, headers=headers)
    drain(Worker(db, [task], WorkerConfig()))
    [request] = rows(db, PrivacyRequest)
    assert request.status == "done"
    # The one there at the erasure was found; the one after is left to the sweep.
    naming_ada = WebhookDelivery.body.contains("447911123456")
    assert count(db, WebhookDelivery, naming_ada, WebhookDelivery.workspace_id == 1) == 1


def test_an_erasure_in_progress_names_no_one_but_what_it_still_searches_for(db, stores):
    _redact_ada(db)
    task = CustomerRequestTask(db, budget_seconds=0, rest_seconds=0, window=3)
    worker = Worker(db, [task], WorkerConfig(batch_size=1))
    asyncio.run(worker.run_once())
    [request] = rows(db, PrivacyRequest)
    assert request.status == "pending"
    assert set(request.subject) == {"traces", "deleted", "kept", "from", "until"}
    assert "Lovelace" not in str(request.subject)
    assert request.summary.startswith("deleted ")


def test_the_same_redact_delivered_twice_is_one_request(db, stores):
    assert _redact_ada(db)["status"] == "accepted"
    assert _redact_ada(db) == {"status": "duplicate"}
    assert count(db, PrivacyRequest) == 1
    assert count(db, Job, Job.kind == "privacy.customer_request") == 1


def test_redact_finds_the_customer_by_email_when_the_platform_id_is_unknown(db, stores):
    payload = {"shop_domain": "x", "customer": {"email": "ADA@example.com "}}
    _request(db, "customers/redact", payload, webhook_id="by-email")
    drain(_privacy_worker(db))
    assert where_found(db, *ADA_TRACES, but_store=stores) == []


def test_redact_of_someone_the_store_never_knew_deletes_nothing(db, stores, caplog):
    before = where_found(db, "@example.com")
    payload = {"customer": {"id": 999, "email": "nobody@example.org", "phone": "555-625-1199"}}
    caplog.set_level(logging.INFO, logger="parley.privacy.tasks")
    _request(db, "customers/redact", payload, webhook_id="nobody")
    drain(_privacy_worker(db))
    assert where_found(db, "@example.com") == before
    [request] = rows(db, PrivacyRequest)
    assert request.summary == "parley held nothing on this customer"
    assert "nobody@example.org" not in caplog.text
    assert "parley held nothing on this customer" in caplog.text


def test_data_request_gathers_the_customer_rows_for_the_store_owner(db, stores):
    payload = {
        "customer": ADA,
        "orders_requested": [501],
        "data_request": {"id": 9999},
    }
    answer = _request(db, "customers/data_request", payload, webhook_id="access-ada")
    assert answer == {"status": "accepted", "request": "access", "id": 1}
    drain(_privacy_worker(db))

    [request] = rows(db, PrivacyRequest)
    export = request.export
    assert request.status == "done"
    assert export is not None
    assert export["format"] == "parley.privacy-export/1"
    assert export["store"] == "Juniper & Pine"
    [profile] = export["customers"]
    assert (profile["email"], profile["last_name"]) == ("ada@example.com", "Lovelace")
    assert [order["external_id"] for order in export["orders"]] == ["501"]
    assert {message["customer_id"] for message in export["messages"]} == {profile["id"]}
    assert any(message["body"] == "Ada Lovelace: where is #1501?" for message in export["messages"])
    assert len(export["assistant_turns"]) == 1
    text = str(export)
    assert "grace@example.com" not in text
    assert "2601" not in text
    assert request.summary.startswith("gathered customers 1, ")


def test_a_later_erasure_deletes_an_earlier_export(db, stores):
    _request(db, "customers/data_request", {"customer": ADA}, webhook_id="access-ada")
    drain(_privacy_worker(db))
    _redact_ada(db)
    drain(_privacy_worker(db))
    access, erasure = rows(db, PrivacyRequest)
    assert (access.export, access.subject) == (None, None)
    assert access.summary.endswith("; its export was deleted by a later erasure")
    assert erasure.status == "done"
    assert where_found(db, *ADA_TRACES, but_store=stores) == []


def test_a_late_receipt_for_an_erased_message_is_dropped_not_retried(db, stores):
    [ada] = rows(db, Customer, Customer.email == "ada@example.com", Customer.workspace_id == 1)
    [whatsapp, *_] = rows(
        db,
        Message,
        Message.customer_id == ada.id,
        Message.channel == "whatsapp",
        Message.direction == "outbound",
        Message.provider_message_id.is_not(None),
    )
    [grace_sent, *_] = rows(
        db, Message, Message.recipient == "+12025550143", Message.direction == "outbound"
    )
    _redact_ada(db)
    drain(_privacy_worker(db))

    def receipt(message: Message, provider_id: str) -> bool:
        status = StatusUpdate(
            channel=ChannelKind(message.channel),
            provider_message_id=provider_id,
            status="delivered",
            reference=f"parley-1-{message.id}",
        )
        with db.transaction() as session:
            return inbox.apply_status(session, workspace_id=1, status=status)

    assert receipt(whatsapp, whatsapp.provider_message_id) is True  # known: erased
    # A live message's receipt that matches no provider id is still waited for.
    assert receipt(grace_sent, "not-its-provider-id") is False


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("customers/redact", {"shop_domain": "x"}, "customers/redact: 'customer' is missing"),
        ("customers/redact", {"customer": {}}, "names no one"),
        ("customers/redact", [1], "the body is not a JSON object"),
        (
            "customers/redact",
            {"customer": {"id": 1}, "orders_to_redact": "501"},
            "'orders_to_redact' is not a list",
        ),
        ("customers/data_request", {"customer": {"id": [1]}}, "'customer.id' is not an id"),
    ],
)
def test_a_malformed_request_is_refused_with_the_reason_and_nothing_queued(
    db, stores, topic, payload, reason
):
    from starlette.testclient import TestClient

    from parley.http.app import create_app
    from parley.runtime import Runtime
    from parley.settings import get_settings

    jobs_before = count(db, Job)
    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    body, headers = signed(topic, payload, webhook_id="malformed")
    with TestClient(app) as client:
        response = client.post("/webhooks/shopify/demo", content=body, headers=headers)
    assert response.status_code == 422
    assert reason in response.text
    assert (count(db, PrivacyRequest), count(db, Job)) == (0, jobs_before)


def test_a_redact_over_http_is_answered_once_stored_and_then_carried_out(db, stores):
    from starlette.testclient import TestClient

    from parley.http.app import create_app
    from parley.runtime import Runtime
    from parley.settings import get_settings

    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    body, headers = signed("customers/redact", {"customer": ADA}, webhook_id="over-http")
    with TestClient(app) as client:
        first = client.post("/webhooks/shopify/demo", content=body, headers=headers)
        again = client.post("/webhooks/shopify/demo", content=body, headers=headers)
    assert first.json() == {"status": "accepted", "request": "erasure", "id": 1}
    assert again.json() == {"status": "duplicate"}
    [request] = rows(db, PrivacyRequest)
    assert (request.status, request.subject["email"]) == ("pending", "ada@example.com")
    drain(_privacy_worker(db))
    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    [delivery] = rows(db, WebhookDelivery, WebhookDelivery.topic == "customers/redact")
    assert (delivery.body, delivery.status_reason) == (
        "{}",
        "body erased with the customer it named",
    )


def test_a_request_with_a_bad_signature_is_refused_and_nothing_written(db, stores):
    from parley.errors import Unauthenticated

    body, headers = signed("customers/redact", {"customer": ADA}, webhook_id="forged")
    headers["X-Shopify-Hmac-Sha256"] = "AAAA" + headers["X-Shopify-Hmac-Sha256"][4:]
    deliveries_before = count(db, WebhookDelivery)
    with pytest.raises(Unauthenticated):
        post(db, None, body=body, headers=headers)
    assert (count(db, PrivacyRequest), count(db, WebhookDelivery)) == (0, deliveries_before)


def test_an_export_asked_for_by_platform_id_alone_is_deleted_by_an_erasure_asked_by_email(
    db, stores
):
    _request(db, "customers/data_request", {"customer": {"id": 7001}}, webhook_id="access-id")
    drain(_privacy_worker(db))
    [access] = rows(db, PrivacyRequest)
    assert [profile["email"] for profile in access.export["customers"]] == ["ada@example.com"]

    by_email = {"customer": {"email": "ada@example.com"}}
    _request(db, "customers/redact", by_email, webhook_id="redact-by-email")
    drain(_privacy_worker(db))

    access, erasure = rows(db, PrivacyRequest)
    assert (access.export, access.subject) == (None, None)
    assert access.summary.endswith("; its export was deleted by a later erasure")
    assert erasure.status == "done"
    assert "earlier data exports 1" in erasure.summary
    assert where_found(db, *ADA_TRACES, but_store=stores) == []


def test_a_shopify_retry_after_an_erasure_stays_a_duplicate(db, tmp_path):
    """Shopify retries a delivery it saw no 200 for, even one parley stored: the retry of
    her order, arriving after her erasure, must not bring her back nor send again."""
    seed(db)
    placed, *rest = deliveries("Ada", order_id=501, number=1501)
    for delivery in (placed, *rest):
        post(db, delivery)
    adapters = all_adapters()
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))
    sent = sum(len(adapter.sent) for adapter in adapters.values())
    assert sent >= 1
    _redact_ada(db)
    drain(_privacy_worker(db))
    profiles = count(db, Customer)

    assert post(db, placed) == {"status": "duplicate"}
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path / "model"))

    assert sum(len(adapter.sent) for adapter in adapters.values()) == sent
    assert count(db, Customer) == profiles
    assert where_found(db, *ADA_TRACES) == []
    kept = rows(db, WebhookDelivery)
    assert [(d.topic, d.body, d.headers, d.status_reason) for d in kept] == [
        (d.topic, *EMPTIED) for d in (placed, *rest)
    ] + [("customers/redact", *EMPTIED)]
    assert [d.delivery_key for d in kept[:4]] == [
        d.headers["X-Shopify-Event-Id"] for d in (placed, *rest)
    ]


def test_deliveries_an_erasure_emptied_go_with_the_sweep_at_retention(db, stores):
    _redact_ada(db)
    drain(_privacy_worker(db))
    emptied = WebhookDelivery.status_reason == EMPTIED[2]
    # Her order's four deliveries, the two naming her, and the request's own.
    assert count(db, WebhookDelivery, emptied) == 7
    everything = count(db, WebhookDelivery)
    retention = Retention()

    swept = sweep(db, retention, now=clock.utc_now() + retention.webhooks + timedelta(seconds=1))

    assert swept.deliveries == everything
    assert count(db, WebhookDelivery) == 0


def test_a_whatsapp_retry_of_her_message_after_the_erasure_stays_a_duplicate(db, stores):
    """Meta retries a delivery for days when it saw no 200: one taken before her erasure
    and retried after it is still known, and her message is not stored again."""
    with _app(db) as client:
        written = _whatsapp(client, "Ada Lovelace here: where is #1501?", message_id="wamid.ADA")
        assert written["messages"] == 1
        _redact_ada(db)
        drain(_privacy_worker(db))
        again = _whatsapp(client, "Ada Lovelace here: where is #1501?", message_id="wamid.ADA")

    assert again == {"status": "duplicate"}
    assert count(db, Message, Message.provider_message_id == "wamid.ADA") == 0
    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    [kept] = rows(db, WebhookDelivery, WebhookDelivery.source == "whatsapp_cloud")
    assert (kept.body, kept.headers, kept.status_reason) == EMPTIED


def test_a_delivery_whose_own_key_names_her_is_deleted_and_the_others_kept_emptied(db, stores):
    """An API client picks its own ``Idempotency-Key``, and may write her address in it."""
    with _app(db) as client:
        for key, order in (("signup:ada@example.com", "9001"), ("order-9002", "9002")):
            event = {
                "type": "order.created",
                "payload": {
                    "external_id": order,
                    "number": f"#{order}",
                    "customer": {"external_id": "7001", "email": "ada@example.com"},
                    "currency": "GBP",
                    "total_price": "89.00",
                    "line_items": [{"title": "Merino Crew Sweater", "quantity": 1}],
                },
            }
            answer = client.post(
                "/api/v1/events",
                json=event,
                headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key},
            )
            assert answer.status_code == 202, answer.text

    _redact_ada(db)
    drain(_privacy_worker(db))

    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    kept = rows(db, WebhookDelivery, WebhookDelivery.source == "api")
    assert [(d.delivery_key, d.body, d.headers, d.status_reason) for d in kept] == [
        ("order-9002", *EMPTIED)
    ]


def test_an_inbound_emails_delivery_is_emptied_of_the_sender_its_headers_name(db, stores):
    """Mailgun's sender is a field parley keeps with the delivery's headers, not its body."""
    with _app(db) as client:
        _mailgun(
            client,
            {
                "sender": "ada@example.com",
                "recipient": "orders@demo.parley.test",
                "subject": "Where is my parcel?",
                "body-plain": "Hello, it has not arrived yet.",
                "Message-Id": "<q1@mail.example.com>",
            },
        )
    [mail] = rows(db, WebhookDelivery, WebhookDelivery.source == "mailgun")
    assert mail.headers["sender"] == "ada@example.com"

    _redact_ada(db)
    drain(_privacy_worker(db))

    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    [mail] = rows(db, WebhookDelivery, WebhookDelivery.source == "mailgun")
    assert (mail.body, mail.headers, mail.status_reason) == EMPTIED


def test_deliveries_naming_a_longer_address_or_number_than_hers_are_left_whole(db, stores):
    """``nada@example.com`` and ``+4479111234567`` hold Ada's address and number: they
    are other customers', their deliveries those customers' records and dedupe keys."""
    for topic, payload, webhook_id in (
        (
            "customers_email_marketing_consent/update",
            {"email": "nada@example.com", "accepts_marketing": True},
            "nada",
        ),
        (
            "customers_marketing_consent/update",
            {"customer_id": 9002, "phone_number": "4479111234567"},
            "longer-number",
        ),
    ):
        body, headers = signed(topic, payload, webhook_id=webhook_id)
        assert post(db, None, body=body, headers=headers)["status"] == "ignored"
    others = WebhookDelivery.body.contains("nada@example.com") | WebhookDelivery.body.contains(
        "4479111234567"
    )
    before = [(d.id, d.body, d.headers, d.status_reason) for d in rows(db, WebhookDelivery, others)]
    assert len(before) == 2

    _redact_ada(db)
    drain(_privacy_worker(db))

    after = [(d.id, d.body, d.headers, d.status_reason) for d in rows(db, WebhookDelivery, others)]
    assert after == before
    # Those two hold her address and number as parts of theirs, and nothing else does.
    assert where_found(db, *ADA_TRACES, but_store=stores) == [
        ("webhook_deliveries", "ada@example.com"),
        ("webhook_deliveries", "7911123456"),
    ]
    [request] = rows(db, PrivacyRequest)
    # Hers: her order's four deliveries, and the two naming her number and her email.
    assert "raw platform deliveries' contents 6," in request.summary


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_message_she_writes_while_her_erasure_runs_is_not_left_behind(db, stores, monkeypatch):
    """PostgreSQL: her message arrives after the erasure found her rows and before it
    deleted them. The erasure holds her profile locked, as the inbox does to add to it, so
    the message waits; then it finds her gone and is refused, for the provider to send it
    again. It is never left behind the erasure, orphaned, with her number and words.
    (SQLite has one writer: the erasure's transaction excludes it.)"""
    refused: list[Exception] = []

    def she_writes() -> None:
        try:
            customer_writes(
                db,
                channel=ChannelKind.WHATSAPP,
                sender="+447911123456",
                text="Ada Lovelace here, please call me back",
                provider_message_id="wamid.DURING",
            )
        except Exception as exc:  # noqa: BLE001  (the refusal is what is checked)
            refused.append(exc)

    writer = threading.Thread(target=she_writes)
    keep_refusals = erasure._keep_refusals

    def keep_refusals_while_she_writes(session, workspace_id, held):
        writer.start()
        until_waiting_for_a_lock(db, writer)
        return keep_refusals(session, workspace_id, held)

    monkeypatch.setattr(erasure, "_keep_refusals", keep_refusals_while_she_writes)
    _redact_ada(db)
    drain(_privacy_worker(db))
    writer.join(timeout=30)

    assert not writer.is_alive()
    # Refused by the inbox, which finds no profile to lock once the erasure has ended:
    # a 503, for the provider to send it again
    assert [type(exc) for exc in refused] == [TryAgain]
    assert count(db, Message, Message.provider_message_id == "wamid.DURING") == 0
    assert count(db, Job, Job.kind == "assistant.respond", Job.status == JobStatus.PENDING) == 0
    assert where_found(db, *ADA_TRACES, but_store=stores) == []
    [request] = rows(db, PrivacyRequest)
    assert request.status == "done"


def test_an_erasure_of_messages_labelled_for_training_says_to_retrain_the_store_model(db, stores):
    [message] = rows(db, Message, Message.sender == "+447911123456")
    [turn] = rows(db, AssistantTurn, AssistantTurn.message_id == message.id)
    with db.transaction() as session:
        inbox.label_turn(session, workspace_id=1, turn_id=turn.id, intent="track_order")

    _redact_ada(db)
    drain(_privacy_worker(db))

    [request] = rows(db, PrivacyRequest)
    assert "assistant training labels 1" in request.summary
    assert request.summary.endswith(
        "; a store model trained on these labels (parley assistant train --workspace) may"
        " still hold their words: train it again"
    )
    [entry] = rows(db, AuditEntry, AuditEntry.action == "customer_erased")
    assert entry.detail["deleted"]["assistant training labels"] == 1
