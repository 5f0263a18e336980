"""The sandbox's sign-up, as a provider's console: it issues a new Twilio account with its
own number, or a new WhatsApp number with its own token (and the app secret its status
webhooks are signed with), that the stand-ins then accept, and lists them without secrets."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from tests.sandbox.conftest import (
    META_APP_SECRET,
    NOW,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_TOKEN,
    FakeParley,
    whatsapp_statuses,
)

from parley.channels.base import ChannelKind, StatusUpdate
from parley.clock import FrozenClock
from parley.sandbox import api as sandbox_api
from parley.sandbox.accounts import SandboxAccounts, TwilioAccount, WhatsAppNumber
from parley.sandbox.api import SandboxApi
from parley.sandbox.store import SandboxStore
from parley.settings import Settings

pytestmark = pytest.mark.anyio

CUSTOMER_PHONE = "+12025550143"
WHATSAPP_CUSTOMER = "447911123456"
STORE_APP_SECRET = "meta-app-secret-of-the-new-store"
DEPLOYMENT_NUMBER = "+15005550006"
FIRST_SIGN_UP_NUMBER = "+15005551000"
SECOND_SIGN_UP_NUMBER = "+15005551001"


def _accounts(app: Starlette) -> SandboxAccounts:
    accounts = app.state.sandbox_accounts
    assert isinstance(accounts, SandboxAccounts)
    return accounts


def _registered(app: Starlette) -> tuple[tuple[TwilioAccount, ...], tuple[WhatsAppNumber, ...]]:
    accounts = _accounts(app)
    return accounts.list_twilio(), accounts.list_whatsapp()


async def _send_sms(
    client: httpx2.AsyncClient, *, account_sid: str, auth_token: str, sender: str
) -> httpx2.Response:
    return await client.post(
        f"/twilio/2010-04-01/Accounts/{account_sid}/Messages.json",
        data={"To": CUSTOMER_PHONE, "From": sender, "Body": "Hi"},
        auth=(account_sid, auth_token),
    )


async def _send_whatsapp(
    client: httpx2.AsyncClient, *, phone_number_id: str, access_token: str
) -> httpx2.Response:
    return await client.post(
        f"/whatsapp/v21.0/{phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": WHATSAPP_CUSTOMER, "text": {"body": "Hi"}},
        headers={"Authorization": f"Bearer {access_token}"},
    )


# --- Twilio -----------------------------------------------------------------------------


async def test_a_twilio_sign_up_sends_from_its_number_with_its_credentials(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    # Given a store signs up for a Twilio account
    signed_up = await client.post("/api/accounts/twilio")

    # When it sends an SMS with the credentials it was given, from the number it was given
    assert signed_up.status_code == 201
    issued = signed_up.json()
    assert set(issued) == {"account_sid", "auth_token", "phone_number"}
    assert re.fullmatch(r"AC[0-9a-f]{32}", issued["account_sid"])
    assert re.fullmatch(r"[0-9a-f]{32}", issued["auth_token"])
    assert issued["phone_number"] == FIRST_SIGN_UP_NUMBER
    sent = await _send_sms(
        client,
        account_sid=issued["account_sid"],
        auth_token=issued["auth_token"],
        sender=issued["phone_number"],
    )
    numbers = await client.get(
        f"/twilio/2010-04-01/Accounts/{issued['account_sid']}/IncomingPhoneNumbers.json",
        auth=(issued["account_sid"], issued["auth_token"]),
    )

    # Then Twilio's stand-in accepts it and captures it with that sender
    assert sent.status_code == 201
    assert sent.json()["account_sid"] == issued["account_sid"]
    [captured] = store.list()
    assert (captured.channel, captured.sender, captured.to) == (
        "sms",
        FIRST_SIGN_UP_NUMBER,
        CUSTOMER_PHONE,
    )
    assert captured.provider_message_id == sent.json()["sid"]
    assert [n["phone_number"] for n in numbers.json()["incoming_phone_numbers"]] == [
        FIRST_SIGN_UP_NUMBER
    ]


async def test_a_second_twilio_sign_up_gets_another_account_and_number(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    first = (await client.post("/api/accounts/twilio")).json()
    second = (await client.post("/api/accounts/twilio")).json()

    assert second["account_sid"] != first["account_sid"]
    assert second["auth_token"] != first["auth_token"]
    assert (first["phone_number"], second["phone_number"]) == (
        FIRST_SIGN_UP_NUMBER,
        SECOND_SIGN_UP_NUMBER,
    )
    # Each account's token opens only its own account.
    crossed = await _send_sms(
        client,
        account_sid=second["account_sid"],
        auth_token=first["auth_token"],
        sender=second["phone_number"],
    )
    assert (crossed.status_code, crossed.json()["code"]) == (401, 20003)
    assert store.list() == []


async def test_a_twilio_sign_up_skips_numbers_already_registered(
    app: Starlette, client: httpx2.AsyncClient
) -> None:
    _accounts(app).add_twilio("AC" + "e" * 32, "a-store-token", FIRST_SIGN_UP_NUMBER)

    issued = (await client.post("/api/accounts/twilio")).json()

    assert issued["phone_number"] == SECOND_SIGN_UP_NUMBER


async def test_a_twilio_sign_up_with_no_number_left_is_refused_and_registers_nothing(
    store: SandboxStore, settings: Settings
) -> None:
    # Given a sandbox whose only sign-up number is the deployment's own
    accounts = SandboxAccounts.from_settings(settings)
    api = SandboxApi(store, accounts=accounts, twilio_numbers=(DEPLOYMENT_NUMBER,))
    route = Route("/api/accounts/twilio", api.create_twilio_account, methods=["POST"])
    app = Starlette(routes=[route])
    before = (accounts.list_twilio(), accounts.list_whatsapp())

    # When a store signs up
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as client:
        response = await client.post("/api/accounts/twilio")

    # Then it is told why, and no account is registered
    assert (response.status_code, response.json()) == (
        409,
        {"error": "every sandbox Twilio number is taken"},
    )
    assert (accounts.list_twilio(), accounts.list_whatsapp()) == before


# --- WhatsApp ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "issued_secret", "signing_secret"),
    [
        pytest.param(
            {"app_secret": STORE_APP_SECRET}, STORE_APP_SECRET, STORE_APP_SECRET, id="own_case"
        ),
        pytest.param({"app_secret": None}, None, META_APP_SECRET, id="null_secret_case"),
        pytest.param(None, None, META_APP_SECRET, id="no_body_case"),
    ],
)
async def test_a_whatsapp_sign_up_sends_with_its_token_and_signs_statuses_with_its_secret(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    store: SandboxStore,
    fake_parley: FakeParley,
    clock: FrozenClock,
    body: dict[str, Any] | None,
    issued_secret: str | None,
    signing_secret: str,
) -> None:
    # Given a store signs up for a WhatsApp number
    signed_up = await reporting_client.post("/api/accounts/whatsapp", json=body)

    # When it sends a message from that number with the token it was given
    assert signed_up.status_code == 201
    issued = signed_up.json()
    assert set(issued) == {"phone_number_id", "access_token", "app_secret"}
    assert re.fullmatch(r"[1-9][0-9]{14}", issued["phone_number_id"])
    assert re.fullmatch(r"EAAG[A-Za-z0-9_-]{43}", issued["access_token"])
    assert issued["app_secret"] == issued_secret
    phone_number_id = issued["phone_number_id"]
    sent = await _send_whatsapp(
        reporting_client, phone_number_id=phone_number_id, access_token=issued["access_token"]
    )
    await reporting_app.state.webhook_poster.wait_idle()

    # Then it is captured from that number, and its statuses are signed with its secret
    assert sent.status_code == 200
    wamid = sent.json()["messages"][0]["id"]
    [captured] = store.list()
    assert (captured.channel, captured.sender, captured.to, captured.provider_message_id) == (
        "whatsapp",
        phone_number_id,
        WHATSAPP_CUSTOMER,
        wamid,
    )
    assert len(fake_parley.requests) == 2
    events = whatsapp_statuses(
        fake_parley,
        signed_with=signing_secret,
        not_with=META_APP_SECRET if signing_secret == STORE_APP_SECRET else STORE_APP_SECRET,
    )
    assert events == [
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=wamid,
            status=status,
            account=phone_number_id,
            recipient="+" + WHATSAPP_CUSTOMER,
            occurred_at=NOW,
        )
        for status in ("sent", "delivered")
    ]


async def test_an_app_secret_of_exactly_4096_characters_is_accepted(
    app: Starlette, client: httpx2.AsyncClient
) -> None:
    secret = "s" * 4096

    response = await client.post("/api/accounts/whatsapp", json={"app_secret": secret})

    assert response.status_code == 201
    number = _accounts(app).find_whatsapp(response.json()["phone_number_id"])
    assert number is not None
    assert number.app_secret == secret


async def test_a_whatsapp_sign_up_never_takes_over_a_number_id_in_use(
    app: Starlette, client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a random source that draws the same id every time, already given to a store
    monkeypatch.setattr(sandbox_api.secrets, "randbelow", lambda _bound: 123)
    first = (await client.post("/api/accounts/whatsapp")).json()
    before = _registered(app)

    # When another store signs up
    response = await client.post("/api/accounts/whatsapp", json={"app_secret": "other"})

    # Then it is refused, and the first store's number keeps its token and secret
    assert first["phone_number_id"] == "100000000000123"
    assert (response.status_code, response.json()) == (
        409,
        {"error": "could not draw a WhatsApp phone number id nobody uses"},
    )
    assert _registered(app) == before
    assert _accounts(app).find_whatsapp("100000000000123") == WhatsAppNumber(
        phone_number_id="100000000000123", access_token=first["access_token"], app_secret=None
    )


# --- the list ---------------------------------------------------------------------------


async def test_accounts_lists_every_account_and_number_without_any_secret(
    client: httpx2.AsyncClient,
) -> None:
    twilio = (await client.post("/api/accounts/twilio")).json()
    number = (
        await client.post("/api/accounts/whatsapp", json={"app_secret": STORE_APP_SECRET})
    ).json()

    response = await client.get("/api/accounts")

    assert response.status_code == 200
    assert response.json() == {
        "twilio": [
            {"account_sid": TWILIO_SID, "phone_numbers": [DEPLOYMENT_NUMBER]},
            {"account_sid": twilio["account_sid"], "phone_numbers": [FIRST_SIGN_UP_NUMBER]},
        ],
        "whatsapp": [
            {"phone_number_id": WHATSAPP_PHONE_NUMBER_ID},
            {"phone_number_id": number["phone_number_id"]},
        ],
    }
    for secret in (
        twilio["auth_token"],
        number["access_token"],
        STORE_APP_SECRET,
        TWILIO_TOKEN,
        WHATSAPP_TOKEN,
    ):
        assert secret not in response.text


# --- malformed sign-ups -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        pytest.param(
            "twilio", b"not json", "the body must be a JSON object", id="twilio_not_json_case"
        ),
        pytest.param("twilio", b"[]", "the body must be a JSON object", id="twilio_array_case"),
        pytest.param(
            "twilio",
            json.dumps({"phone_number": "+15005551234"}).encode(),
            "unknown field(s): phone_number",
            id="twilio_chooses_number_case",
        ),
        pytest.param(
            "whatsapp", b"{", "the body must be a JSON object", id="whatsapp_not_json_case"
        ),
        pytest.param(
            "whatsapp", b"\xff\xfe", "the body must be a JSON object", id="whatsapp_not_utf8_case"
        ),
        pytest.param(
            "whatsapp", b'"secret"', "the body must be a JSON object", id="whatsapp_string_case"
        ),
        pytest.param(
            "whatsapp",
            json.dumps({"app_secret": 42}).encode(),
            "app_secret must be a string",
            id="secret_not_a_string_case",
        ),
        pytest.param(
            "whatsapp",
            json.dumps({"app_secret": ""}).encode(),
            "app_secret must not be empty",
            id="secret_empty_case",
        ),
        pytest.param(
            "whatsapp",
            json.dumps({"app_secret": "s" * 4097}).encode(),
            "app_secret must be at most 4096 characters",
            id="secret_too_long_case",
        ),
        pytest.param(
            "whatsapp",
            json.dumps({"app_secret": "s", "access_token": "EAAG-mine"}).encode(),
            "unknown field(s): access_token",
            id="whatsapp_chooses_token_case",
        ),
    ],
)
async def test_a_malformed_sign_up_is_422_with_the_reason_and_registers_nothing(
    app: Starlette, client: httpx2.AsyncClient, path: str, content: bytes, reason: str
) -> None:
    before = _registered(app)

    response = await client.post(
        f"/api/accounts/{path}", content=content, headers={"Content-Type": "application/json"}
    )

    assert (response.status_code, response.json()) == (422, {"error": reason})
    assert _registered(app) == before
    assert len(before[0]) == len(before[1]) == 1
