"""The customer composer (``POST /api/inbound``): for each channel it posts the provider's
real webhook to parley's route, signed so that parley's own verifiers accept it, and the
parsed event is exactly what the customer composed. Refusals post and record nothing."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest
from tests.sandbox.conftest import (
    INSTAGRAM_ACCOUNT_ID,
    MAILGUN_KEY,
    META_APP_SECRET,
    NOW,
    PUBLIC_URL,
    TWILIO_WEBHOOK_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID,
    FakeParley,
)

from parley.channels.base import Attachment, ChannelKind, InboundMessage
from parley.channels.email_inbound import mailgun
from parley.channels.instagram import webhook as instagram
from parley.channels.twilio_sms import webhook as twilio
from parley.channels.whatsapp_cloud import webhook as whatsapp
from parley.clock import FrozenClock
from parley.sandbox.composer import parcel_photo
from parley.sandbox.store import SandboxStore

pytestmark = pytest.mark.anyio

IGSID = "1234567890123456"


async def _compose(client: httpx2.AsyncClient, payload: Any) -> httpx2.Response:
    return await client.post("/api/inbound", json=payload)


def _form(request: httpx2.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


async def test_whatsapp_message_is_a_signed_cloud_api_webhook(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley, clock: FrozenClock
) -> None:
    response = await _compose(
        client,
        {
            "channel": "whatsapp",
            "from": "+447911123456",
            "text": "Where is order #1001?",
            "name": "Ada",
            "reply_to": "wamid.PARLEY1",
        },
    )

    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    [request] = fake_parley.requests
    assert str(request.url) == f"{PUBLIC_URL}/webhooks/whatsapp/demo"
    assert request.headers["content-type"] == "application/json"
    whatsapp.verify_signature(
        request.content, request.headers["x-hub-signature-256"], META_APP_SECRET
    )
    [captured] = store.list()
    assert whatsapp.parse(request.content) == [
        InboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=str(captured.provider_message_id),
            sender="+447911123456",
            text="Where is order #1001?",
            account=WHATSAPP_PHONE_NUMBER_ID,
            sent_at=NOW,
            sender_name="Ada",
            reply_to="wamid.PARLEY1",
        )
    ]
    assert (captured.channel, captured.direction) == ("whatsapp", "inbound")
    assert (captured.sender, captured.to) == ("447911123456", WHATSAPP_PHONE_NUMBER_ID)
    assert captured.body == "Where is order #1001?"
    assert store.received_count("whatsapp") == 0


async def test_sms_is_a_signed_twilio_webhook(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley
) -> None:
    response = await _compose(client, {"channel": "sms", "from": "+12025550143", "text": "STOP"})

    assert response.status_code == 200
    [request] = fake_parley.requests
    url = twilio.public_url(PUBLIC_URL, "/webhooks/twilio/demo", "")
    assert str(request.url) == url
    params = _form(request)
    twilio.verify_signature(
        url, params, request.headers["x-twilio-signature"], TWILIO_WEBHOOK_TOKEN
    )
    [captured] = store.list()
    assert twilio.parse(params) == [
        InboundMessage(
            channel=ChannelKind.SMS,
            provider_message_id=str(captured.provider_message_id),
            sender="+12025550143",
            text="STOP",
            account="+15005550006",
        )
    ]
    assert (captured.sender, captured.to, captured.direction) == (
        "+12025550143",
        "+15005550006",
        "inbound",
    )


async def test_instagram_dm_is_a_signed_messaging_webhook(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley, clock: FrozenClock
) -> None:
    response = await _compose(
        client, {"channel": "instagram", "from": IGSID, "text": "Is this in stock?"}
    )

    assert response.status_code == 200
    [request] = fake_parley.requests
    assert str(request.url) == f"{PUBLIC_URL}/webhooks/instagram/demo"
    instagram.verify_signature(
        request.content, request.headers["x-hub-signature-256"], META_APP_SECRET
    )
    [captured] = store.list()
    assert instagram.parse(request.content) == [
        InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id=str(captured.provider_message_id),
            sender=IGSID,
            text="Is this in stock?",
            account=INSTAGRAM_ACCOUNT_ID,
            sent_at=NOW,
        )
    ]
    assert (captured.channel, captured.sender, captured.to) == (
        "instagram",
        IGSID,
        INSTAGRAM_ACCOUNT_ID,
    )


async def test_email_is_a_signed_mailgun_post_that_threads(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley, clock: FrozenClock
) -> None:
    response = await _compose(
        client,
        {
            "channel": "email",
            "from": "Alan@Example.com",
            "name": "Alan Turing",
            "subject": "Re: Your order has shipped",
            "text": "Can I change the address?",
            "reply_to": "<delivery-42@demo.parley.test>",
        },
    )

    assert response.status_code == 200
    [request] = fake_parley.requests
    assert str(request.url) == f"{PUBLIC_URL}/webhooks/email/demo"
    fields = _form(request)
    mailgun.verify_signature(
        fields["timestamp"], fields["token"], fields["signature"], MAILGUN_KEY, now=NOW
    )
    [captured] = store.list()
    assert mailgun.parse(fields) == InboundMessage(
        channel=ChannelKind.EMAIL,
        provider_message_id=str(captured.provider_message_id),
        sender="alan@example.com",
        text="Can I change the address?",
        account="orders@demo.parley.test",
        sent_at=NOW,
        sender_name="Alan Turing",
        reply_to="<delivery-42@demo.parley.test>",
        references=("<delivery-42@demo.parley.test>",),
        subject="Re: Your order has shipped",
    )
    assert str(captured.provider_message_id).endswith("@example.com>")
    assert captured.subject == "Re: Your order has shipped"
    assert captured.headers["From"] == "Alan Turing <alan@example.com>"
    assert captured.headers["In-Reply-To"] == "<delivery-42@demo.parley.test>"


async def test_inbound_messages_are_listed_with_their_direction(
    client: httpx2.AsyncClient,
) -> None:
    await _compose(client, {"channel": "sms", "from": "+12025550143", "text": "hello"})

    [listed] = (await client.get("/api/messages")).json()["messages"]

    assert listed["direction"] == "inbound"
    assert listed["sender"] == "+12025550143"


async def test_parleys_refusal_is_passed_through(
    client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    fake_parley.answer = lambda _request: httpx2.Response(401, json={"error": "bad signature"})

    response = await _compose(client, {"channel": "sms", "from": "+12025550143", "text": "hi"})

    assert response.status_code == 401
    assert response.json() == {"error": "bad signature"}


async def test_a_non_json_answer_is_shown_as_text(
    client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    fake_parley.answer = lambda _request: httpx2.Response(
        404, html="<h1>Not Found</h1>", headers={"Content-Type": "text/html"}
    )

    response = await _compose(client, {"channel": "sms", "from": "+12025550143", "text": "hi"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text == "<h1>Not Found</h1>"


async def test_unreachable_parley_is_a_502_and_the_message_stays_on_the_phone(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    fake_parley.answer = refuse

    response = await _compose(client, {"channel": "sms", "from": "+12025550143", "text": "hi"})

    assert response.status_code == 502
    assert response.json()["error"].startswith(
        f"could not reach parley's webhook at {PUBLIC_URL}/webhooks/twilio/demo: ConnectError("
    )
    assert [message.body for message in store.list()] == ["hi"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        pytest.param([], "the body must be a JSON object", id="not_an_object_case"),
        pytest.param(
            {"channel": "fax", "from": "+12025550143", "text": "hi"},
            "'channel' must be one of whatsapp, sms, instagram, email",
            id="unknown_channel_case",
        ),
        pytest.param(
            {"channel": "sms", "from": "12025550143", "text": "hi"},
            "'from' must be an E.164 number such as +447911123456",
            id="number_without_plus_case",
        ),
        pytest.param(
            {"channel": "instagram", "from": "ada.codes", "text": "hi"},
            "'from' must be an Instagram-scoped id (digits)",
            id="username_as_igsid_case",
        ),
        pytest.param(
            {"channel": "email", "from": "alan", "text": "hi"},
            "'from' must be an email address",
            id="not_an_address_case",
        ),
        pytest.param({"channel": "sms", "text": "hi"}, "'from' is required", id="no_from_case"),
        pytest.param(
            {"channel": "sms", "from": "+12025550143", "text": "  "},
            "'text' must be a non-empty string of at most 4096",
            id="blank_text_case",
        ),
        pytest.param(
            {"channel": "whatsapp", "from": "+447911123456", "text": "hi", "subject": "x"},
            "'subject' is for email only",
            id="subject_on_whatsapp_case",
        ),
        pytest.param(
            {"channel": "sms", "from": "+12025550143", "text": "hi", "reply_to": "SM1"},
            "an SMS cannot reply to a particular message",
            id="reply_to_on_sms_case",
        ),
        pytest.param(
            {
                "channel": "email",
                "from": "alan@example.com",
                "text": "hi",
                "name": "Alan\r\nBcc: everyone@example.com",
            },
            "'name' must be a single-line string of at most 300",
            id="header_injection_case",
        ),
    ],
)
async def test_invalid_requests_post_and_record_nothing(
    client: httpx2.AsyncClient,
    store: SandboxStore,
    fake_parley: FakeParley,
    payload: Any,
    error: str,
) -> None:
    response = await _compose(client, payload)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert fake_parley.requests == []
    assert store.list() == []


async def test_a_body_that_is_not_json_is_refused(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley
) -> None:
    response = await client.post(
        "/api/inbound", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert fake_parley.requests == []
    assert store.list() == []


async def test_only_json_requests_are_accepted(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley
) -> None:
    # A cross-site form can post text/plain without a preflight; the composer refuses it.
    response = await client.post(
        "/api/inbound",
        content=b'{"channel": "sms", "from": "+12025550143", "text": "hi"}',
        headers={"Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert fake_parley.requests == []
    assert store.list() == []


async def test_whatsapp_photo_is_a_signed_image_webhook_naming_the_sandboxs_file(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley, clock: FrozenClock
) -> None:
    response = await _compose(
        client,
        {
            "channel": "whatsapp",
            "from": "+447911123456",
            "text": "It arrived like this",
            "name": "Ada",
            "photo": True,
        },
    )

    assert response.status_code == 200
    [request] = fake_parley.requests
    assert str(request.url) == f"{PUBLIC_URL}/webhooks/whatsapp/demo"
    whatsapp.verify_signature(
        request.content, request.headers["x-hub-signature-256"], META_APP_SECRET
    )
    [message] = json.loads(request.content)["entry"][0]["changes"][0]["value"]["messages"]
    media_id = message["image"]["id"]
    assert re.fullmatch(r"[1-9]\d{15}", media_id)
    held = store.find_media(media_id)
    assert held is not None
    assert (held.phone_number_id, held.mime_type) == (WHATSAPP_PHONE_NUMBER_ID, "image/png")
    assert held.content == parcel_photo()
    assert message["type"] == "image"
    assert message["image"] == {
        "id": media_id,
        "mime_type": "image/png",
        "sha256": hashlib.sha256(parcel_photo()).hexdigest(),
        "caption": "It arrived like this",
    }
    [captured] = store.list()
    assert whatsapp.parse(request.content) == [
        InboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=str(captured.provider_message_id),
            sender="+447911123456",
            text="It arrived like this",
            account=WHATSAPP_PHONE_NUMBER_ID,
            sent_at=NOW,
            sender_name="Ada",
            kind="image",
            attachments=(
                Attachment(
                    kind="image",
                    provider_media_id=media_id,
                    mime_type="image/png",
                    caption="It arrived like this",
                ),
            ),
        )
    ]
    assert (captured.channel, captured.direction) == ("whatsapp", "inbound")
    assert (captured.sender, captured.to) == ("447911123456", WHATSAPP_PHONE_NUMBER_ID)
    assert captured.body == "📷 It arrived like this"
    assert store.received_count("whatsapp") == 0


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="no_text_case"),
        pytest.param("", id="empty_text_case"),
        pytest.param("   ", id="blank_text_case"),
    ],
)
async def test_whatsapp_photo_without_a_caption(
    client: httpx2.AsyncClient, store: SandboxStore, fake_parley: FakeParley, text: str | None
) -> None:
    payload: dict[str, Any] = {"channel": "whatsapp", "from": "+447911123456", "photo": True}
    if text is not None:
        payload["text"] = text

    response = await _compose(client, payload)

    assert response.status_code == 200
    [request] = fake_parley.requests
    [event] = whatsapp.parse(request.content)
    assert isinstance(event, InboundMessage)
    assert event.text == ""
    [attachment] = event.attachments
    assert (attachment.kind, attachment.mime_type, attachment.caption) == (
        "image",
        "image/png",
        None,
    )
    assert store.find_media(str(attachment.provider_media_id)) is not None
    assert [message.body for message in store.list()] == ["📷 photo"]


def test_the_sample_photo_is_a_96_by_64_rgb_png() -> None:
    photo = parcel_photo()

    assert photo.startswith(b"\x89PNG\r\n\x1a\n")
    assert photo[12:16] == b"IHDR"
    assert struct.unpack(">IIBBBBB", photo[16:29]) == (96, 64, 8, 2, 0, 0, 0)
    assert photo.endswith(b"IEND\xaeB`\x82")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        pytest.param(
            {"channel": "sms", "from": "+12025550143", "text": "hi", "photo": True},
            "'photo' is for whatsapp only",
            id="photo_on_sms_case",
        ),
        pytest.param(
            {"channel": "email", "from": "alan@example.com", "text": "hi", "photo": True},
            "'photo' is for whatsapp only",
            id="photo_on_email_case",
        ),
        pytest.param(
            {"channel": "whatsapp", "from": "+447911123456", "text": "hi", "photo": "yes"},
            "'photo' must be true or false",
            id="photo_not_a_boolean_case",
        ),
        pytest.param(
            {"channel": "whatsapp", "from": "+447911123456", "text": 7, "photo": True},
            "'text' must be a string of at most 4096",
            id="caption_not_a_string_case",
        ),
        pytest.param(
            {"channel": "whatsapp", "from": "+447911123456", "photo": False},
            "'text' must be a non-empty string of at most 4096",
            id="no_photo_and_no_text_case",
        ),
    ],
)
async def test_a_refused_photo_posts_records_and_keeps_nothing(
    client: httpx2.AsyncClient,
    store: SandboxStore,
    fake_parley: FakeParley,
    payload: dict[str, Any],
    error: str,
) -> None:
    response = await _compose(client, payload)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert fake_parley.requests == []
    assert store.list() == []
    assert store.media_count() == 0
