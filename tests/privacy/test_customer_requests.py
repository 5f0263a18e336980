"""Shopify's ``customers/redact`` and ``customers/data_request``: a customer's data in one
store erased, or gathered for the store owner, by a job after the delivery is answered."""

from __future__ import annotations

import asyncio
import logging

import pytest

from parley import clock
from parley.accounts.models import AuditEntry
from parley.channels.base import ChannelKind, StatusUpdate
from parley.commerce.models import Order
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.demo.simulate import order_lifecycle
from parley.inbox import service as inbox
from parley.inbox.models import AssistantTurn, Conversation
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.journeys.models import JourneyRun
from parley.messaging.models import Message
from parley.privacy.models import PrivacyRequest
from parley.privacy.tasks import CustomerRequestTask
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces import service as workspaces
from support import (
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
    where_found,
)

ADA = {"id": 7001, "email": "ada@example.com", "phone": "+447911123456"}
ADA_TRACES = ("ada@example.com", "7911123456", "Lovelace")
OTHER_SECRET = "the-other-store's-secret"


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
    # The delivery naming Ada that carried none of her events was found by the search.
    assert "raw platform deliveries " in request.summary
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
