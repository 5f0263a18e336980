"""``/api/v1/privacy-requests``: other platforms' customers' erasure and access requests,
carried out by the same job as Shopify's compliance webhooks."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from starlette.testclient import TestClient

from parley.customers.models import Customer
from parley.http.app import create_app
from parley.jobs.models import Job
from parley.jobs.worker import Worker, WorkerConfig
from parley.privacy.export import SCHEMA
from parley.privacy.models import PrivacyRequest, one_month_after
from parley.privacy.tasks import CustomerRequestTask
from parley.runtime import Runtime
from parley.settings import get_settings
from parley.store_events.models import WebhookDelivery
from parley.workspaces import service as workspaces
from support import API_KEY, count, deliveries, drain, post, seed, where_found

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER_KEY = "other-store-api-key"


@pytest.fixture
def client(db):
    seed(db)
    with db.transaction() as session:
        workspaces.create_workspace(session, slug="other", name="Other", api_key=OTHER_KEY)
    for delivery in deliveries("Ada", order_id=501):
        post(db, delivery)
    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as test_client:
        yield test_client


def _carry_out(db) -> None:
    drain(Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig()))


def test_an_erasure_through_the_api_deletes_the_customer_and_reports_done(client, db):
    answer = client.post(
        "/api/v1/privacy-requests",
        json={"kind": "erasure", "customer": {"email": "ada@example.com"}},
        headers=AUTH,
    )
    assert answer.status_code == 202
    body = answer.json()
    assert (body["status"], body["request"]["kind"], body["request"]["status"]) == (
        "accepted",
        "erasure",
        "pending",
    )
    _carry_out(db)
    listed = client.get("/api/v1/privacy-requests", headers=AUTH).json()["requests"]
    [done] = listed
    assert (done["id"], done["status"], done["has_export"]) == (
        body["request"]["id"],
        "done",
        False,
    )
    assert done["summary"].startswith("deleted ")
    assert where_found(db, "ada@example.com", "Lovelace") == []
    assert count(db, Customer, Customer.workspace_id == 1) == 3


def test_an_access_request_through_the_api_is_downloaded_from_it(client, db):
    posted = client.post(
        "/api/v1/privacy-requests",
        json={"kind": "access", "customer": {"id": "7001"}, "orders": ["501"]},
        headers=AUTH,
    ).json()
    request_id = posted["request"]["id"]
    assert (
        client.get(f"/api/v1/privacy-requests/{request_id}/export", headers=AUTH).status_code == 404
    )
    _carry_out(db)
    export = client.get(f"/api/v1/privacy-requests/{request_id}/export", headers=AUTH)
    assert export.status_code == 200
    assert [order["external_id"] for order in export.json()["orders"]] == ["501"]
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert (
        client.get(f"/api/v1/privacy-requests/{request_id}/export", headers=other).status_code
        == 404
    )
    assert client.get("/api/v1/privacy-requests", headers=other).json() == {"requests": []}


def test_the_same_request_twice_under_one_idempotency_key_is_one_request(client, db):
    request = {"kind": "erasure", "customer": {"id": "7001"}}
    headers = {**AUTH, "Idempotency-Key": "req-1"}
    first = client.post("/api/v1/privacy-requests", json=request, headers=headers)
    again = client.post("/api/v1/privacy-requests", json=request, headers=headers)
    assert (first.status_code, again.json()) == (202, {"status": "duplicate"})
    assert count(db, PrivacyRequest) == 1


def test_a_key_whose_erasure_was_carried_out_is_409_for_any_request_and_nothing_stored(client, db):
    """The erasure empties its own request's stored body, so a late retry under its key
    cannot be told from another customer's request: both are refused, never answered as
    a duplicate and dropped."""
    request = {"kind": "erasure", "customer": {"email": "ada@example.com"}}
    headers = {**AUTH, "Idempotency-Key": "erasure-7001"}
    first = client.post("/api/v1/privacy-requests", json=request, headers=headers)
    _carry_out(db)
    jobs, deliveries_before = count(db, Job), count(db, WebhookDelivery)

    answers = [
        client.post("/api/v1/privacy-requests", json=body, headers=headers)
        for body in (request, {"kind": "erasure", "customer": {"email": "grace@example.com"}})
    ]

    assert first.status_code == 202
    assert [(a.status_code, a.json()) for a in answers] == [
        (
            409,
            {
                "error": "idempotency key 'erasure-7001' was first used for a different"
                " request, or for one carried out and erased since; a new request needs"
                " a new key"
            },
        )
    ] * 2
    assert (count(db, PrivacyRequest), count(db, Job), count(db, WebhookDelivery)) == (
        1,
        jobs,
        deliveries_before,
    )


def test_an_idempotency_key_reused_for_another_request_is_409_and_nothing_stored(client, db):
    """A client that reuses a key by mistake is told so, not answered "duplicate" while
    another customer's erasure is dropped (RELIABILITY W14)."""
    headers = {**AUTH, "Idempotency-Key": "erasure-2026-03-02"}
    first = client.post(
        "/api/v1/privacy-requests",
        json={"kind": "erasure", "customer": {"email": "ada@example.com"}},
        headers=headers,
    )
    jobs, deliveries_before = count(db, Job), count(db, WebhookDelivery)

    second = client.post(
        "/api/v1/privacy-requests",
        json={"kind": "erasure", "customer": {"email": "grace@example.com"}},
        headers=headers,
    )

    assert first.status_code == 202
    assert (second.status_code, second.json()) == (
        409,
        {
            "error": "idempotency key 'erasure-2026-03-02' was first used for a different"
            " request, or for one carried out and erased since; a new request needs a new key"
        },
    )
    [request] = client.get("/api/v1/privacy-requests", headers=AUTH).json()["requests"]
    assert request["id"] == first.json()["request"]["id"]
    assert (count(db, PrivacyRequest), count(db, Job), count(db, WebhookDelivery)) == (
        1,
        jobs,
        deliveries_before,
    )


def test_the_same_erasure_asked_again_later_without_a_key_is_carried_out_again(client, db):
    """Without an Idempotency-Key each request is one of its own: a customer who came back
    after their erasure is erased again when the platform asks again, in the same words."""
    request = {"kind": "erasure", "customer": {"email": "ada@example.com"}}
    first = client.post("/api/v1/privacy-requests", json=request, headers=AUTH)
    _carry_out(db)
    for delivery in deliveries("Ada", order_id=777, number=1777):
        post(db, delivery)
    assert where_found(db, "ada@example.com") != []

    again = client.post("/api/v1/privacy-requests", json=request, headers=AUTH)
    _carry_out(db)

    assert (first.status_code, again.status_code, again.json()["status"]) == (
        202,
        202,
        "accepted",
    )
    assert where_found(db, "ada@example.com") == []
    listed = client.get("/api/v1/privacy-requests", headers=AUTH).json()["requests"]
    assert [(r["kind"], r["status"]) for r in listed] == [("erasure", "done")] * 2


def test_an_idempotency_key_longer_than_255_characters_is_422_and_nothing_stored(client, db):
    jobs, deliveries_before = count(db, Job), count(db, WebhookDelivery)
    request = {"kind": "erasure", "customer": {"email": "ada@example.com"}}
    headers = {**AUTH, "Idempotency-Key": "erasure-ada-" + "y" * 244}

    answer = client.post("/api/v1/privacy-requests", json=request, headers=headers)

    assert answer.status_code == 422
    assert answer.json() == {
        "error": "header.idempotency-key: String should have at most 255 characters"
    }
    assert (count(db, PrivacyRequest), count(db, Job), count(db, WebhookDelivery)) == (
        0,
        jobs,
        deliveries_before,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "erasure", "customer": {}}, "give at least one of id, email and phone"),
        ({"kind": "forget", "customer": {"id": "1"}}, "kind"),
        ({"kind": "erasure"}, "customer"),
        ({"kind": "erasure", "customer": {"id": "1"}, "orders": [""]}, "orders"),
    ],
)
def test_a_malformed_request_is_422_with_the_reason_and_nothing_stored(client, db, body, reason):
    jobs, deliveries_before = count(db, Job), count(db, WebhookDelivery)
    answer = client.post("/api/v1/privacy-requests", json=body, headers=AUTH)
    assert answer.status_code == 422
    assert reason in answer.json()["error"]
    assert (count(db, PrivacyRequest), count(db, Job), count(db, WebhookDelivery)) == (
        0,
        jobs,
        deliveries_before,
    )


def test_without_a_valid_key_nothing_is_stored(client, db):
    request = {"kind": "erasure", "customer": {"id": "7001"}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = client.post("/api/v1/privacy-requests", json=request, headers=headers)
        assert answer.status_code == 401
    assert count(db, PrivacyRequest) == 0


def test_the_export_schema_is_published_and_each_request_says_when_it_is_due(client, db):
    schema = client.get("/api/v1/privacy-requests/export-schema")
    assert schema.status_code == 200
    assert schema.headers["content-type"] == "application/schema+json"
    assert schema.json() == json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema.json()["title"] == "parley.privacy-export/1"

    posted = client.post(
        "/api/v1/privacy-requests",
        json={"kind": "access", "customer": {"id": "7001"}},
        headers=AUTH,
    ).json()["request"]
    received = datetime.fromisoformat(posted["received_at"])
    assert datetime.fromisoformat(posted["due_at"]) == one_month_after(received)
