"""The WhatsApp Cloud API stand-in: bearer auth, the phone number id, message validation,
text and template captures, Graph-shaped errors and faults."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import pytest

from parley.clock import FrozenClock
from parley.sandbox.store import CapturedMessage, SandboxStore

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
