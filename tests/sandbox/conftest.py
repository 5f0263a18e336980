"""Fixtures for the sandbox tests: fixed credentials, a fresh store, the app behind an
in-process httpx client, and a frozen clock so captured times are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from parley.clock import FrozenClock, reset_clock
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.store import SandboxStore
from parley.settings import Settings

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-secret-token"
WHATSAPP_TOKEN = "EAAG-sandbox-test-token"
WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
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
    )


@pytest.fixture
def store() -> SandboxStore:
    return SandboxStore()


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOW).install()
    yield frozen
    reset_clock()


@pytest.fixture
def app(store: SandboxStore, settings: Settings) -> Starlette:
    return create_sandbox_app(store, settings)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield client
