"""Settings → Privacy requests: what the platform forwarded, what parley did, and an access
request's data for the store owner to download (admins only, each download audited)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from parley.accounts.models import AuditEntry
from parley.jobs.worker import Worker, WorkerConfig
from parley.privacy.tasks import CustomerRequestTask
from support import deliveries, drain, post, rows, signed
from web_support import ADMIN, AGENT, OTHER_ADMIN, browser, seed_team, sign_in, web_app

HTML = {"accept": "text/html"}
ADA = {"id": 7001, "email": "ada@example.com", "phone": "+447911123456"}


@pytest.fixture
def team(db):
    team = seed_team(db)
    for delivery in deliveries("Ada", order_id=501):
        post(db, delivery)
    return team


def _forward(db, topic: str, webhook_id: str) -> None:
    body, headers = signed(topic, {"customer": ADA}, webhook_id=webhook_id)
    post(db, None, body=body, headers=headers)
    drain(Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig()))


def test_an_access_request_is_listed_and_its_data_downloaded_by_an_admin_audited(db, team):
    _forward(db, "customers/data_request", "access")
    with browser(web_app(db)) as client:
        sign_in(client, ADMIN)
        listing = client.get("/admin/privacy", headers=HTML)
        download = client.get("/admin/privacy/1/export.json")
    assert listing.status_code == 200
    assert listing.text.count('data-test="privacy-request"') == 1
    assert 'data-kind="access" data-status="done"' in listing.text
    assert "platform id</span> 7001" in listing.text
    assert 'href="/admin/privacy/1/export.json"' in listing.text
    assert "ada@example.com" not in listing.text  # the list names no one
    assert download.status_code == 200
    assert download.headers["content-disposition"] == (
        'attachment; filename="demo-privacy-request-1.json"'
    )
    assert download.headers["cache-control"] == "no-store"
    export = json.loads(download.text)
    assert [profile["email"] for profile in export["customers"]] == ["ada@example.com"]
    [entry] = rows(db, AuditEntry, AuditEntry.action == "export")
    assert entry.detail == {"what": "privacy request", "request": 1}


def test_after_an_erasure_the_export_is_gone_from_the_page_and_the_download(db, team):
    _forward(db, "customers/data_request", "access")
    _forward(db, "customers/redact", "erasure")
    with browser(web_app(db)) as client:
        sign_in(client, ADMIN)
        listing = client.get("/admin/privacy", headers=HTML)
        download = client.get("/admin/privacy/1/export.json")
    assert 'data-kind="erasure" data-status="done"' in listing.text
    assert 'data-test="privacy-export"' not in listing.text
    assert "its export was deleted by a later erasure" in listing.text
    assert download.status_code == 404
    assert rows(db, AuditEntry, AuditEntry.action == "export") == []


@pytest.mark.parametrize(("who", "status"), [(AGENT, 403), (OTHER_ADMIN, 404)])
def test_no_one_but_the_stores_admins_downloads_its_exports(db, team, who, status):
    _forward(db, "customers/data_request", "access")
    with browser(web_app(db)) as client:
        sign_in(client, who)
        download = client.get("/admin/privacy/1/export.json")
        listing = client.get("/admin/privacy", headers=HTML)
    assert download.status_code == status
    assert "ada@example.com" not in download.text
    if who == OTHER_ADMIN:
        assert 'data-test="privacy-request"' not in listing.text
    assert rows(db, AuditEntry, AuditEntry.action == "export") == []


def test_a_request_in_progress_shows_when_it_is_due_and_when_it_is_overdue(frozen_clock, db, team):
    body, headers = signed("customers/data_request", {"customer": ADA}, webhook_id="access")
    post(db, None, body=body, headers=headers)  # received, not yet carried out
    pages = []
    for wait in (timedelta(0), timedelta(days=31)):
        frozen_clock.advance(wait)
        with browser(web_app(db)) as client:
            sign_in(client, ADMIN)
            pages.append(client.get("/admin/privacy", headers=HTML).text)
    on_time, late = pages

    def due(page: str) -> str:
        return page.split('data-test="privacy-due">', 1)[1].split("</td>", 1)[0]

    assert due(on_time) == "02 Apr 2026, 10:00 UTC"  # received 2 March, 10:00
    assert due(late) == '<span class="badge bad">overdue</span> 02 Apr 2026, 10:00 UTC'
