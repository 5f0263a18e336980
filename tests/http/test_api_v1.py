"""``/api/v1`` over HTTP: canonical events, API keys, workspace scoping, journeys, templates."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, update
from starlette.testclient import TestClient

from parley.accounts.models import AuditEntry
from parley.channels.base import ChannelKind
from parley.http.app import create_app
from parley.jobs.models import Job
from parley.journeys.definitions import BUILT_IN, JourneyDefinition
from parley.journeys.models import Journey, JourneyRun, JourneyVersion
from parley.messaging.models import Message, MessageTemplate
from parley.runtime import Runtime
from parley.settings import get_settings
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import (
    API_KEY,
    count,
    drain,
    hold_next_send,
    make_worker,
    recording_adapters,
    rows,
    seed,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER_API_KEY = "other-store-api-key"

ADA = {
    "external_id": "7001",
    "email": "ada@example.com",
    "phone": "+447911123456",
    "first_name": "Ada",
    "last_name": "Lovelace",
}


def order_created(external_id: str = "9001", number: str = "#9001") -> dict:
    return {
        "type": "order.created",
        "occurred_at": "2026-03-02T09:59:00Z",
        "payload": {
            "external_id": external_id,
            "number": number,
            "customer": ADA,
            "currency": "GBP",
            "total_price": "89.00",
            "line_items": [{"title": "Merino Crew Sweater", "quantity": 1, "price": "89.00"}],
        },
    }


def fulfillment_created(order_external_id: str = "9001") -> dict:
    return {
        "type": "fulfillment.created",
        "payload": {
            "external_id": "90011",
            "order_external_id": order_external_id,
            "tracking_company": "UPS",
            "tracking_number": "1Z999AA100009001",
            "customer": ADA,
        },
    }


@pytest.fixture
def client(db, frozen_clock):
    seed(db)
    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as test_client:
        yield test_client


def _nothing_written(db) -> bool:
    return (
        count(db, WebhookDelivery),
        count(db, StoreEvent),
        count(db, JourneyRun),
        count(db, Message),
    ) == (0, 0, 0, 0)


def _journey_keys_of_runs(db) -> list[str]:
    journeys = {journey.id: journey.key for journey in rows(db, Journey)}
    return [journeys[run.journey_id] for run in rows(db, JourneyRun)]


# POST /events ----------------------------------------------------------------------------


def test_canonical_order_is_accepted_and_starts_the_confirmation(client, db):
    response = client.post("/api/v1/events", json=order_created(), headers=AUTH)

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "journeys_started": 1}
    [delivery] = rows(db, WebhookDelivery)
    assert (delivery.source, delivery.topic) == ("api", "order.created")
    [event] = rows(db, StoreEvent)
    assert (event.type, event.order_external_id) == ("order.created", "9001")
    [run] = rows(db, JourneyRun)
    assert (_journey_keys_of_runs(db), run.run_key, run.status) == (
        ["order_confirmation"],
        "order:9001",
        "active",
    )


@pytest.mark.parametrize(
    ("stamps", "occurred_at"),
    [
        pytest.param(
            {"created_at": "2026-03-02T09:00:00Z", "updated_at": "2026-03-02T09:30:00Z"},
            datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
            id="updated_at",
        ),
        pytest.param(
            {"created_at": "2026-03-02T09:00:00Z"},
            datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
            id="created_at",
        ),
        pytest.param({}, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), id="received"),
    ],
)
def test_an_event_without_occurred_at_happened_when_its_payload_says_as_shopifys_do(
    client, db, stamps, occurred_at
):
    """As the Shopify mapping dates its events: the payload's ``updated_at``, else its
    ``created_at``, else when it was received."""
    event = order_created()
    del event["occurred_at"]
    event["payload"].update(stamps)

    response = client.post("/api/v1/events", json=event, headers=AUTH)

    assert response.status_code == 202
    assert [e.occurred_at for e in rows(db, StoreEvent)] == [occurred_at]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            ({"Idempotency-Key": "evt-1"}, order_created()),
            ({"Idempotency-Key": "evt-1"}, dict(reversed(order_created().items()))),
            id="idempotency_key_header_case",
        ),
        pytest.param(
            ({}, {**order_created(), "id": "evt-2"}),
            ({}, {**order_created(), "id": "evt-2"}),
            id="event_id_case",
        ),
        pytest.param(({}, order_created()), ({}, order_created()), id="identical_body_case"),
    ],
)
def test_the_same_event_twice_is_a_duplicate(client, db, first, second):
    headers, body = first
    assert client.post("/api/v1/events", json=body, headers={**AUTH, **headers}).json() == {
        "status": "accepted",
        "journeys_started": 1,
    }
    headers, body = second
    response = client.post("/api/v1/events", json=body, headers={**AUTH, **headers})

    assert response.status_code == 202
    assert response.json() == {"status": "duplicate"}
    assert (count(db, WebhookDelivery), count(db, StoreEvent), count(db, JourneyRun)) == (1, 1, 1)


@pytest.mark.parametrize(
    ("headers", "first", "second"),
    [
        pytest.param(
            {"Idempotency-Key": "evt-1"},
            order_created(),
            order_created(number="#9002"),
            id="idempotency_key_header_case",
        ),
        pytest.param(
            {},
            {**order_created(), "id": "evt-2"},
            {**order_created(number="#9002"), "id": "evt-2"},
            id="event_id_case",
        ),
    ],
)
def test_a_key_used_again_for_a_different_event_is_409_and_writes_nothing(
    client, db, headers, first, second
):
    """A client that reuses a key by mistake is told so, not answered "duplicate" while
    its new event is dropped (RELIABILITY W14)."""
    client.post("/api/v1/events", json=first, headers={**AUTH, **headers})

    response = client.post("/api/v1/events", json=second, headers={**AUTH, **headers})

    assert response.status_code == 409
    assert (
        "was first used for a different event; a new event needs a new key"
        in (response.json()["error"])
    )
    [delivery] = rows(db, WebhookDelivery)
    assert json.loads(delivery.body) == first
    assert (count(db, StoreEvent), count(db, JourneyRun)) == (1, 1)


def test_ten_identical_events_at_once_have_one_effect(client, db):
    """Events share commits under load (a group commit), so identical ones race inside
    one transaction as well as across several: the unique key still decides."""
    answers: list[dict[str, object]] = []
    barrier = threading.Barrier(10)

    def send() -> None:
        barrier.wait()
        answers.append(client.post("/api/v1/events", json=order_created(), headers=AUTH).json())

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answer["status"] for answer in answers) == ["accepted"] + ["duplicate"] * 9
    assert (count(db, WebhookDelivery), count(db, StoreEvent), count(db, JourneyRun)) == (1, 1, 1)


def test_a_key_replaced_a_moment_ago_is_refused_at_once_and_writes_nothing(client, db):
    with db.transaction() as session:
        session.execute(
            update(Workspace).values(api_key_hash=workspaces.hash_api_key("the-new-key"))
        )

    refused = client.post("/api/v1/events", json=order_created(), headers=AUTH)

    assert (refused.status_code, refused.json()) == (401, {"error": "unknown API key"})
    assert _nothing_written(db)
    accepted = client.post(
        "/api/v1/events", json=order_created(), headers={"Authorization": "Bearer the-new-key"}
    )
    assert accepted.json() == {"status": "accepted", "journeys_started": 1}


def test_an_event_with_a_key_seen_valid_has_no_transaction_of_its_own_for_the_key(client, db):
    assert client.post("/api/v1/events", json=order_created(), headers=AUTH).status_code == 202
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(db.engine, "commit", committed)
    try:
        response = client.post("/api/v1/events", json=order_created("9002", "#9002"), headers=AUTH)
    finally:
        event.remove(db.engine, "commit", committed)

    assert response.json() == {"status": "accepted", "journeys_started": 1}
    assert len(commits) == 1


def test_a_key_revoked_after_use_is_refused_at_once_while_other_events_go_through(client, db):
    """A key seen valid skips its own read; its write reads it again, so revoking it
    still takes effect on the next event, and that event fails alone in a shared batch."""
    with db.transaction() as session:
        workspaces.create_workspace(session, slug="other", name="Other", api_key=OTHER_API_KEY)
    other = {"Authorization": f"Bearer {OTHER_API_KEY}"}
    assert client.post("/api/v1/events", json=order_created(), headers=AUTH).status_code == 202
    with db.transaction() as session:
        session.execute(
            update(Workspace)
            .where(Workspace.slug != "other")
            .values(api_key_hash=workspaces.hash_api_key("the-new-key"))
        )

    answers: list[tuple[str, int, dict[str, object]]] = []
    barrier = threading.Barrier(9)

    def send(number: int, headers: dict[str, str]) -> None:
        body = order_created(external_id=str(9100 + number), number=f"#{9100 + number}")
        barrier.wait()
        response = client.post("/api/v1/events", json=body, headers=headers)
        answers.append((headers["Authorization"], response.status_code, response.json()))

    threads = [threading.Thread(target=send, args=(0, AUTH))] + [
        threading.Thread(target=send, args=(n, other)) for n in range(1, 9)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for _, status, _ in answers) == [202] * 8 + [401]
    assert [body for key, _, body in answers if key == AUTH["Authorization"]] == [
        {"error": "unknown API key"}
    ]
    assert count(db, StoreEvent) == 1 + 8
    assert count(db, StoreEvent, StoreEvent.order_external_id == "9100") == 0


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        pytest.param({}, "send the workspace API key as 'Authorization: Bearer <key>'", id="none"),
        pytest.param(
            {"Authorization": f"Basic {API_KEY}"},
            "send the workspace API key as 'Authorization: Bearer <key>'",
            id="not_bearer",
        ),
        pytest.param(
            {"Authorization": "Bearer "},
            "send the workspace API key as 'Authorization: Bearer <key>'",
            id="empty_key",
        ),
        pytest.param({"Authorization": "Bearer wrong-key"}, "unknown API key", id="wrong_key"),
    ],
)
def test_missing_or_wrong_api_key_is_401_and_writes_nothing(client, db, headers, error):
    response = client.post("/api/v1/events", json=order_created(), headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": error}
    assert _nothing_written(db)
    assert client.get("/api/v1/messages", headers=headers).status_code == 401


def test_payload_invalid_for_its_event_type_is_422_naming_the_field(client, db):
    event = order_created()
    del event["payload"]["external_id"]

    response = client.post("/api/v1/events", json=event, headers=AUTH)

    assert response.status_code == 422
    assert response.json() == {
        "error": "payload is not a valid order.created: external_id: Field required"
    }
    assert _nothing_written(db)


def test_an_idempotency_key_longer_than_255_characters_is_422_and_writes_nothing(client, db):
    """A longer key could not be stored whole, and a key cut short could be taken for
    another event's: refused before anything is written, on every engine."""
    headers = {**AUTH, "Idempotency-Key": "order-9001-" + "x" * 245}

    response = client.post("/api/v1/events", json=order_created(), headers=headers)

    assert response.status_code == 422
    assert response.json() == {
        "error": "header.idempotency-key: String should have at most 255 characters"
    }
    assert _nothing_written(db)


def test_an_idempotency_key_of_255_characters_is_kept_whole(client, db):
    key = "order-9001-" + "x" * 244

    response = client.post(
        "/api/v1/events", json=order_created(), headers={**AUTH, "Idempotency-Key": key}
    )

    assert response.json() == {"status": "accepted", "journeys_started": 1}
    [delivery] = rows(db, WebhookDelivery)
    assert delivery.delivery_key == key
    assert count(db, StoreEvent) == 1


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param(
            {"currency": "EURO"},
            "currency: String should match pattern '^[A-Za-z]{3}$'",
            id="currency_of_4_letters",
        ),
        pytest.param(
            {"number": "#" + "9" * 64},
            "number: String should have at most 64 characters",
            id="number_over_64",
        ),
        pytest.param(
            {"phone": "+44 (0) 20 7946 0958 / mobile +44 7700 900123"},
            "phone: String should have at most 32 characters",
            id="phone_over_32",
        ),
        pytest.param(
            {"fulfillment_status": "x" * 33},
            "fulfillment_status: String should have at most 32 characters",
            id="fulfillment_status_over_32",
        ),
        pytest.param(
            {"total_price": "1000000000000.00"},
            "total_price: Input should be less than or equal to 999999999999.999",
            id="total_price_over_money_column",
        ),
        pytest.param(
            {"customer": {**ADA, "first_name": "A" * 201}},
            "customer.first_name: String should have at most 200 characters",
            id="customer_name_over_200",
        ),
    ],
)
def test_a_field_longer_than_parley_keeps_is_422_naming_it_and_writes_nothing(
    client, db, change, error
):
    """The canonical models bound each field as its column does, so the API refuses what
    PostgreSQL could not store (and SQLite would have stored) before any write."""
    event = order_created()
    event["payload"] |= change

    response = client.post("/api/v1/events", json=event, headers=AUTH)

    assert response.status_code == 422
    assert response.json() == {"error": f"payload is not a valid order.created: {error}"}
    assert _nothing_written(db)


@pytest.mark.parametrize(
    ("type_", "field"),
    [("order.created", "created_at"), ("order.created", "updated_at")],
)
def test_a_payload_time_past_the_last_utc_day_is_422_naming_it(client, db, type_, field):
    event = order_created()
    event["payload"][field] = "9999-12-31T23:00:00-05:00"

    response = client.post("/api/v1/events", json=event, headers=AUTH)

    assert response.status_code == 422
    assert response.json() == {
        "error": f"payload is not a valid {type_}: {field}: Value error, "
        "the time is past the last one parley can keep"
    }
    assert _nothing_written(db)


@pytest.mark.parametrize("text", [r"Ada\u0000", r"Ada\ud83d"], ids=["nul", "half_an_emoji"])
def test_text_no_database_can_store_is_422_with_the_reason_and_writes_nothing(client, db, text):
    event = order_created()
    body = json.dumps(event).replace('"first_name": "Ada"', f'"first_name": "{text}"')
    assert text in body

    response = client.post(
        "/api/v1/events", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    privacy = client.post(
        "/api/v1/privacy-requests",
        content=f'{{"kind": "access", "customer": {{"email": "ada@example.com", "x": "{text}"}}}}',
        headers={**AUTH, "Content-Type": "application/json"},
    )

    error = {"error": "text may not hold a NUL character or half a surrogate pair"}
    assert (response.status_code, response.json()) == (422, error)
    assert (privacy.status_code, privacy.json()) == (422, error)
    assert _nothing_written(db)


@pytest.mark.parametrize("path", ["/api/v1/nowhere", "/api/v1/journeys/%0Adispatch"])
def test_a_path_no_endpoint_answers_is_a_json_404(client, path):
    response = client.patch(path, json={}, headers=AUTH)

    assert (response.status_code, response.json()) == (404, {"error": "no such endpoint"})


@pytest.mark.parametrize(
    "path", ["/api/v1/messages?status=%00", "/api/v1/journeys/dis%00patch"], ids=["query", "path"]
)
def test_a_nul_in_a_query_or_path_is_422_not_a_database_error(client, path):
    response = client.request("GET" if "?" in path else "PATCH", path, json={}, headers=AUTH)

    assert (response.status_code, response.json()) == (
        422,
        {"error": "text may not hold a NUL character or half a surrogate pair"},
    )


def test_messages_are_listed_by_a_status_parley_has_or_refused(client):
    known = client.get("/api/v1/messages?status=sent", headers=AUTH)
    unknown = client.get("/api/v1/messages?status=sentt", headers=AUTH)

    assert (known.status_code, known.json()) == (200, {"messages": []})
    assert unknown.status_code == 422
    assert unknown.json()["error"].startswith("query.status: Input should be 'skipped'")


def test_a_page_no_route_answers_is_still_a_plain_404(client):
    response = client.get("/nowhere")

    assert (response.status_code, response.text) == (404, "Not Found")


def test_a_tracking_company_over_200_characters_is_422(client, db):
    event = fulfillment_created()
    event["payload"]["tracking_company"] = "X" * 201

    response = client.post("/api/v1/events", json=event, headers=AUTH)

    assert response.status_code == 422
    assert response.json() == {
        "error": "payload is not a valid fulfillment.created: "
        "tracking_company: String should have at most 200 characters"
    }
    assert _nothing_written(db)


@pytest.mark.parametrize(
    ("change", "location"),
    [
        pytest.param({"type": "order.teleported"}, "type: ", id="unknown_type"),
        pytest.param({"payload": None}, "payload: ", id="payload_not_object"),
        pytest.param({"occurred_at": "2026-03-02T10:00:00"}, "occurred_at: ", id="naive_time"),
        pytest.param(
            {"occurred_at": "9999-12-31T23:00:00-05:00"},
            "occurred_at: ",
            id="past_the_last_utc_day",
        ),
    ],
)
def test_malformed_event_envelope_is_422_naming_the_field(client, db, change, location):
    response = client.post("/api/v1/events", json={**order_created(), **change}, headers=AUTH)

    assert response.status_code == 422
    [error] = response.json().values()
    assert error.startswith(location)
    assert ";" not in error
    assert _nothing_written(db)


# GET /messages, /jobs/dead: scoped by the key's workspace --------------------------------


def test_another_workspaces_key_sees_none_of_the_demo_messages(client, db):
    with db.transaction() as session:
        workspaces.create_workspace(session, slug="other", name="Other", api_key=OTHER_API_KEY)
    client.post("/api/v1/events", json=order_created(), headers=AUTH)
    drain(make_worker(db, recording_adapters()))

    demo_view = client.get("/api/v1/messages", headers=AUTH).json()["messages"]
    other = {"Authorization": f"Bearer {OTHER_API_KEY}"}

    assert [(m["type"], m["channel"], m["recipient"], m["status"]) for m in demo_view] == [
        ("order_confirmation", "email", "ada@example.com", "sent")
    ]
    assert client.get("/api/v1/messages", headers=other).json() == {"messages": []}
    assert client.get("/api/v1/jobs/dead", headers=other).json() == {"jobs": []}


@pytest.mark.parametrize(
    ("limit", "listed"),
    [
        pytest.param("-1", 1, id="negative_case"),
        pytest.param("0", 1, id="zero_case"),
        pytest.param("2", 2, id="in_range_case"),
        pytest.param("99999999999999999999", 3, id="past_64_bits_case"),
    ],
)
def test_the_messages_limit_is_kept_between_1_and_1000(client, db, limit, listed):
    """As on /privacy-requests: a limit below 1 lists one message, never every one."""
    client.post("/api/v1/events", json=order_created(), headers=AUTH)
    client.post("/api/v1/events", json=order_created("9002", "#9002"), headers=AUTH)
    client.post("/api/v1/events", json=order_created("9003", "#9003"), headers=AUTH)
    drain(make_worker(db, recording_adapters()))

    answer = client.get(f"/api/v1/messages?limit={limit}", headers=AUTH)

    assert answer.status_code == 200
    assert len(answer.json()["messages"]) == listed


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/messages/{id}/arrived"),
        ("POST", "/api/v1/messages/{id}/send-again"),
        ("POST", "/api/v1/jobs/dead/{id}/retry"),
        ("GET", "/api/v1/privacy-requests/{id}/export"),
    ],
)
def test_an_id_past_64_bits_is_422_naming_it_and_changes_nothing(client, db, method, path):
    jobs, messages = count(db, Job), count(db, Message)

    answer = client.request(method, path.format(id="9" * 20), headers=AUTH)

    assert answer.status_code == 422
    assert answer.json()["error"].startswith("path.")
    assert "less than or equal to 9223372036854775807" in answer.json()["error"]
    assert (count(db, Job), count(db, Message)) == (jobs, messages)


# POST /jobs/dead/{id}/retry ---------------------------------------------------------------


def test_a_dead_job_is_re_driven_only_through_its_own_stores_key(client, db):
    with db.transaction() as session:
        workspaces.create_workspace(session, slug="other", name="Other", api_key=OTHER_API_KEY)
    client.post("/api/v1/events", json=order_created(), headers=AUTH)
    [job] = rows(db, Job)
    with db.transaction() as session:
        session.execute(
            update(Job).where(Job.id == job.id).values(status="dead", last_error="gave up")
        )
    other = {"Authorization": f"Bearer {OTHER_API_KEY}"}

    refused = client.post(f"/api/v1/jobs/dead/{job.id}/retry", headers=other)
    assert (refused.status_code, refused.json()) == (404, {"error": f"no job {job.id}"})
    assert rows(db, Job)[0].status == "dead"

    listed = client.get("/api/v1/jobs/dead", headers=AUTH).json()["jobs"]
    assert [(j["id"], j["status"], j["last_error"]) for j in listed] == [
        (job.id, "dead", "gave up")
    ]
    retried = client.post(f"/api/v1/jobs/dead/{job.id}/retry", headers=AUTH)
    assert retried.status_code == 200
    body = retried.json()["job"]
    assert (body["id"], body["status"], body["attempts"], body["payload"]["redrive"]) == (
        job.id,
        "pending",
        0,
        1,
    )
    again = client.post(f"/api/v1/jobs/dead/{job.id}/retry", headers=AUTH)
    assert (again.status_code, again.json()) == (
        409,
        {"error": f"job {job.id} is pending: only dead or failed jobs are re-driven"},
    )

    drain(make_worker(db, recording_adapters()))
    [message] = rows(db, Message)
    assert (message.message_type, message.status) == ("order_confirmation", "sent")


# PATCH /journeys/{key} -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("is_enabled", "started", "run_keys"),
    [
        pytest.param(True, 1, ["order_confirmation", "dispatch"], id="enabled_case"),
        pytest.param(False, 0, ["order_confirmation"], id="disabled_case"),
    ],
)
def test_disabled_dispatch_journey_starts_no_run(client, db, is_enabled, started, run_keys):
    client.post("/api/v1/events", json=order_created(), headers=AUTH)

    patched = client.patch(
        "/api/v1/journeys/dispatch", json={"is_enabled": is_enabled}, headers=AUTH
    )
    response = client.post("/api/v1/events", json=fulfillment_created(), headers=AUTH)

    assert patched.status_code == 200
    assert patched.json() == {"key": "dispatch", "is_enabled": is_enabled, "version": 1}
    assert response.json() == {"status": "accepted", "journeys_started": started}
    assert _journey_keys_of_runs(db) == run_keys
    listed = client.get("/api/v1/journeys", headers=AUTH).json()["journeys"]
    assert {j["key"]: j["is_enabled"] for j in listed}["dispatch"] is is_enabled


def _dispatch_definition(**changes: object) -> dict:
    [built_in] = [d for d in BUILT_IN if d["key"] == "dispatch"]
    return {**built_in, **changes}


INVALID = "journey 'dispatch' is not valid: "


@pytest.mark.parametrize(
    ("definition", "prefix", "field"),
    [
        pytest.param(_dispatch_definition(steps=[]), INVALID, "steps: ", id="no_steps"),
        pytest.param(
            _dispatch_definition(steps=[{"type": "send", "message": "carrier_pigeon"}]),
            INVALID,
            "steps.0.send.message: ",
            id="unknown_message_type",
        ),
        pytest.param(
            _dispatch_definition(steps=[{"type": "wait"}, {"type": "send", "message": "dispatch"}]),
            INVALID,
            "steps.0.wait: ",
            id="zero_wait",
        ),
        pytest.param(
            _dispatch_definition(trigger={"event": "order.teleported"}),
            INVALID,
            "trigger.event: ",
            id="unknown_trigger",
        ),
        pytest.param(
            _dispatch_definition(
                steps=[{"type": "wait", "days": 1e10}, {"type": "send", "message": "dispatch"}]
            ),
            INVALID,
            "steps.0.wait: Value error, a wait lasts at most 366 days",
            id="wait_past_any_timedelta",
        ),
        pytest.param(
            _dispatch_definition(
                steps=[{"type": "wait", "days": 3e6}, {"type": "send", "message": "dispatch"}]
            ),
            INVALID,
            "steps.0: a wait lasts at most 366 days",
            id="wait_past_the_calendar",
        ),
        pytest.param(
            _dispatch_definition(
                steps=[
                    {"type": "condition", "if": {"path": "order.number", "op": "in", "value": 5}},
                    {"type": "send", "message": "dispatch"},
                ]
            ),
            INVALID,
            "steps.0: 'in' tests against a list of values, not 5",
            id="in_without_a_list",
        ),
        pytest.param(
            _dispatch_definition(
                steps=[
                    {
                        "type": "condition",
                        "if": {"path": "order.financial_status", "op": "not_in", "value": "paid"},
                    },
                    {"type": "send", "message": "dispatch"},
                ]
            ),
            INVALID,
            "steps.0: 'not_in' tests against a list of values, not 'paid'",
            id="not_in_a_string",
        ),
        pytest.param(
            _dispatch_definition(name="D" * 201),
            INVALID,
            "name: a journey's name is at most 200 characters",
            id="name_longer_than_kept",
        ),
        pytest.param(
            _dispatch_definition(key="dispatch_two"),
            "a journey's key cannot change",
            "",
            id="key_changed",
        ),
    ],
)
def test_invalid_journey_definition_is_422_and_changes_nothing(
    client, db, definition, prefix, field
):
    response = client.patch(
        "/api/v1/journeys/dispatch", json={"definition": definition}, headers=AUTH
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error.startswith(prefix)
    assert field in error
    [journey] = rows(db, Journey, Journey.key == "dispatch")
    assert (journey.version, journey.definition) == (
        1,
        JourneyDefinition.parse(_dispatch_definition()).dump(),
    )


def test_unknown_journey_is_404(client, db):
    response = client.patch("/api/v1/journeys/nope", json={"is_enabled": False}, headers=AUTH)

    assert response.status_code == 404
    assert response.json() == {"error": "journey 'nope' not found"}


def test_a_journey_or_template_changed_through_the_api_is_audited_as_the_api(client, db):
    """The same audit rows as the Settings pages write, put down to the API (I13)."""
    refused = client.patch("/api/v1/journeys/nope", json={"is_enabled": False}, headers=AUTH)
    off = client.patch("/api/v1/journeys/dispatch", json={"is_enabled": False}, headers=AUTH)
    redefined = client.patch(
        "/api/v1/journeys/dispatch", json={"definition": _dispatch_definition()}, headers=AUTH
    )
    broken = client.put("/api/v1/templates/dispatch/sms", json={"text": "{{ oops "}, headers=AUTH)
    worded = client.put(
        "/api/v1/templates/dispatch/sms",
        json={"text": "Your parcel left. Reply STOP to opt out."},
        headers=AUTH,
    )

    assert [r.status_code for r in (refused, off, redefined, broken, worded)] == [
        404,
        200,
        200,
        422,
        200,
    ]
    assert [
        (e.workspace_id, e.action, e.actor_id, e.actor_email, e.ip, e.detail)
        for e in rows(db, AuditEntry)
    ] == [
        (
            1,
            "journey_changed",
            None,
            "the API",
            "testclient",
            {"journey": "dispatch", "is_enabled": False},
        ),
        (
            1,
            "journey_changed",
            None,
            "the API",
            "testclient",
            {"journey": "dispatch", "version": 2},
        ),
        (
            1,
            "template_changed",
            None,
            "the API",
            "testclient",
            {"message": "dispatch", "channel": "sms"},
        ),
    ]


def test_a_journey_change_sent_again_under_its_idempotency_key_is_made_once(client, db):
    """W14: a client's retry of a change it never saw answered makes no second version
    and no second audit row; it is answered as the first was."""
    change = {"definition": _dispatch_definition(name="Parcel on its way")}
    keyed = {**AUTH, "Idempotency-Key": "edit-1"}

    first = client.patch("/api/v1/journeys/dispatch", json=change, headers=keyed)
    again = client.patch("/api/v1/journeys/dispatch", json=change, headers=keyed)

    assert [(r.status_code, r.json()) for r in (first, again)] == [
        (200, {"key": "dispatch", "is_enabled": True, "version": 2})
    ] * 2
    [journey] = rows(db, Journey, Journey.key == "dispatch")
    assert (journey.version, journey.name) == (2, "Parcel on its way")
    assert count(db, JourneyVersion, JourneyVersion.journey_id == journey.id) == 2
    assert count(db, AuditEntry) == 1


@pytest.mark.parametrize(
    ("path", "change"),
    [
        pytest.param("/api/v1/journeys/dispatch", {"is_enabled": False}, id="other_change"),
        pytest.param("/api/v1/journeys/delivered", {"is_enabled": True}, id="other_journey"),
    ],
)
def test_an_idempotency_key_used_again_for_another_journey_change_is_409_and_changes_nothing(
    client, db, path, change
):
    keyed = {**AUTH, "Idempotency-Key": "edit-1"}
    first = client.patch("/api/v1/journeys/dispatch", json={"is_enabled": True}, headers=keyed)

    refused = client.patch(path, json=change, headers=keyed)

    assert first.status_code == 200
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "idempotency key 'edit-1' was first used for a different request;"
        " a new request needs a new key"
    }
    assert {j.key: (j.is_enabled, j.version) for j in rows(db, Journey)}["dispatch"] == (True, 1)
    assert count(db, AuditEntry) == 1


def test_a_template_saved_again_under_its_idempotency_key_is_saved_once(client, db):
    keyed = {**AUTH, "Idempotency-Key": "words-1"}
    worded = {"text": "Your parcel left. Reply STOP to opt out."}

    first = client.put("/api/v1/templates/dispatch/sms", json=worded, headers=keyed)
    again = client.put("/api/v1/templates/dispatch/sms", json=worded, headers=keyed)
    other = client.put(
        "/api/v1/templates/dispatch/sms",
        json={"text": "Other words. STOP to opt out."},
        headers=keyed,
    )

    assert [(r.status_code, r.json()) for r in (first, again)] == [(200, {"status": "saved"})] * 2
    assert other.status_code == 409
    [template] = rows(db, MessageTemplate)
    assert template.content["text"] == worded["text"]
    assert count(db, AuditEntry) == 1


# PUT /templates/{message_type}/{channel} -------------------------------------------------


def test_saved_template_is_used_by_the_next_send(client, db):
    content = {
        "subject": "{{ order.number }} is in, {{ customer.first_name }}",
        "text": "Thanks {{ customer.first_name }}: {{ order.item_count }} item(s) for "
        "{{ order.total|money(order.currency) }}.",
    }

    saved = client.put("/api/v1/templates/order_confirmation/email", json=content, headers=AUTH)
    client.post("/api/v1/events", json=order_created(), headers=AUTH)
    adapters = recording_adapters()
    drain(make_worker(db, adapters))

    assert (saved.status_code, saved.json()) == (200, {"status": "saved"})
    [sent] = adapters["email"].sent
    assert (sent.to, sent.subject, sent.text, sent.html) == (
        "ada@example.com",
        "#9001 is in, Ada",
        "Thanks Ada: 1 item(s) for £89.00.",
        None,
    )


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(
            {"text": "Hi {{ customer.first_name "},
            "template for order_confirmation on email is not valid: text, line 1: ",
            id="unclosed_expression",
        ),
        pytest.param(
            {"text": "Hi", "subject": "{% include 'secrets.txt' %}"},
            "template for order_confirmation on email is not valid: subject, line 1: "
            "{% include %} is not supported in message templates",
            id="include",
        ),
        pytest.param(
            {"text": "{{ order.number|shell }}"},
            "template for order_confirmation on email is not valid: text, line 1: ",
            id="unknown_filter",
        ),
        pytest.param(
            {"subject": "Hi"},
            "template for order_confirmation on email is not valid: text must be a string",
            id="no_text",
        ),
    ],
)
def test_invalid_template_is_422_and_not_saved(client, db, content, error):
    response = client.put("/api/v1/templates/order_confirmation/email", json=content, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["error"].startswith(error)
    assert count(db, MessageTemplate) == 0


def test_template_for_an_unknown_channel_is_422(client, db):
    response = client.put(
        "/api/v1/templates/order_confirmation/pigeon", json={"text": "Hi"}, headers=AUTH
    )

    assert response.status_code == 422
    assert response.json()["error"].startswith("path.channel: Input should be ")
    assert count(db, MessageTemplate) == 0


def test_a_group_of_events_reads_its_key_once_and_looks_its_shoppers_up_together(db):
    """As a group commit writes them: the stage reads the key and the shoppers for all."""
    from parley.http.api import v1

    seed(db)
    checked = [
        v1._check_event(
            db,
            API_KEY,
            v1.EventIn.model_validate(
                {
                    **order_created(str(9300 + n), f"#{9300 + n}"),
                    "payload": {
                        **order_created()["payload"],
                        "external_id": str(9300 + n),
                        "customer": {
                            **ADA,
                            "external_id": str(7300 + n),
                            "email": f"shopper{n}@example.com",
                            "phone": f"+44791112{n:04d}",
                        },
                    },
                }
            ),
            b"{}",
            f"event-{n}",
        )
        for n in range(4)
    ]
    statements: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.transaction() as session:
            v1._stage_events(session, checked)
            answers = [v1._store_event(session, one) for one in checked]
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert answers == [{"status": "accepted", "journeys_started": 1}] * 4
    assert sum("FROM workspaces" in s and "api_key_hash" in s for s in statements) == 1
    assert sum("FROM customer_identities JOIN customers" in s for s in statements) == 1
    assert count(db, WebhookDelivery, WebhookDelivery.source == "api") == 4


# POST /messages/{id}/arrived, /messages/{id}/send-again -----------------------------------


def _held_confirmation(client, db, frozen_clock, adapters):
    client.post("/api/v1/events", json=order_created(), headers=AUTH)
    hold_next_send(make_worker(db, adapters), frozen_clock)
    [held] = client.get("/api/v1/messages?status=held", headers=AUTH).json()["messages"]
    return held


def test_a_held_message_is_sent_again_only_through_its_own_stores_key(client, db, frozen_clock):
    with db.transaction() as session:
        workspaces.create_workspace(session, slug="other", name="Other", api_key=OTHER_API_KEY)
    adapters = recording_adapters()
    held = _held_confirmation(client, db, frozen_clock, adapters)
    other = {"Authorization": f"Bearer {OTHER_API_KEY}"}

    refused = [
        client.post(f"/api/v1/messages/{held['id']}/{action}", headers=other)
        for action in ("arrived", "send-again")
    ]
    assert [(r.status_code, r.json()) for r in refused] == [
        (404, {"error": f"no message {held['id']}"})
    ] * 2
    assert client.get("/api/v1/messages?status=held", headers=AUTH).json()["messages"] != []

    answer = client.post(f"/api/v1/messages/{held['id']}/send-again", headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["message"]["status"], body["message"]["reason"]) == (
        "failed",
        "held for review, then found not delivered by the API: sent again",
    )
    assert (body["job"]["status"], body["job"]["payload"]["redrive"]) == ("pending", 1)
    again = client.post(f"/api/v1/messages/{held['id']}/arrived", headers=AUTH)
    assert (again.status_code, again.json()) == (
        409,
        {"error": f"message {held['id']} is failed: only held messages are reviewed"},
    )
    drain(make_worker(db, adapters))
    assert [email.to for email in adapters[ChannelKind.EMAIL].sent] == ["ada@example.com"] * 2


def test_a_held_message_that_arrived_is_marked_sent_through_the_api(client, db, frozen_clock):
    adapters = recording_adapters()
    held = _held_confirmation(client, db, frozen_clock, adapters)

    answer = client.post(f"/api/v1/messages/{held['id']}/arrived", headers=AUTH)

    assert answer.status_code == 200
    assert (answer.json()["message"]["status"], answer.json()["message"]["reason"]) == (
        "sent",
        "held for review, then found delivered by the API",
    )
    assert client.get("/api/v1/messages?status=held", headers=AUTH).json() == {"messages": []}
    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_an_amount_in_a_three_decimal_currency_keeps_its_third_decimal(client, db):
    """Kuwaiti, Bahraini, Omani, Jordanian and Tunisian money has three decimals: a
    confirmation of 12.345 KWD must not say 12.350 KWD."""
    from decimal import Decimal

    from parley.commerce.models import Order, Refund
    from parley.messaging.templates import money

    placed = order_created()
    placed["payload"] |= {"currency": "KWD", "total_price": "12.345"}
    refunded = {
        "type": "refund.created",
        "payload": {
            "external_id": "r1",
            "order_external_id": "9001",
            "amount": "1.005",
            "currency": "KWD",
        },
    }
    for body in (placed, refunded):
        answer = client.post("/api/v1/events", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text

    [order] = rows(db, Order)
    [refund] = rows(db, Refund)
    assert (order.total_price, refund.amount) == (Decimal("12.345"), Decimal("1.005"))
    assert money(order.total_price, order.currency) == "12.345 KWD"
