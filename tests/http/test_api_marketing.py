"""``/api/v1/marketing`` over HTTP: the store's kill switch and marketing rate from its own
tools, scoped by its key and audited as the API's doing, with what waits, and for what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from parley.accounts.models import AuditEntry
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.http.app import create_app
from parley.runtime import Runtime
from parley.settings import get_settings
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import (
    API_KEY,
    deliveries,
    drain,
    make_worker,
    post,
    promotions_without_caps,
    recording_adapters,
    rows,
    seed,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER = {"Authorization": "Bearer other-store-api-key"}


@pytest.fixture
def client(db, frozen_clock):
    seed(db)
    with db.transaction() as session:
        workspaces.create_workspace(
            session, slug="other", name="Other", api_key="other-store-api-key"
        )
    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as test_client:
        yield test_client


def _promotions(db, orders: int) -> None:
    promotions_without_caps(db)
    for number in range(orders):
        placed, *_ = deliveries("Ada", order_id=800 + number, number=1800 + number)
        post(db, placed)


def _settings(db, slug: str) -> dict:
    (workspace,) = rows(db, Workspace, Workspace.slug == slug)
    return workspace.settings or {}


def test_a_pause_through_the_api_holds_the_stores_marketing_and_a_resume_sends_it(client, db):
    _promotions(db, 3)
    adapters = recording_adapters()
    worker = make_worker(db, adapters)

    paused = client.post("/api/v1/marketing/pause", headers=AUTH)
    drain(worker)
    held = client.get("/api/v1/marketing", headers=AUTH).json()
    resumed = client.post("/api/v1/marketing/resume", headers=AUTH)
    drain(worker)

    assert paused.status_code == 200
    assert paused.json()["paused"] == {"since": utc_now().isoformat(), "by": "the API"}
    assert held["waiting"] == [
        {
            "waiting_for": "marketing_paused",
            "count": 3,
            "first_due": (utc_now() + timedelta(seconds=30)).isoformat(),
            "last_due": (utc_now() + timedelta(seconds=30)).isoformat(),
        }
    ]
    assert resumed.json() == {"paused": None, "rate": None, "waiting": []}
    assert len(adapters[ChannelKind.EMAIL].sent) == 3
    entries = rows(db, AuditEntry, AuditEntry.action.like("marketing_%"))
    assert [(e.action, e.actor_email, e.ip) for e in entries] == [
        ("marketing_paused", "the API", "testclient"),
        ("marketing_resumed", "the API", "testclient"),
    ]


def test_a_rate_set_through_the_api_paces_the_stores_marketing(client, db):
    _promotions(db, 3)
    adapters = recording_adapters()

    answer = client.put("/api/v1/marketing/rate", json={"per_hour": 60}, headers=AUTH)
    drain(make_worker(db, adapters))
    shown = client.get("/api/v1/marketing", headers=AUTH).json()
    lifted = client.put("/api/v1/marketing/rate", json={"per_hour": None}, headers=AUTH)

    assert answer.status_code == 200
    assert answer.json()["rate"] == {"per_hour": 60}
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    assert [(w["waiting_for"], w["count"]) for w in shown["waiting"]] == [("marketing_rate", 2)]
    assert lifted.json()["rate"] is None
    assert [(w["waiting_for"], w["count"]) for w in lifted.json()["waiting"]] == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"per_hour": 0}, "whole number of messages an hour from 1 to 1,000,000"),
        ({"per_hour": 1_000_001}, "whole number of messages an hour from 1 to 1,000,000"),
        ({"per_hour": "fast"}, "per_hour"),
        ({"per_hour": 1.5}, "per_hour"),
    ],
)
def test_a_bad_rate_is_422_with_the_reason_and_changes_nothing(client, db, body, error):
    answer = client.put("/api/v1/marketing/rate", json=body, headers=AUTH)

    assert answer.status_code == 422
    assert error in answer.json()["error"]
    assert "marketing_rate" not in _settings(db, "demo")
    assert rows(db, AuditEntry, AuditEntry.action == "marketing_rate_changed") == []


def test_one_stores_key_controls_only_that_store(client, db):
    client.post("/api/v1/marketing/pause", headers=OTHER)
    client.put("/api/v1/marketing/rate", json={"per_hour": 10}, headers=OTHER)

    assert _settings(db, "other")["marketing_paused"]["by"] == "the API"
    assert _settings(db, "other")["marketing_rate"] == {"per_hour": 10}
    assert client.get("/api/v1/marketing", headers=AUTH).json() == {
        "paused": None,
        "rate": None,
        "waiting": [],
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/marketing"),
        ("post", "/api/v1/marketing/pause"),
        ("post", "/api/v1/marketing/resume"),
        ("put", "/api/v1/marketing/rate"),
    ],
)
def test_without_a_valid_key_it_is_401_and_nothing_changes(client, db, method, path):
    answer = client.request(
        method, path, json={"per_hour": 5}, headers={"Authorization": "Bearer wrong"}
    )

    assert answer.status_code == 401
    assert "marketing_paused" not in _settings(db, "demo")
    assert "marketing_rate" not in _settings(db, "demo")
