"""Canned replies: admins write them, every agent inserts them, and their variables are
filled in for the open conversation inside the template sandbox."""

from __future__ import annotations

import pytest

from parley.channels.base import ChannelKind
from parley.inbox.models import CannedReply
from support import count, customer_writes, rows
from web_support import ADMIN, AGENT, OTHER_ADMIN, browser, seed_team, sign_in, web_app

JSON = {"accept": "application/json"}


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def _canned(db, shortcut: str) -> CannedReply:
    return rows(db, CannedReply, CannedReply.shortcut == shortcut)[0]


def test_the_demo_seeds_useful_canned_replies(db, team):
    shortcuts = [c.shortcut for c in rows(db, CannedReply, order_by=lambda m: m.shortcut)]
    assert shortcuts == ["returns", "thanks", "tracking"]


def test_an_agent_reads_canned_replies_but_cannot_write_them(app, db, team):
    tracking = _canned(db, "tracking")
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        page = client.get("/admin/canned-replies", headers={"accept": "text/html"})
        create = client.post(
            "/admin/canned-replies",
            data={"csrf_token": csrf, "shortcut": "hi", "title": "Hi", "body": "Hello"},
        )
        edit = client.post(
            f"/admin/canned-replies/{tracking.id}",
            data={"csrf_token": csrf, "shortcut": "tracking", "title": "X", "body": "X"},
        )
        delete = client.post(
            f"/admin/canned-replies/{tracking.id}/delete", data={"csrf_token": csrf}
        )
    assert page.status_code == 200
    assert "/tracking" in page.text
    assert 'data-test="canned-form"' not in page.text
    assert (create.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    assert count(db, CannedReply, CannedReply.workspace_id == team.workspace_id) == 3
    assert _canned(db, "tracking").title == "Where is my order"


def test_an_admin_creates_edits_and_deletes_a_canned_reply(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        created = client.post(
            "/admin/canned-replies",
            data={
                "csrf_token": csrf,
                "shortcut": "/Sizes",
                "title": "Size guide",
                "body": "Hi {{ customer.first_name }}, our size guide: {{ store.url }}/sizes",
            },
        )
        sizes = _canned(db, "sizes")
        duplicate = client.post(
            "/admin/canned-replies",
            data={"csrf_token": csrf, "shortcut": "sizes", "title": "Again", "body": "Again"},
        )
        edited = client.post(
            f"/admin/canned-replies/{sizes.id}",
            data={"csrf_token": csrf, "shortcut": "sizes", "title": "Sizing", "body": "S M L"},
        )
        edit_page = client.get(f"/admin/canned-replies/{sizes.id}", headers={"accept": "text/html"})
        deleted = client.post(f"/admin/canned-replies/{sizes.id}/delete", data={"csrf_token": csrf})
    assert created.status_code == 303
    assert sizes.workspace_id == team.workspace_id
    assert duplicate.status_code == 409
    assert "already uses /sizes" in duplicate.text
    assert edited.status_code == 303
    assert edit_page.status_code == 200
    assert "Sizing" in edit_page.text
    assert deleted.status_code == 303
    assert count(db, CannedReply, CannedReply.shortcut == "sizes") == 0


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", id="class_walk_case"),
        pytest.param('{{ "{0.__class__}".format(1) }}', id="str_format_case"),
        pytest.param("{% include '/etc/passwd' %}", id="include_case"),
        pytest.param("{{ customer.first_name", id="syntax_case"),
    ],
)
def test_a_template_breakout_in_a_canned_reply_is_refused(app, db, payload):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/canned-replies",
            data={"csrf_token": csrf, "shortcut": "evil", "title": "Evil", "body": payload},
        )
    assert answer.status_code == 422
    assert "cannot be used" in answer.text
    assert count(db, CannedReply, CannedReply.shortcut == "evil") == 0


def test_canned_variables_render_for_the_open_conversation(app, db):
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="where is my order"
    )
    thanks = _canned(db, "thanks")
    tracking = _canned(db, "tracking")
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = client.get(f"/inbox/{received.conversation_id}/canned/{thanks.id}", headers=JSON)
        no_order = client.get(
            f"/inbox/{received.conversation_id}/canned/{tracking.id}", headers=JSON
        )
    assert answer.status_code == 200
    assert answer.json() == {
        "text": "Thanks for getting in touch, Ada! If anything else comes up, just reply here.\n"
        "Sam, Juniper & Pine"
    }
    assert no_order.json()["text"].startswith("Hi Ada, your order is on its way.")


def test_another_workspaces_canned_reply_or_conversation_is_not_found(app, db, team):
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="hello"
    )
    thanks = _canned(db, "thanks")
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        render = client.get(f"/inbox/{received.conversation_id}/canned/{thanks.id}", headers=JSON)
        edit = client.get(f"/admin/canned-replies/{thanks.id}", headers=JSON)
        delete = client.post(
            f"/admin/canned-replies/{thanks.id}/delete", data={"csrf_token": csrf}, headers=JSON
        )
        listing = client.get("/admin/canned-replies", headers={"accept": "text/html"})
    assert (render.status_code, edit.status_code, delete.status_code) == (404, 404, 404)
    assert "Thanks for getting in touch" not in render.text + edit.text + listing.text
    assert count(db, CannedReply, CannedReply.id == thanks.id) == 1
