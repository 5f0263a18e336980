"""The template editor's preview shows what the customer would get: the store's own
details as a real send fills them in, nothing a real send leaves out."""

from __future__ import annotations

import pytest

from parley.demo.seed import DEMO_POSTAL_ADDRESS
from parley.workspaces.models import Workspace
from web_support import ADMIN, browser, seed_team, sign_in, web_app


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def _preview(client, csrf: str, *, message: str, channel: str, text: str) -> dict:
    answer = client.post(
        "/admin/journeys/preview",
        data={"message": message, "channel": channel, "subject": "Hello", "text": text},
        headers={"x-csrf-token": csrf, "accept": "application/json"},
    )
    assert answer.status_code == 200
    return answer.json()


def test_the_preview_shows_the_stores_postal_address_as_a_sent_email_does(app):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        result = _preview(
            client,
            csrf,
            message="dispatch",
            channel="email",
            text="On its way.\n{{ store.name }}, {{ store.postal_address }}",
        )

    assert result["ok"] is True
    assert result["text"] == f"On its way.\nJuniper & Pine, {DEMO_POSTAL_ADDRESS}"


def test_the_preview_of_a_store_without_a_review_page_leaves_the_review_link_out(app, db, team):
    with db.transaction() as session:
        workspace = session.get_one(Workspace, team.workspace_id)
        workspace.settings = {**workspace.settings, "review_url": None}
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        result = _preview(
            client,
            csrf,
            message="satisfaction_check",
            channel="email",
            text="Thanks!{% if review_url %} Review us: {{ review_url }}{% endif %}",
        )

    assert result["ok"] is True
    assert result["text"] == "Thanks!"
