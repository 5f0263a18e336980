"""Instagram Send API wire format (DMs, private replies, the HUMAN_AGENT tag) and Graph
error classification, checked against a MockTransport. The shared contract cases run in
test_contract.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from tests.channels.conftest import (
    INSTAGRAM_ACCOUNT_ID,
    INSTAGRAM_CUSTOMER,
    INSTAGRAM_MESSAGE_ID,
    INSTAGRAM_TOKEN,
    FakeHttpApi,
    graph_error,
)

from parley.channels.base import (
    AccountChannelError,
    Capabilities,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    TransientChannelError,
)
from parley.channels.instagram.adapter import Instagram
from parley.settings import Settings

pytestmark = pytest.mark.anyio

Channel = tuple[Instagram, FakeHttpApi]


def instagram(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "idempotency_key": "d-1",
        "to": INSTAGRAM_CUSTOMER,
        "text": "Yes, the sweater ships to Spain.",
    }
    return OutboundMessage(**(fields | overrides))


def sent_json(request: httpx2.Request) -> Any:
    return json.loads(request.content)


def test_kind_provider_and_capabilities() -> None:
    assert Instagram.kind is ChannelKind.INSTAGRAM
    assert Instagram.provider == "instagram"
    assert Instagram.capabilities == Capabilities(
        max_text_len=1000, session_window=timedelta(hours=24)
    )


async def test_dm_is_posted_to_messages_with_bearer_token(instagram_channel: Channel) -> None:
    adapter, api = instagram_channel

    result = await adapter.send(instagram())

    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == f"https://graph.instagram.test/v21.0/{INSTAGRAM_ACCOUNT_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {INSTAGRAM_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert sent_json(request) == {
        "recipient": {"id": INSTAGRAM_CUSTOMER},
        "message": {"text": "Yes, the sweater ships to Spain."},
    }
    assert result.provider_message_id == INSTAGRAM_MESSAGE_ID
    assert result.status == "sent"
    assert result.raw == {"recipient_id": INSTAGRAM_CUSTOMER, "message_id": INSTAGRAM_MESSAGE_ID}


async def test_human_agent_reply_carries_the_tag(instagram_channel: Channel) -> None:
    adapter, api = instagram_channel

    await adapter.send(instagram(is_human_agent=True))

    assert sent_json(api.requests[0]) == {
        "recipient": {"id": INSTAGRAM_CUSTOMER},
        "message": {"text": "Yes, the sweater ships to Spain."},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
    }


async def test_comment_address_sends_a_private_reply(instagram_channel: Channel) -> None:
    adapter, api = instagram_channel

    await adapter.send(instagram(to="comment:17865799348089039", in_reply_to="17865799348089039"))

    assert sent_json(api.requests[0]) == {
        "recipient": {"comment_id": "17865799348089039"},
        "message": {"text": "Yes, the sweater ships to Spain."},
    }


async def test_private_reply_never_carries_a_tag(instagram_channel: Channel) -> None:
    adapter, api = instagram_channel

    await adapter.send(instagram(to="comment:17865799348089039", is_human_agent=True))

    assert "tag" not in sent_json(api.requests[0])
    assert "messaging_type" not in sent_json(api.requests[0])


@pytest.mark.parametrize("to", ["", "   ", "comment:", "comment:  "])
async def test_missing_recipient_is_permanent_and_sends_nothing(
    instagram_channel: Channel, to: str
) -> None:
    adapter, api = instagram_channel

    with pytest.raises(PermanentChannelError, match="needs a recipient id or comment id"):
        await adapter.send(instagram(to=to))

    assert api.requests == []


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        pytest.param(400, "4", TransientChannelError, id="app_rate_limit_as_400_case"),
        pytest.param(400, "613", TransientChannelError, id="rate_limit_as_400_case"),
        pytest.param(403, "17", TransientChannelError, id="user_rate_limit_case"),
        pytest.param(400, "551", PermanentChannelError, id="person_unavailable_case"),
        pytest.param(400, "10", PermanentChannelError, id="outside_window_case"),
        pytest.param(401, "190", AccountChannelError, id="bad_token_case"),
    ],
)
async def test_graph_codes_are_classified(
    instagram_channel: Channel, status: int, code: str, error_class: type[Exception]
) -> None:
    adapter, api = instagram_channel
    api.answer(status, graph_error(status, code, f"(#{code}) Graph says no"))

    with pytest.raises(error_class) as caught:
        await adapter.send(instagram())

    assert type(caught.value) is error_class
    assert isinstance(caught.value, PermanentChannelError | TransientChannelError)
    assert caught.value.provider_code == code
    verb = "rejected the message"
    assert caught.value.reason == (
        f"Instagram {verb} (HTTP {status}, error {code}): (#{code}) Graph says no"
    )
    assert api.delivered_count == 0


async def test_success_without_message_id_is_permanent(instagram_channel: Channel) -> None:
    adapter, api = instagram_channel
    api.answer(200, {"recipient_id": INSTAGRAM_CUSTOMER})

    with pytest.raises(PermanentChannelError, match="answered 200 without a message id"):
        await adapter.send(instagram())


async def test_html_error_page_is_classified_by_status(instagram_channel: Channel) -> None:
    adapter, api = instagram_channel
    api.answer_text(502, "<html>Bad Gateway</html>")

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(instagram())

    assert caught.value.provider_code is None
    assert caught.value.reason == "Instagram could not take the message (HTTP 502)"


async def test_from_settings_reads_instagram_settings() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        instagram_base_url="http://127.0.0.1:9/sandbox/instagram/",
        instagram_account_id="17841499999999999",
        instagram_api_version="v22.0",
    )
    adapter = Instagram.from_settings(settings)
    try:
        assert adapter.messages_url == (
            "http://127.0.0.1:9/sandbox/instagram/v22.0/17841499999999999/messages"
        )
    finally:
        await adapter.aclose()
