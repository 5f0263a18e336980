"""Delivery statuses the stand-ins report back to parley: WhatsApp posts ``sent`` then
``delivered`` to parley's webhook, Twilio to the message's ``StatusCallback``; both are
signed so parley's verifiers accept them, and a failure to post never breaks a send."""

from __future__ import annotations

import logging
import ssl
from urllib.parse import parse_qsl

import httpx2
import pytest
from starlette.applications import Starlette
from tests.sandbox.conftest import (
    META_APP_SECRET,
    NOW,
    PUBLIC_URL,
    TWILIO_SID,
    TWILIO_TOKEN,
    TWILIO_WEBHOOK_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_TOKEN,
    FakeParley,
)

from parley.channels.base import ChannelKind, StatusUpdate
from parley.channels.http import tls_context
from parley.channels.twilio_sms import webhook as twilio
from parley.channels.whatsapp_cloud import webhook as whatsapp
from parley.clock import FrozenClock
from parley.sandbox.store import SandboxStore
from parley.sandbox.webhooks import SignedWebhook, WebhookPoster

pytestmark = pytest.mark.anyio

WHATSAPP_URL = f"/whatsapp/v21.0/{WHATSAPP_PHONE_NUMBER_ID}/messages"
WHATSAPP_TEXT = {"messaging_product": "whatsapp", "to": "447911123456", "text": {"body": "Hi"}}
TWILIO_URL = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
CALLBACK = f"{PUBLIC_URL}/webhooks/twilio/demo?delivery=42"


async def _send_whatsapp(client: httpx2.AsyncClient) -> httpx2.Response:
    return await client.post(
        WHATSAPP_URL, json=WHATSAPP_TEXT, headers={"Authorization": f"Bearer {WHATSAPP_TOKEN}"}
    )


async def _send_sms(client: httpx2.AsyncClient, **extra: str) -> httpx2.Response:
    form = {"To": "+12025550143", "From": "+15005550006", "Body": "Hi"} | extra
    return await client.post(TWILIO_URL, data=form, auth=(TWILIO_SID, TWILIO_TOKEN))


async def _drain(app: Starlette) -> None:
    poster = app.state.webhook_poster
    assert isinstance(poster, WebhookPoster)
    await poster.wait_idle()


async def test_whatsapp_reports_sent_then_delivered(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    fake_parley: FakeParley,
    clock: FrozenClock,
) -> None:
    response = await _send_whatsapp(reporting_client)
    await _drain(reporting_app)

    wamid = response.json()["messages"][0]["id"]
    assert [str(request.url) for request in fake_parley.requests] == [
        f"{PUBLIC_URL}/webhooks/whatsapp/demo"
    ] * 2
    events = []
    for request in fake_parley.requests:
        whatsapp.verify_signature(
            request.content, request.headers["x-hub-signature-256"], META_APP_SECRET
        )
        events.extend(whatsapp.parse(request.content))
    assert events == [
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=wamid,
            status=status,
            account=WHATSAPP_PHONE_NUMBER_ID,
            recipient="+447911123456",
            occurred_at=NOW,
        )
        for status in ("sent", "delivered")
    ]


async def test_whatsapp_hands_back_the_callback_data_the_send_gave(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    fake_parley: FakeParley,
) -> None:
    await reporting_client.post(
        WHATSAPP_URL,
        json={**WHATSAPP_TEXT, "biz_opaque_callback_data": "parley-1-42"},
        headers={"Authorization": f"Bearer {WHATSAPP_TOKEN}"},
    )
    await _drain(reporting_app)

    references = [
        event.reference
        for request in fake_parley.requests
        for event in whatsapp.parse(request.content)
        if isinstance(event, StatusUpdate)
    ]
    assert references == ["parley-1-42", "parley-1-42"]


async def test_whatsapp_refuses_callback_data_past_512_characters(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    fake_parley: FakeParley,
) -> None:
    response = await reporting_client.post(
        WHATSAPP_URL,
        json={**WHATSAPP_TEXT, "biz_opaque_callback_data": "x" * 513},
        headers={"Authorization": f"Bearer {WHATSAPP_TOKEN}"},
    )
    await _drain(reporting_app)

    assert response.status_code == 400
    assert "biz_opaque_callback_data" in response.json()["error"]["message"]
    assert fake_parley.requests == []


async def test_twilio_reports_to_the_status_callback(
    reporting_app: Starlette, reporting_client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    response = await _send_sms(reporting_client, StatusCallback=CALLBACK)
    await _drain(reporting_app)

    sid = response.json()["sid"]
    assert [str(request.url) for request in fake_parley.requests] == [CALLBACK] * 2
    events = []
    for request in fake_parley.requests:
        params = dict(parse_qsl(request.content.decode()))
        # parley rebuilds the URL from its public base, the route's path and the raw query.
        url = twilio.public_url(PUBLIC_URL, "/webhooks/twilio/demo", "delivery=42")
        twilio.verify_signature(
            url, params, request.headers["x-twilio-signature"], TWILIO_WEBHOOK_TOKEN
        )
        events.extend(twilio.parse(params))
    assert events == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id=sid,
            status=status,
            account="+15005550006",
            recipient="+12025550143",
        )
        for status in ("sent", "delivered")
    ]


async def test_twilio_receipts_through_a_messaging_service_name_the_pool_number_and_it(
    reporting_app: Starlette, reporting_client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    service = "MG" + "a" * 32
    response = await _send_sms(
        reporting_client, From=service, MessagingServiceSid=service, StatusCallback=CALLBACK
    )
    await _drain(reporting_app)

    sid = response.json()["sid"]
    url = twilio.public_url(PUBLIC_URL, "/webhooks/twilio/demo", "delivery=42")
    events = []
    for request in fake_parley.requests:
        params = dict(parse_qsl(request.content.decode()))
        twilio.verify_signature(
            url, params, request.headers["x-twilio-signature"], TWILIO_WEBHOOK_TOKEN
        )
        events.extend(twilio.parse(params))
    assert events == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id=sid,
            status=status,
            account="+15005550006",
            messaging_service=service,
            recipient="+12025550143",
        )
        for status in ("sent", "delivered")
    ]


async def test_twilio_without_status_callback_reports_nothing(
    reporting_app: Starlette, reporting_client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    response = await _send_sms(reporting_client)
    await _drain(reporting_app)

    assert response.status_code == 201
    assert fake_parley.requests == []


async def test_invalid_status_callback_is_refused(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    store: SandboxStore,
    fake_parley: FakeParley,
) -> None:
    response = await _send_sms(reporting_client, StatusCallback="javascript:alert(1)")
    await _drain(reporting_app)

    assert response.status_code == 400
    assert response.json()["code"] == 21609
    assert store.list() == []
    assert fake_parley.requests == []


async def test_a_refused_send_reports_nothing(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    store: SandboxStore,
    fake_parley: FakeParley,
) -> None:
    store.inject_fault("whatsapp", 503)

    response = await _send_whatsapp(reporting_client)
    await _drain(reporting_app)

    assert response.status_code == 503
    assert fake_parley.requests == []


async def test_statuses_are_off_unless_asked_for(
    app: Starlette, client: httpx2.AsyncClient, fake_parley: FakeParley
) -> None:
    await _send_whatsapp(client)
    await _send_sms(client, StatusCallback=CALLBACK)
    await _drain(app)

    assert fake_parley.requests == []


async def test_parley_refusing_a_status_is_logged_and_the_send_still_succeeds(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    fake_parley: FakeParley,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_parley.answer = lambda _request: httpx2.Response(500, text="boom")

    with caplog.at_level(logging.WARNING, logger="parley.sandbox.webhooks"):
        response = await _send_whatsapp(reporting_client)
        await _drain(reporting_app)

    assert response.status_code == 200
    assert len(fake_parley.requests) == 2
    assert [record.getMessage() for record in caplog.records] == [
        f"sandbox: {PUBLIC_URL}/webhooks/whatsapp/demo answered a webhook with HTTP 500: boom"
    ] * 2


async def test_unreachable_parley_is_logged_and_the_send_still_succeeds(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    fake_parley: FakeParley,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    fake_parley.answer = refuse

    with caplog.at_level(logging.WARNING, logger="parley.sandbox.webhooks"):
        response = await _send_sms(reporting_client, StatusCallback=CALLBACK)
        await _drain(reporting_app)

    assert response.status_code == 201
    assert len(caplog.records) == 2
    assert all(
        record.getMessage().startswith(f"sandbox: could not post a webhook to {CALLBACK}: ")
        for record in caplog.records
    )


async def test_receipts_share_one_tls_context_however_many_are_posted(monkeypatch):
    """Building a TLS context loads the CA bundle (about 30 ms of CPU); made afresh for each
    receipt it capped the sandbox at a few dozen messages a second."""
    built: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counting(*args, **kwargs):
        built.append(create(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    tls_context.cache_clear()
    poster = WebhookPoster(timeout=1.0)
    refused = []
    for n in range(5):  # nothing listens on port 9: each post is refused, after its client
        webhook = SignedWebhook(
            url=f"http://127.0.0.1:9/webhooks/whatsapp/demo?n={n}", content=b"{}"
        )
        with pytest.raises(httpx2.ConnectError):
            await poster.post(webhook)
        refused.append(n)
    tls_context.cache_clear()
    assert refused == [0, 1, 2, 3, 4]
    assert len(built) == 1
