"""The one contract every channel adapter meets, run against each adapter's fake provider.

Given a provider that answers in a certain way, when the adapter sends, then the result or
the failure class (transient: retry later; permanent: fail now) is exactly as delivery
expects. Provider-specific wire formats live in the per-adapter test modules.
"""

from __future__ import annotations

from typing import Any

import pytest

from parley.channels.base import (
    ChannelAdapter,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
)
from parley.channels.email_smtp.adapter import EmailSmtp
from parley.channels.instagram.adapter import Instagram
from parley.channels.registry import ADAPTERS, build_adapters, close_adapters
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.channels.webchat.adapter import WebChat
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.settings import Settings

pytestmark = pytest.mark.anyio

IDEMPOTENCY_KEY = "delivery-42"


@pytest.fixture(params=["email_channel", "twilio_channel", "whatsapp_channel", "instagram_channel"])
def channel(request: pytest.FixtureRequest) -> tuple[ChannelAdapter, Any]:
    """(adapter, fake provider) for each adapter in turn."""
    return request.getfixturevalue(request.param)


def shipped(recipient: str) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=IDEMPOTENCY_KEY,
        to=recipient,
        text="Your order #1001 has shipped.",
        subject="Your order has shipped",
    )


async def test_accepted_send_returns_provider_message_id(channel: tuple[Any, Any]) -> None:
    adapter, fake = channel
    fake.accept()

    result = await adapter.send(shipped(fake.recipient))

    assert isinstance(result, SendResult)
    assert result.provider_message_id == fake.expected_provider_message_id(IDEMPOTENCY_KEY)
    assert fake.delivered_count == 1


async def test_rate_limit_is_transient_with_retry_after(channel: tuple[Any, Any]) -> None:
    adapter, fake = channel
    code = fake.answer_status(429, retry_after=7)

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(shipped(fake.recipient))

    assert caught.value.provider_code == code
    assert caught.value.retry_after == (7.0 if fake.carries_retry_after else None)
    assert fake.delivered_count == 0


@pytest.mark.parametrize("status", [500, 503], ids=["server_error_case", "unavailable_case"])
async def test_provider_outage_is_transient(channel: tuple[Any, Any], status: int) -> None:
    adapter, fake = channel
    code = fake.answer_status(status)

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(shipped(fake.recipient))

    assert caught.value.provider_code == code
    assert caught.value.retry_after is None
    assert fake.delivered_count == 0


async def test_timeout_is_transient(channel: tuple[Any, Any]) -> None:
    adapter, fake = channel
    fake.time_out()

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(shipped(fake.recipient))

    assert caught.value.provider_code is None
    assert "in time" in caught.value.reason
    assert fake.delivered_count == 0


async def test_refused_connection_is_transient(channel: tuple[Any, Any]) -> None:
    adapter, fake = channel
    fake.refuse_connection()

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(shipped(fake.recipient))

    assert caught.value.provider_code is None
    assert caught.value.retry_after is None
    assert "could not reach" in caught.value.reason
    assert fake.delivered_count == 0


async def test_rejected_request_is_permanent(channel: tuple[Any, Any]) -> None:
    adapter, fake = channel
    code = fake.answer_status(400)

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(shipped(fake.recipient))

    assert not isinstance(caught.value, TransientChannelError)
    assert caught.value.provider_code == code
    assert caught.value.reason
    assert fake.delivered_count == 0


async def test_adapter_recovers_after_a_transient_failure(channel: tuple[Any, Any]) -> None:
    adapter, fake = channel
    fake.answer_status(503)
    with pytest.raises(TransientChannelError):
        await adapter.send(shipped(fake.recipient))

    fake.accept()
    result = await adapter.send(shipped(fake.recipient))

    assert result.provider_message_id == fake.expected_provider_message_id(IDEMPOTENCY_KEY)
    assert fake.delivered_count == 1


# --- the registry ------------------------------------------------------------------------


def test_registry_maps_each_kind_to_its_adapter() -> None:
    registered = dict(ADAPTERS)

    assert registered == {
        ChannelKind.EMAIL: EmailSmtp,
        ChannelKind.SMS: TwilioSms,
        ChannelKind.WHATSAPP: WhatsappCloud,
        ChannelKind.INSTAGRAM: Instagram,
        ChannelKind.WEBCHAT: WebChat,
    }
    assert {cls.provider for cls in ADAPTERS.values()} == {
        "smtp",
        "twilio",
        "whatsapp_cloud",
        "instagram",
        "webchat",
    }


async def test_build_adapters_from_settings_and_close_them() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        twilio_base_url="http://127.0.0.1:9",
        twilio_account_sid="ACfromsettings",
        whatsapp_phone_number_id="555",
        whatsapp_api_version="v99.0",
        instagram_account_id="1784",
        instagram_api_version="v98.0",
    )

    adapters = build_adapters(settings)
    try:
        assert {kind: type(adapter) for kind, adapter in adapters.items()} == ADAPTERS
        twilio = adapters[ChannelKind.SMS]
        whatsapp = adapters[ChannelKind.WHATSAPP]
        assert isinstance(twilio, TwilioSms)
        assert isinstance(whatsapp, WhatsappCloud)
        assert twilio.messages_url == (
            "http://127.0.0.1:9/2010-04-01/Accounts/ACfromsettings/Messages.json"
        )
        assert whatsapp.messages_url == "https://graph.facebook.com/v99.0/555/messages"
        instagram = adapters[ChannelKind.INSTAGRAM]
        assert isinstance(instagram, Instagram)
        assert instagram.messages_url == "https://graph.instagram.com/v98.0/1784/messages"
    finally:
        await close_adapters(adapters)
