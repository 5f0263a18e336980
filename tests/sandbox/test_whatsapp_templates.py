"""The sandbox business account's templates: listed page by page as the Graph API lists
them, refused at send time unless approved, and reviewed with the webhook Meta posts."""

from __future__ import annotations

import json

import httpx2
import pytest
from starlette.applications import Starlette
from tests.sandbox.conftest import (
    META_APP_SECRET,
    WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_TOKEN,
    FakeParley,
)

from parley.channels.base import ChannelKind, TemplateReview
from parley.channels.whatsapp_cloud import webhook as whatsapp
from parley.messaging.default_templates import default_template
from parley.messaging.types import MessageType
from parley.sandbox.store import SandboxStore
from parley.sandbox.webhooks import WebhookPoster
from parley.settings import SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {WHATSAPP_TOKEN}"}
LIST_URL = f"/whatsapp/v21.0/{SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID}/message_templates"
SEND_URL = f"/whatsapp/v21.0/{WHATSAPP_PHONE_NUMBER_ID}/messages"
DEFAULT_NAMES = sorted(
    content.whatsapp_template
    for message_type in MessageType
    if (content := default_template(message_type, ChannelKind.WHATSAPP)) is not None
    and content.whatsapp_template
)


def _template_send(name: str) -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "to": "447911123456",
        "type": "template",
        "template": {"name": name, "language": {"code": "en"}},
    }


async def test_the_default_templates_are_listed_approved_as_utility(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get(LIST_URL, headers=AUTH, params={"limit": "100"})

    assert response.status_code == 200
    data = response.json()["data"]
    assert sorted(item["name"] for item in data) == DEFAULT_NAMES
    assert {(item["language"], item["status"], item["category"]) for item in data} == {
        ("en", "APPROVED", "UTILITY")
    }
    assert "next" not in response.json()["paging"]


async def test_listing_pages_by_the_after_cursor(client: httpx2.AsyncClient) -> None:
    names: list[str] = []
    params = {"limit": "2"}
    pages = 0
    while True:
        response = await client.get(LIST_URL, headers=AUTH, params=params)
        assert response.status_code == 200
        body = response.json()
        names.extend(item["name"] for item in body["data"])
        pages += 1
        if "next" not in body["paging"]:
            break
        assert "after=" in body["paging"]["next"]
        params = {"limit": "2", "after": body["paging"]["cursors"]["after"]}

    assert sorted(names) == DEFAULT_NAMES
    assert pages == -(-len(DEFAULT_NAMES) // 2)


@pytest.mark.parametrize(
    ("url", "headers", "params", "status", "code"),
    [
        pytest.param(LIST_URL, {"Authorization": "Bearer wrong"}, {}, 401, 190, id="bad_token"),
        pytest.param(
            "/whatsapp/v21.0/999/message_templates", AUTH, {}, 400, 100, id="another_account"
        ),
        pytest.param(LIST_URL, AUTH, {"limit": "0"}, 400, 100, id="bad_limit"),
        pytest.param(LIST_URL, AUTH, {"after": "not-a-cursor!"}, 400, 100, id="bad_cursor"),
    ],
)
async def test_listing_refuses_like_the_graph_api(
    client: httpx2.AsyncClient,
    url: str,
    headers: dict[str, str],
    params: dict[str, str],
    status: int,
    code: int,
) -> None:
    response = await client.get(url, headers=headers, params=params)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_a_template_meta_does_not_hold_approved_is_refused_and_not_captured(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    unknown = await client.post(SEND_URL, json=_template_send("summer_sale"), headers=AUTH)
    await client.post(
        "/api/whatsapp-templates",
        json={"name": "order_dispatched", "language": "en", "status": "PAUSED"},
    )
    paused = await client.post(SEND_URL, json=_template_send("order_dispatched"), headers=AUTH)

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, 132001)
    assert (paused.status_code, paused.json()["error"]["code"]) == (400, 132015)
    assert store.list() == []


async def test_a_review_is_told_to_parley_by_a_signed_webhook(
    reporting_client: httpx2.AsyncClient, reporting_app: Starlette, fake_parley: FakeParley
) -> None:
    response = await reporting_client.post(
        "/api/whatsapp-templates",
        json={"name": "order_dispatched", "language": "en", "category": "MARKETING"},
    )
    poster = reporting_app.state.webhook_poster
    assert isinstance(poster, WebhookPoster)
    await poster.wait_idle()

    assert response.status_code == 200
    assert response.json()["template"]["category"] == "MARKETING"
    requests = fake_parley.requests
    assert len(requests) == 1
    body = requests[0].content
    whatsapp.verify_signature(body, requests[0].headers["x-hub-signature-256"], META_APP_SECRET)
    change = json.loads(body)["entry"][0]["changes"][0]
    assert change["field"] == "template_category_update"
    assert change["value"]["previous_category"] == "UTILITY"
    assert whatsapp.parse(body) == [
        TemplateReview(
            name="order_dispatched",
            language="en",
            category="MARKETING",
            meta_id=response.json()["template"]["id"],
        )
    ]


async def test_a_review_with_a_bad_status_is_refused_and_changes_nothing(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post(
        "/api/whatsapp-templates", json={"name": "order_dispatched", "status": "GREAT"}
    )
    listed = await client.get("/api/whatsapp-templates")

    assert response.status_code == 400
    assert "status must be one of" in response.json()["error"]
    dispatched = [t for t in listed.json()["templates"] if t["name"] == "order_dispatched"]
    assert [(t["status"], t["category"]) for t in dispatched] == [("APPROVED", "UTILITY")]
