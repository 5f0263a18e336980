"""Admin forms with text no database stores: refused with the field's name (422), nothing
saved, on both engines (PostgreSQL refuses a NUL in text and in JSON, which was a 500)."""

from __future__ import annotations

import pytest

from parley.accounts.models import AuditEntry, Invite
from parley.messaging.models import MessageTemplate
from parley.workspaces.models import Workspace
from support import count, rows
from web_support import ADMIN, browser, seed_team, sign_in, web_app

HTML = {"accept": "text/html"}


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def _saved(db) -> tuple:
    workspaces = [
        (w.name, w.store_url, w.support_email, w.timezone, w.settings)
        for w in rows(db, Workspace, order_by=lambda model: model.id)
    ]
    return (
        workspaces,
        count(db, MessageTemplate),
        count(db, Invite),
        count(db, AuditEntry, AuditEntry.action != "sign_in"),
    )


GENERAL = {"name": "Juniper & Pine", "timezone": "Europe/London"}

NUL_CASES = (
    pytest.param("/admin/general", {**GENERAL, "name": "Juniper\x00Pine"}, "name", id="name"),
    pytest.param(
        "/admin/general",
        {**GENERAL, "postal_address": "1 Quay Road\x00\nBristol"},
        "postal_address",
        id="postal_address",
    ),
    pytest.param(
        "/admin/general",
        {**GENERAL, "store_url": "https://juniper\x00.example"},
        "store_url",
        id="store_url",
    ),
    pytest.param(
        "/admin/general",
        {**GENERAL, "support_email": "help\x00@juniper.example"},
        "support_email",
        id="support_email",
    ),
    pytest.param(
        "/admin/policies",
        {"title": "Returns\x00", "text": "30 days.", "return_window_days": "30"},
        "title",
        id="policy_title",
    ),
    pytest.param(
        "/admin/policies",
        {"title": "Returns", "text": "30\x00 days.", "return_window_days": "30"},
        "text",
        id="policy_text",
    ),
    pytest.param(
        "/admin/journeys/dispatch/templates/dispatch/sms",
        {"text": "On its way\x00"},
        "text",
        id="template_text",
    ),
    pytest.param(
        "/admin/journeys/order_confirmation/templates/order_confirmation/email",
        {"subject": "Thanks\x00", "text": "Thanks", "html": "<p>Thanks</p>"},
        "subject",
        id="template_subject",
    ),
    pytest.param(
        "/admin/journeys/order_confirmation/templates/order_confirmation/email",
        {"subject": "Thanks", "text": "Thanks", "html": "<p>Thanks\x00</p>"},
        "html",
        id="template_html",
    ),
    pytest.param(
        "/admin/team/invite",
        {"email": "friend\x00@example.com", "role": "agent"},
        "email",
        id="invite_email",
    ),
)


@pytest.mark.parametrize(("path", "data", "field"), NUL_CASES)
def test_a_nul_in_an_admin_form_is_refused_naming_the_field_and_nothing_is_saved(
    app, db, path, data, field
):
    before = _saved(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(path, data={**data, "csrf_token": csrf}, headers=HTML)

    assert answer.status_code == 422
    assert f"{field}: text may not hold a NUL character or half a surrogate pair" in answer.text
    assert _saved(db) == before


def test_the_live_preview_of_wording_with_a_nul_says_why_as_any_other_failed_preview(app):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/journeys/preview",
            data={"csrf_token": csrf, "message": "dispatch", "channel": "sms", "text": "Hi\x00"},
        )

    assert answer.status_code == 200
    assert answer.json() == {
        "ok": False,
        "error": "text: text may not hold a NUL character or half a surrogate pair",
    }
