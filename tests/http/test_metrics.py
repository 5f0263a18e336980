"""``GET /metrics``: off unless a token is set, 401 and logged for a wrong one, and with the
right one the backlog and the alerts in Prometheus' text format, read from the table."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from starlette.testclient import TestClient

from parley.alerts.rules import Thresholds
from parley.alerts.watch import watch
from parley.clock import utc_now
from parley.http.app import create_app
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus, Lane
from parley.runtime import Runtime
from parley.settings import get_settings
from support import seed

TOKEN = "scrape-me-1234"


def client_for(db, **overrides) -> TestClient:
    settings = get_settings(database_url=db.url, embedded_worker=False, **overrides)
    return TestClient(create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={})))


@pytest.fixture
def client(db, frozen_clock):
    with client_for(db, metrics_token=TOKEN) as test_client:
        yield test_client


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_off_until_a_token_is_set(db, frozen_clock):
    with client_for(db) as off:
        response = off.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404
    assert response.json() == {"error": "metrics are off: set PARLEY_METRICS_TOKEN to turn them on"}


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_token_leaves_metrics_off_rather_than_open_to_an_empty_bearer(
    db, frozen_clock, blank
):
    """A ``PARLEY_METRICS_TOKEN=`` line left in a .env or a manifest is no token."""
    with client_for(db, metrics_token=blank) as off:
        response = off.get("/metrics", headers={"Authorization": "Bearer"})
        spaced = off.get("/metrics", headers={"Authorization": f"Bearer {blank}"})

    assert (response.status_code, spaced.status_code) == (404, 404)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_a_missing_or_wrong_token_is_refused_and_logged(client, caplog, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    with caplog.at_level(logging.WARNING, logger="parley.http.metrics"):
        response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="parley metrics"'
    assert response.json() == {"error": "a valid bearer token is required"}
    refused = "no" if authorization is None else "a wrong"
    assert f"GET /metrics refused: {refused} bearer token, from testclient" in caplog.text
    assert TOKEN not in caplog.text


def test_an_empty_deployment_shows_every_lane_and_alert_at_zero(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert samples(response.text) == {
        ("parley_jobs_due", (("lane", "transactional"),)): 0.0,
        ("parley_jobs_due", (("lane", "marketing"),)): 0.0,
        ("parley_jobs_late_seconds", (("lane", "transactional"),)): 0.0,
        ("parley_jobs_late_seconds", (("lane", "marketing"),)): 0.0,
        ("parley_jobs_due_stores", (("lane", "transactional"),)): 0.0,
        ("parley_jobs_due_stores", (("lane", "marketing"),)): 0.0,
        ("parley_jobs_lease_expired", ()): 0.0,
        ("parley_alert_firing", (("alert", "late:transactional"),)): 0.0,
        ("parley_alert_firing", (("alert", "late:marketing"),)): 0.0,
        ("parley_alert_firing", (("alert", "dead_letter"),)): 0.0,
        ("parley_alert_firing", (("alert", "privacy_requests"),)): 0.0,
        ("parley_alert_firing", (("alert", "refused_accounts"),)): 0.0,
    }


def test_the_backlog_the_dead_letter_and_a_firing_alert_are_scraped(client, db, frozen_clock):
    store = seed(db)
    with db.transaction() as session:
        for minutes in (4, 1):
            queue.enqueue(
                session,
                kind="journeys.advance",
                payload={},
                workspace_id=store,
                due_at=utc_now() - timedelta(minutes=minutes),
            )
        queue.enqueue(
            session,
            kind="journeys.advance",
            payload={"dead": True},
            workspace_id=store,
            due_at=utc_now(),
            lane=Lane.MARKETING,
        )
    with db.transaction() as session:
        session.execute(update(Job).where(Job.lane == Lane.MARKETING).values(status=JobStatus.DEAD))
        watch(session, Thresholds(), now=utc_now(), notify=False)

    found = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text)

    assert found[("parley_jobs_due", (("lane", "transactional"),))] == 2.0
    assert found[("parley_jobs_late_seconds", (("lane", "transactional"),))] == 240.0
    assert found[("parley_jobs_due_stores", (("lane", "transactional"),))] == 1.0
    assert found[("parley_jobs_due", (("lane", "marketing"),))] == 0.0
    assert found[("parley_dead_letter_jobs", (("kind", "journeys.advance"),))] == 1.0
    assert found[("parley_alert_firing", (("alert", "late:transactional"),))] == 1.0
    assert found[("parley_alert_firing", (("alert", "dead_letter"),))] == 1.0
    assert found[("parley_alert_firing", (("alert", "late:marketing"),))] == 0.0
