"""Twilio's wire format and error codes, checked against a MockTransport fake."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from parley.channels.base import (
    AccountChannelError,
    OutboundMessage,
    PermanentChannelError,
    TransientChannelError,
)
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.settings import Settings

pytestmark = pytest.mark.anyio

# The values the ``twilio_channel`` fixture (conftest.py) configures and answers with.
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-secret-token"
TWILIO_FROM = "+15005550006"
TWILIO_MESSAGE_SID = "SM0123456789abcdef0123456789abcdef"

Channel = tuple[TwilioSms, Any]


def sent_form(request: httpx2.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)


def sms(**overrides: str) -> OutboundMessage:
    fields = {"idempotency_key": "d-1", "to": "+15551234567", "text": "Your order shipped"}
    return OutboundMessage(**(fields | overrides))


async def test_send_posts_form_to_messages_resource(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel

    await adapter.send(sms(status_callback_url="https://shop.test/webhooks/twilio/status"))

    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == (
        f"https://twilio.test/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    )
    credentials = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {credentials}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent_form(request) == {
        "To": ["+15551234567"],
        "From": [TWILIO_FROM],
        "Body": ["Your order shipped"],
        "StatusCallback": ["https://shop.test/webhooks/twilio/status?ref=d-1"],
    }


async def test_the_status_callback_keeps_its_own_query_beside_the_reference(
    twilio_channel: Channel,
) -> None:
    """Receipts come back to the URL as given: the message's reference rides in its query."""
    adapter, api = twilio_channel

    await adapter.send(sms(status_callback_url="https://shop.test/webhooks/twilio/demo?x=1"))

    (request,) = api.requests
    assert sent_form(request)["StatusCallback"] == [
        "https://shop.test/webhooks/twilio/demo?x=1&ref=d-1"
    ]


async def test_send_without_callback_omits_status_callback(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel

    await adapter.send(sms())

    assert sent_form(api.requests[0]) == {
        "To": ["+15551234567"],
        "From": [TWILIO_FROM],
        "Body": ["Your order shipped"],
    }


async def test_created_message_gives_sid_status_and_raw(twilio_channel: Channel) -> None:
    adapter, _ = twilio_channel

    result = await adapter.send(sms())

    assert result.provider_message_id == TWILIO_MESSAGE_SID
    assert result.status == "queued"
    assert result.raw["sid"] == TWILIO_MESSAGE_SID
    assert result.raw["direction"] == "outbound-api"


async def test_accepted_status_is_passed_through(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer(201, {"sid": TWILIO_MESSAGE_SID, "status": "accepted"})

    result = await adapter.send(sms())

    assert result.status == "accepted"


async def test_unsubscribed_recipient_is_permanent_21610(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer(
        400,
        {
            "code": 21610,
            "message": "Attempt to send to unsubscribed recipient",
            "more_info": "https://www.twilio.com/docs/errors/21610",
            "status": 400,
        },
    )

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(sms())

    assert caught.value.provider_code == "21610"
    assert caught.value.reason == (
        "Twilio rejected the SMS (HTTP 400, error 21610): the recipient has opted out of "
        "messages from this number (replied STOP) - Attempt to send to unsubscribed recipient"
    )


async def test_21610_stays_permanent_whatever_the_http_status(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer(503, {"code": 21610, "message": "unsubscribed", "status": 503})

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(sms())

    assert not isinstance(caught.value, TransientChannelError)
    assert caught.value.provider_code == "21610"


async def test_invalid_number_is_permanent_21211(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(sms(to="+1555"))

    assert type(caught.value) is PermanentChannelError  # the number, not the account
    assert caught.value.provider_code == "21211"
    assert "Invalid 'To' Phone Number" in caught.value.reason


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(401, 20003, id="bad_credentials_case"),
        pytest.param(401, 20005, id="account_not_active_case"),
        pytest.param(400, 21606, id="from_number_cannot_send_case"),
        pytest.param(400, 21659, id="from_number_not_on_account_case"),
    ],
)
async def test_a_refused_account_is_an_account_refusal(
    twilio_channel: Channel, status: int, code: int
) -> None:
    adapter, api = twilio_channel
    api.answer(status, {"code": code, "message": "Refused", "status": status})

    with pytest.raises(AccountChannelError) as caught:
        await adapter.send(sms())

    assert caught.value.provider_code == str(code)


async def test_bad_credentials_are_explained(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer(401, {"code": 20003, "message": "Authenticate", "status": 401})

    with pytest.raises(AccountChannelError) as caught:
        await adapter.send(sms())

    assert caught.value.reason == (
        "Twilio rejected the SMS (HTTP 401, error 20003): Twilio rejected the account"
        " credentials - Authenticate"
    )


async def test_html_gateway_error_is_transient_without_code(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer_text(502, "<html>Bad Gateway</html>")

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(sms())

    assert caught.value.provider_code is None
    assert caught.value.reason == "Twilio could not take the SMS (HTTP 502)"


async def test_success_without_sid_is_not_retried(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    api.answer(201, {"status": "queued"})

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(sms())

    assert caught.value.reason == "Twilio answered 201 without a message sid"


async def test_one_client_serves_every_send(twilio_channel: Channel) -> None:
    adapter, api = twilio_channel
    client = adapter._client

    for _ in range(3):
        await adapter.send(sms())

    assert adapter._client is client
    assert len(api.requests) == 3


async def test_from_settings_uses_twilio_settings() -> None:
    requests: list[httpx2.Request] = []

    def created(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(201, json={"sid": TWILIO_MESSAGE_SID, "status": "queued"})

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        twilio_base_url="http://127.0.0.1:8001/",
        twilio_account_sid="ACsettings",
        twilio_auth_token="settings-token",
        twilio_from_number="+15550001111",
    )
    adapter = TwilioSms.from_settings(settings, transport=httpx2.MockTransport(created))
    try:
        await adapter.send(sms())
    finally:
        await adapter.aclose()

    (request,) = requests
    assert str(request.url) == "http://127.0.0.1:8001/2010-04-01/Accounts/ACsettings/Messages.json"
    credentials = base64.b64encode(b"ACsettings:settings-token").decode()
    assert request.headers["Authorization"] == f"Basic {credentials}"
    assert sent_form(request)["From"] == ["+15550001111"]
