"""Fixtures for the sandbox tests: fixed credentials, a fresh store, the app behind an
in-process httpx2 client, a frozen clock so captured times are exact, and a fake parley
that records the webhooks the sandbox posts (no server is ever started).

``app``/``client`` keep the stand-ins silent (no status webhooks), as a unit test of one
stand-in wants; ``reporting_app``/``reporting_client`` switch status webhooks on with no
delay, and ``fake_parley`` receives them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx2
import pytest
from starlette.applications import Starlette

from parley.channels import meta
from parley.channels.base import SignatureError, StatusUpdate
from parley.channels.whatsapp_cloud import webhook as whatsapp
from parley.clock import FrozenClock, reset_clock
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.store import SandboxStore
from parley.sandbox.webhooks import WebhookPoster
from parley.settings import Settings

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-secret-token"
WHATSAPP_TOKEN = "EAAG-sandbox-test-token"
WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
INSTAGRAM_TOKEN = "IGAA-sandbox-test-token"
INSTAGRAM_ACCOUNT_ID = "17841400000000001"
PUBLIC_URL = "https://shop.example.com"
# The demo workspace's webhook secrets (the settings' defaults, spelled out for the tests).
META_APP_SECRET = "demo-meta-app-secret"
TWILIO_WEBHOOK_TOKEN = "demo-twilio-auth-token"
MAILGUN_KEY = "demo-mailgun-signing-key"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        whatsapp_access_token=WHATSAPP_TOKEN,
        whatsapp_phone_number_id=WHATSAPP_PHONE_NUMBER_ID,
        whatsapp_api_version="v21.0",
        instagram_access_token=INSTAGRAM_TOKEN,
        instagram_account_id=INSTAGRAM_ACCOUNT_ID,
        public_url=PUBLIC_URL,
    )


@pytest.fixture
def store() -> SandboxStore:
    return SandboxStore()


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOW).install()
    yield frozen
    reset_clock()


@dataclass
class FakeParley:
    """parley's webhook routes, as an ``httpx2.MockTransport``: records, answers as told."""

    requests: list[httpx2.Request] = field(default_factory=list)
    answer: Callable[[httpx2.Request], httpx2.Response] = field(
        default=lambda _request: httpx2.Response(200, json={"status": "accepted"})
    )

    @property
    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self._handle)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answer(request)


@pytest.fixture
def fake_parley() -> FakeParley:
    return FakeParley()


@pytest.fixture
def app(store: SandboxStore, settings: Settings, fake_parley: FakeParley) -> Starlette:
    return create_sandbox_app(
        store, settings, status_webhooks=False, webhook_transport=fake_parley.transport
    )


@pytest.fixture
def reporting_app(store: SandboxStore, settings: Settings, fake_parley: FakeParley) -> Starlette:
    return create_sandbox_app(
        store,
        settings,
        status_webhooks=True,
        webhook_transport=fake_parley.transport,
        status_delay_seconds=0,
    )


async def _client(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield client
    poster: WebhookPoster = app.state.webhook_poster
    # Nothing may still be posting once a test ends: its event loop is about to close.
    await poster.wait_idle()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    async for client in _client(app):
        yield client


@pytest.fixture
async def reporting_client(reporting_app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    async for client in _client(reporting_app):
        yield client


def whatsapp_statuses(
    fake_parley: FakeParley, *, signed_with: str, not_with: str
) -> list[StatusUpdate]:
    """The status webhooks the sandbox posted to the demo's WhatsApp route, each checked
    to be signed with ``signed_with`` and not with ``not_with``, parsed as parley does."""
    assert [str(request.url) for request in fake_parley.requests] == [
        f"{PUBLIC_URL}/webhooks/whatsapp/demo"
    ] * len(fake_parley.requests)
    events: list[StatusUpdate] = []
    for request in fake_parley.requests:
        signature = request.headers[meta.SIGNATURE_HEADER]
        meta.verify_signature(request.content, signature, signed_with)
        with pytest.raises(SignatureError):
            meta.verify_signature(request.content, signature, not_with)
        events.extend(whatsapp.parse(request.content))
    return events
