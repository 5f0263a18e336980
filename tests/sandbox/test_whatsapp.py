"""The WhatsApp Cloud API stand-in: bearer auth, the phone number id, message validation,
text and template captures, Graph-shaped errors and faults."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tests.sandbox.conftest import FakeParley

from parley.clock import FrozenClock
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.composer import parcel_photo
from parley.sandbox.store import CapturedMessage, SandboxStore, StoredMedia
from parley.settings import Settings

pytestmark = pytest.mark.anyio

# The credentials the conftest's settings carry.
WHATSAPP_TOKEN = "EAAG-sandbox-test-token"
PHONE_NUMBER_ID = "106540352242922"
URL = f"/whatsapp/v21.0/{PHONE_NUMBER_ID}/messages"
AUTH = {"Authorization": f"Bearer {WHATSAPP_TOKEN}"}
WAMID = re.compile(r"wamid\.[A-Za-z0-9_-]{40,}")

TEXT = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "447911123456",
    "type": "text",
    "text": {"body": "Hi Ada, your order #1001 is on its way", "preview_url": True},
}
TEMPLATE = {
    "messaging_product": "whatsapp",
    "to": "447911123456",
    "type": "template",
    "template": {
        "name": "order_dispatched",
        "language": {"code": "en"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ada"},
                    {"type": "text", "text": "#1001"},
                    {"type": "text", "text": "UPS"},
                    {"type": "text", "text": "https://track.example/1Z999"},
                ],
            }
        ],
    },
}


async def _send(
    client: httpx2.AsyncClient, payload: Any = None, *, url: str = URL, **kwargs: Any
) -> httpx2.Response:
    kwargs.setdefault("headers", AUTH)
    return await client.post(url, json=TEXT if payload is None else payload, **kwargs)


def _assert_graph_error(response: httpx2.Response, *, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["fbtrace_id"], str)
    assert error["fbtrace_id"]
    return dict(error)


async def test_text_message_is_captured(
    client: httpx2.AsyncClient, store: SandboxStore, clock: FrozenClock
) -> None:
    response = await _send(client)

    assert response.status_code == 200
    answer = response.json()
    wamid = answer["messages"][0]["id"]
    assert WAMID.fullmatch(wamid)
    assert answer == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "447911123456", "wa_id": "447911123456"}],
        "messages": [{"id": wamid}],
    }
    [captured] = store.list()
    assert captured == CapturedMessage(
        id=captured.id,
        channel="whatsapp",
        to="447911123456",
        sender=PHONE_NUMBER_ID,
        body="Hi Ada, your order #1001 is on its way",
        provider_message_id=wamid,
        captured_at=clock.now,
    )
    assert store.received_count("whatsapp") == 1


async def test_template_message_is_captured_with_a_readable_body(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await _send(client, TEMPLATE)

    assert response.status_code == 200
    assert response.json()["messages"][0]["message_status"] == "accepted"
    [captured] = store.list()
    assert captured.body == (
        "[template order_dispatched (en)] Ada · #1001 · UPS · https://track.example/1Z999"
    )
    assert captured.template == {
        "name": "order_dispatched",
        "language": "en",
        "parameters": ["Ada", "#1001", "UPS", "https://track.example/1Z999"],
    }
    assert captured.provider_message_id == response.json()["messages"][0]["id"]


async def test_template_without_parameters(client: httpx2.AsyncClient, store: SandboxStore) -> None:
    approved = {"name": "welcome", "language": "en_GB", "category": "UTILITY"}
    assert (await client.post("/api/whatsapp-templates", json=approved)).status_code == 200
    payload = {
        "messaging_product": "whatsapp",
        "to": "15551234567",
        "type": "template",
        "template": {"name": "welcome", "language": {"code": "en_GB"}},
    }

    response = await _send(client, payload)

    assert response.status_code == 200
    assert store.list()[0].body == "[template welcome (en_GB)]"
    assert store.list()[0].template == {"name": "welcome", "language": "en_GB", "parameters": []}


async def test_type_defaults_to_text_and_4096_chars_fit(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    payload = {"messaging_product": "whatsapp", "to": "15551234567", "text": {"body": "x" * 4096}}

    response = await _send(client, payload)

    assert response.status_code == 200
    assert len(store.list()[0].body) == 4096


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong_token_case"),
        pytest.param({}, id="no_header_case"),
        pytest.param({"Authorization": WHATSAPP_TOKEN}, id="no_scheme_case"),
        pytest.param({"Authorization": f"Basic {WHATSAPP_TOKEN}"}, id="basic_scheme_case"),
    ],
)
async def test_wrong_token_is_refused_and_nothing_captured(
    client: httpx2.AsyncClient, store: SandboxStore, headers: dict[str, str]
) -> None:
    response = await _send(client, headers=headers)

    error = _assert_graph_error(response, status=401, code=190)
    assert error["message"] == "Invalid OAuth access token."
    assert error["type"] == "OAuthException"
    assert store.list() == []


async def test_other_phone_number_id_is_refused(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await _send(client, url="/whatsapp/v21.0/999999999999999/messages")

    error = _assert_graph_error(response, status=400, code=100)
    assert error["type"] == "GraphMethodException"
    assert "999999999999999" in error["message"]
    assert store.list() == []


async def test_malformed_version_is_refused(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await _send(client, url=f"/whatsapp/latest/{PHONE_NUMBER_ID}/messages")

    _assert_graph_error(response, status=400, code=100)
    assert store.list() == []


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in payload.items() if name != key}


def _template_with(**template: Any) -> dict[str, Any]:
    return {**TEMPLATE, "template": {**TEMPLATE["template"], **template}}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param(["not", "an", "object"], "JSON object", id="array_body_case"),
        pytest.param(
            _without(TEXT, "messaging_product"), "messaging_product", id="no_product_case"
        ),
        pytest.param({**TEXT, "messaging_product": "sms"}, "messaging_product", id="product_case"),
        pytest.param(_without(TEXT, "to"), "parameter to is required", id="no_to_case"),
        pytest.param({**TEXT, "to": "+447911123456"}, "digits only", id="plus_in_to_case"),
        pytest.param({**TEXT, "to": "44 7700 900123"}, "digits only", id="spaces_in_to_case"),
        pytest.param({**TEXT, "to": 447911123456}, "must be a string", id="numeric_to_case"),
        pytest.param({**TEXT, "recipient_type": "group"}, "recipient_type", id="group_case"),
        pytest.param({**TEXT, "type": "image"}, "'image'", id="unsupported_type_case"),
        pytest.param(_without(TEXT, "text"), "parameter text is required", id="no_text_case"),
        pytest.param({**TEXT, "text": {"body": ""}}, "text['body'] is required", id="empty_case"),
        pytest.param({**TEXT, "text": {"body": "x" * 4097}}, "4096", id="text_too_long_case"),
        pytest.param(
            {**TEXT, "text": {"body": "hi", "preview_url": "yes"}}, "preview_url", id="preview_case"
        ),
        pytest.param(_without(TEMPLATE, "template"), "template is required", id="no_template_case"),
        pytest.param(_template_with(name=""), "template['name']", id="template_no_name_case"),
        pytest.param(_template_with(language="en"), "language", id="language_not_object_case"),
        pytest.param(_template_with(language={}), "['code']", id="language_no_code_case"),
        pytest.param(_template_with(components={}), "components", id="components_not_list_case"),
        pytest.param(
            _template_with(components=[{"type": "footer"}]),
            "header, body",
            id="component_type_case",
        ),
        pytest.param(
            _template_with(
                components=[{"type": "body", "parameters": [{"type": "currency", "text": "x"}]}]
            ),
            "must be 'text'",
            id="parameter_type_case",
        ),
        pytest.param(
            _template_with(components=[{"type": "body", "parameters": [{"type": "text"}]}]),
            "['text'] is required",
            id="parameter_without_text_case",
        ),
    ],
)
async def test_malformed_message_is_refused_and_nothing_captured(
    client: httpx2.AsyncClient, store: SandboxStore, payload: Any, fragment: str
) -> None:
    response = await _send(client, payload)

    error = _assert_graph_error(response, status=400, code=100)
    assert error["message"].startswith("(#100) ")
    assert fragment in error["message"]
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert store.list() == []
    assert store.received_count("whatsapp") == 0


async def test_body_that_is_not_json_is_refused(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await client.post(
        URL, content=b"messaging_product=whatsapp", headers={**AUTH, "Content-Type": "text/plain"}
    )

    error = _assert_graph_error(response, status=400, code=100)
    assert "valid JSON" in error["message"]
    assert store.list() == []


async def test_injected_503_fails_once_then_succeeds(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("whatsapp", 503)

    failed = await _send(client)
    succeeded = await _send(client)

    error = _assert_graph_error(failed, status=503, code=131016)
    assert error["message"] == "(#131016) Service unavailable"
    assert succeeded.status_code == 200
    assert [message.provider_message_id for message in store.list()] == [
        succeeded.json()["messages"][0]["id"]
    ]


async def test_injected_429_is_graph_rate_limit(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("whatsapp", 429)

    response = await _send(client)

    _assert_graph_error(response, status=429, code=130429)
    assert store.list() == []


async def test_customer_markup_is_captured_verbatim(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    body = "<img src=x onerror=alert(1)>"

    await _send(client, {**TEXT, "text": {"body": body}})

    assert store.list()[0].body == body


# --- a customer's photo: Graph's media node and the file it names ---------------------------

OTHER_NUMBER_ID = "100000000000777"
OTHER_TOKEN = "EAAG-other-store-token"


async def _customer_sends_a_photo(
    client: httpx2.AsyncClient, fake_parley: FakeParley
) -> tuple[str, str]:
    """The customer's photo through the composer: its media id and the PNG's sha256."""
    composed = await client.post(
        "/api/inbound",
        json={"channel": "whatsapp", "from": "+447911123456", "text": "Look", "photo": True},
    )
    assert composed.status_code == 200
    [message] = json.loads(fake_parley.requests[-1].content)["entry"][0]["changes"][0]["value"][
        "messages"
    ]
    return message["image"]["id"], message["image"]["sha256"]


@pytest.fixture
def other_number(app: Starlette) -> None:
    """Another store's WhatsApp number, with a token of its own."""
    app.state.sandbox_accounts.add_whatsapp(OTHER_NUMBER_ID, OTHER_TOKEN)


async def test_the_media_node_names_the_file_and_the_file_is_the_photo(
    client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    media_id, sha256 = await _customer_sends_a_photo(client, fake_parley)

    node = await client.get(
        f"/whatsapp/v21.0/{media_id}", params={"phone_number_id": PHONE_NUMBER_ID}, headers=AUTH
    )
    file = await client.get(node.json()["url"], headers=AUTH)

    assert node.status_code == 200
    assert node.json() == {
        "messaging_product": "whatsapp",
        "url": f"http://sandbox.test/whatsapp/media/{media_id}",
        "mime_type": "image/png",
        "sha256": sha256,
        "file_size": len(parcel_photo()),
        "id": media_id,
    }
    assert file.status_code == 200
    assert file.headers["content-type"] == "image/png"
    assert file.content == parcel_photo()
    assert hashlib.sha256(file.content).hexdigest() == sha256


async def test_the_media_node_needs_no_phone_number_id(
    client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    media_id, _sha256 = await _customer_sends_a_photo(client, fake_parley)

    node = await client.get(f"/whatsapp/v21.0/{media_id}", headers=AUTH)

    assert node.status_code == 200
    assert node.json()["id"] == media_id


async def test_the_media_urls_follow_the_mount_point(
    store: SandboxStore, settings: Settings, fake_parley: FakeParley
) -> None:
    sandbox = create_sandbox_app(
        store, settings, status_webhooks=False, webhook_transport=fake_parley.transport
    )
    parley = Starlette(routes=[Mount("/sandbox", app=sandbox)])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=parley), base_url="https://parley.example:8443/sandbox"
    ) as client:
        media_id, _sha256 = await _customer_sends_a_photo(client, fake_parley)
        node = await client.get(f"whatsapp/v21.0/{media_id}", headers=AUTH)
        file = await client.get(node.json()["url"], headers=AUTH)

    assert node.json()["url"] == f"https://parley.example:8443/sandbox/whatsapp/media/{media_id}"
    assert file.content == parcel_photo()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong_token_case"),
        pytest.param({}, id="no_header_case"),
    ],
)
async def test_the_media_node_refuses_a_token_no_number_holds(
    client: httpx2.AsyncClient, fake_parley: FakeParley, headers: dict[str, str]
) -> None:
    media_id, _sha256 = await _customer_sends_a_photo(client, fake_parley)

    response = await client.get(f"/whatsapp/v21.0/{media_id}", headers=headers)

    error = _assert_graph_error(response, status=401, code=190)
    assert error["message"] == "Invalid OAuth access token."
    assert "url" not in response.text


async def test_the_media_node_refuses_another_numbers_token(
    client: httpx2.AsyncClient, fake_parley: FakeParley, other_number: None
) -> None:
    media_id, _sha256 = await _customer_sends_a_photo(client, fake_parley)

    response = await client.get(
        f"/whatsapp/v21.0/{media_id}", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
    )

    error = _assert_graph_error(response, status=400, code=100)
    assert error["error_subcode"] == 33
    assert error["type"] == "GraphMethodException"
    assert f"Object with ID '{media_id}' does not exist" in error["message"]


async def test_the_media_node_refuses_a_phone_number_id_it_was_not_sent_to(
    client: httpx2.AsyncClient, fake_parley: FakeParley, other_number: None
) -> None:
    media_id, _sha256 = await _customer_sends_a_photo(client, fake_parley)

    with_own_token = await client.get(
        f"/whatsapp/v21.0/{media_id}", params={"phone_number_id": OTHER_NUMBER_ID}, headers=AUTH
    )
    with_others_token = await client.get(
        f"/whatsapp/v21.0/{media_id}",
        params={"phone_number_id": OTHER_NUMBER_ID},
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
    )

    for response in (with_own_token, with_others_token):
        error = _assert_graph_error(response, status=400, code=100)
        assert error["error_subcode"] == 33
        assert media_id in error["message"]


async def test_an_unknown_media_id_is_an_unreachable_phone_number_as_before(
    client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    await _customer_sends_a_photo(client, fake_parley)

    response = await client.get("/whatsapp/v21.0/1234567890123456", headers=AUTH)
    own_number = await client.get(f"/whatsapp/v21.0/{PHONE_NUMBER_ID}", headers=AUTH)

    error = _assert_graph_error(response, status=400, code=100)
    assert error["error_subcode"] == 33
    assert "'1234567890123456'" in error["message"]
    assert own_number.status_code == 200
    assert own_number.json()["id"] == PHONE_NUMBER_ID


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no_header_case"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong_token_case"),
        pytest.param({"Authorization": f"Bearer {OTHER_TOKEN}"}, id="other_numbers_token_case"),
        pytest.param({"Authorization": f"Basic {WHATSAPP_TOKEN}"}, id="basic_scheme_case"),
    ],
)
async def test_the_file_is_served_only_to_the_numbers_token(
    client: httpx2.AsyncClient,
    fake_parley: FakeParley,
    other_number: None,
    headers: dict[str, str],
) -> None:
    media_id, _sha256 = await _customer_sends_a_photo(client, fake_parley)

    response = await client.get(f"/whatsapp/media/{media_id}", headers=headers)

    assert response.status_code == 401
    assert response.content != parcel_photo()
    assert b"PNG" not in response.content


async def test_a_file_the_sandbox_does_not_hold_is_not_found(client: httpx2.AsyncClient) -> None:
    response = await client.get("/whatsapp/media/1234567890123456", headers=AUTH)

    assert response.status_code == 404


def test_the_store_keeps_only_the_newest_media() -> None:
    store = SandboxStore(max_media=2)
    for media_id in ("1001", "1002", "1003"):
        store.add_media(
            StoredMedia(
                media_id=media_id,
                phone_number_id=PHONE_NUMBER_ID,
                content=b"x",
                mime_type="image/png",
            )
        )

    assert store.find_media("1001") is None
    assert [store.find_media(media_id) is not None for media_id in ("1002", "1003")] == [
        True,
        True,
    ]
    assert store.media_count() == 2
