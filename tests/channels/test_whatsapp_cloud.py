"""WhatsApp Cloud API wire format and Graph error codes, checked against a MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from parley.channels.base import (
    AccountChannelError,
    OutboundMessage,
    PermanentChannelError,
    TemplateRef,
    TransientChannelError,
)
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.settings import Settings

pytestmark = pytest.mark.anyio

# The values the ``whatsapp_channel`` fixture (conftest.py) configures and answers with.
PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = "EAAGtest-token"
WAMID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"

Channel = tuple[WhatsappCloud, Any]


def whatsapp(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "idempotency_key": "d-1",
        "to": "+15551234567",
        "text": "Your order shipped: https://shop.test/track/1001",
    }
    return OutboundMessage(**(fields | overrides))


def sent_json(request: httpx2.Request) -> Any:
    return json.loads(request.content)


def graph_error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_subcode": 2494010,
            "fbtrace_id": "AbCdEfGhIjK",
            **extra,
        }
    }


async def test_text_is_posted_to_messages_with_bearer_token(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel

    await adapter.send(whatsapp())

    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == f"https://graph.test/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert sent_json(request) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15551234567",
        "biz_opaque_callback_data": "d-1",
        "type": "text",
        "text": {"body": "Your order shipped: https://shop.test/track/1001", "preview_url": True},
    }


async def test_recipient_without_plus_is_sent_unchanged(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel

    await adapter.send(whatsapp(to="447911123456"))

    assert sent_json(api.requests[0])["to"] == "447911123456"


async def test_template_carries_body_parameters(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel
    template = TemplateRef(name="order_shipped", language="en_US", body_parameters=("Ada", "#1001"))

    await adapter.send(whatsapp(template=template))

    assert sent_json(api.requests[0]) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15551234567",
        "biz_opaque_callback_data": "d-1",
        "type": "template",
        "template": {
            "name": "order_shipped",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ada"},
                        {"type": "text", "text": "#1001"},
                    ],
                }
            ],
        },
    }


async def test_template_without_parameters_omits_components(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel

    await adapter.send(whatsapp(template=TemplateRef(name="hello_world", language="en_US")))

    assert sent_json(api.requests[0])["template"] == {
        "name": "hello_world",
        "language": {"code": "en_US"},
    }


async def test_accepted_message_gives_wamid_and_raw(whatsapp_channel: Channel) -> None:
    adapter, _ = whatsapp_channel

    result = await adapter.send(whatsapp())

    assert result.provider_message_id == WAMID
    assert result.status == "sent"
    assert result.raw["contacts"] == [{"input": "15551234567", "wa_id": "15551234567"}]


async def test_outside_window_131047_is_permanent(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel
    api.answer(
        400,
        graph_error(
            131047,
            "(#131047) Re-engagement message",
            error_data={
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed "
                "since the customer last replied to this number.",
            },
        ),
    )

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(whatsapp())

    assert not isinstance(caught.value, TransientChannelError)
    assert caught.value.provider_code == "131047"
    assert caught.value.reason == (
        "WhatsApp rejected the message (HTTP 400, error 131047): (#131047) Re-engagement "
        "message - Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    )


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        pytest.param(400, 131026, PermanentChannelError, id="undeliverable_case"),
        pytest.param(400, 100, PermanentChannelError, id="invalid_parameter_case"),
        pytest.param(401, 190, AccountChannelError, id="expired_token_case"),
        pytest.param(403, 10, AccountChannelError, id="permission_revoked_case"),
        pytest.param(400, 131031, AccountChannelError, id="account_locked_case"),
        pytest.param(400, 131042, AccountChannelError, id="payment_problem_case"),
    ],
)
async def test_refusals_are_permanent(
    whatsapp_channel: Channel, status: int, code: int, error_class: type[Exception]
) -> None:
    adapter, api = whatsapp_channel
    api.answer(status, graph_error(code, f"(#{code}) refused"))

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(whatsapp())

    assert type(caught.value) is error_class
    assert caught.value.provider_code == str(code)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(400, 130429, id="throughput_limit_as_400_case"),
        pytest.param(429, 130429, id="throughput_limit_as_429_case"),
        pytest.param(400, 131048, id="spam_rate_limit_case"),
        pytest.param(400, 131056, id="pair_rate_limit_case"),
        pytest.param(400, 131016, id="service_unavailable_case"),
        pytest.param(400, 4, id="app_rate_limit_case"),
        pytest.param(400, 80007, id="account_rate_limit_case"),
    ],
)
async def test_rate_limits_are_transient(whatsapp_channel: Channel, status: int, code: int) -> None:
    adapter, api = whatsapp_channel
    api.answer(status, graph_error(code, f"(#{code}) slow down"), headers={"Retry-After": "30"})

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(whatsapp())

    assert caught.value.provider_code == str(code)
    assert caught.value.retry_after == 30.0
    assert caught.value.reason == (
        f"WhatsApp rejected the message (HTTP {status}, error {code}): (#{code}) slow down"
    )


async def test_html_gateway_error_is_transient_without_code(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel
    api.answer_text(502, "<html>Bad Gateway</html>")

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(whatsapp())

    assert caught.value.provider_code is None
    assert caught.value.reason == "WhatsApp could not take the message (HTTP 502)"


async def test_success_without_message_id_is_not_retried(whatsapp_channel: Channel) -> None:
    adapter, api = whatsapp_channel
    api.answer(200, {"messaging_product": "whatsapp", "messages": []})

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(whatsapp())

    assert caught.value.reason == "WhatsApp answered 200 without a message id"


async def test_from_settings_uses_whatsapp_settings() -> None:
    requests: list[httpx2.Request] = []

    def accepted(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(200, json={"messages": [{"id": WAMID}]})

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        whatsapp_base_url="http://127.0.0.1:8002",
        whatsapp_api_version="v20.0",
        whatsapp_phone_number_id="999",
        whatsapp_access_token="settings-token",
    )
    adapter = WhatsappCloud.from_settings(settings, transport=httpx2.MockTransport(accepted))
    try:
        result = await adapter.send(whatsapp())
    finally:
        await adapter.aclose()

    (request,) = requests
    assert str(request.url) == "http://127.0.0.1:8002/v20.0/999/messages"
    assert request.headers["Authorization"] == "Bearer settings-token"
    assert result.provider_message_id == WAMID
