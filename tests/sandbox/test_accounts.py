"""Several Twilio accounts and WhatsApp numbers in one sandbox, as the real providers serve
many stores: each request is checked against the account its path names, each capture
names its sender, and each status report is signed with the sending account's secret."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
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
    whatsapp_statuses,
)

from parley.channels.base import ChannelKind, SignatureError, StatusUpdate
from parley.channels.twilio_sms import webhook as twilio
from parley.clock import FrozenClock
from parley.http.app import create_app
from parley.sandbox.accounts import SandboxAccounts, TwilioAccount, WhatsAppNumber
from parley.sandbox.store import SandboxStore
from parley.settings import Settings

pytestmark = pytest.mark.anyio

# Two stores' own Twilio accounts; B owns two numbers.
SID_A = "AC" + "a" * 32
TOKEN_A = "twilio-token-of-store-a"
NUMBER_A = "+15005550101"
SID_B = "AC" + "b" * 32
TOKEN_B = "twilio-token-of-store-b"
NUMBER_B = "+15005550201"
SECOND_NUMBER_B = "+15005550202"
UNKNOWN_SID = "AC" + "c" * 32

# Two stores' own WhatsApp numbers; only B's statuses have an app secret of their own.
PHONE_A = "200000000000001"
WA_TOKEN_A = "EAAG-token-of-store-a"
PHONE_B = "200000000000002"
WA_TOKEN_B = "EAAG-token-of-store-b"
APP_SECRET_B = "meta-app-secret-of-store-b"
UNKNOWN_PHONE = "299999999999999"

CALLBACK = f"{PUBLIC_URL}/webhooks/twilio/demo?delivery=42"
TEXT = {"messaging_product": "whatsapp", "to": "447911123456", "text": {"body": "Hi"}}


def _register(app: Starlette) -> SandboxAccounts:
    accounts = app.state.sandbox_accounts
    assert isinstance(accounts, SandboxAccounts)
    accounts.add_twilio(SID_A, TOKEN_A, NUMBER_A)
    accounts.add_twilio(SID_B, TOKEN_B, NUMBER_B)
    accounts.add_twilio(SID_B, TOKEN_B, SECOND_NUMBER_B)
    accounts.add_whatsapp(PHONE_A, WA_TOKEN_A)
    accounts.add_whatsapp(PHONE_B, WA_TOKEN_B, app_secret=APP_SECRET_B)
    return accounts


@pytest.fixture
def accounts(app: Starlette) -> SandboxAccounts:
    return _register(app)


@pytest.fixture
def reporting_accounts(reporting_app: Starlette) -> SandboxAccounts:
    return _register(reporting_app)


async def _send_sms(
    client: httpx2.AsyncClient, *, path_sid: str, auth: tuple[str, str], **extra: str
) -> httpx2.Response:
    form = {"To": "+12025550143", "From": NUMBER_B, "Body": "Hi"} | extra
    url = f"/twilio/2010-04-01/Accounts/{path_sid}/Messages.json"
    return await client.post(url, data=form, auth=auth)


async def _send_whatsapp(
    client: httpx2.AsyncClient, *, phone_number_id: str, token: str
) -> httpx2.Response:
    return await client.post(
        f"/whatsapp/v21.0/{phone_number_id}/messages",
        json=TEXT,
        headers={"Authorization": f"Bearer {token}"},
    )


async def _drain(app: Starlette) -> None:
    await app.state.webhook_poster.wait_idle()


def _graph_error(response: httpx2.Response) -> dict[str, Any]:
    error = response.json()["error"]
    return {key: error[key] for key in ("code", "type", "error_subcode") if key in error}


# --- the registry -----------------------------------------------------------------------


def test_starts_with_the_deployments_account_and_number(settings: Settings) -> None:
    accounts = SandboxAccounts.from_settings(settings)

    assert accounts.find_twilio(TWILIO_SID) == TwilioAccount(
        account_sid=TWILIO_SID,
        auth_token=TWILIO_TOKEN,
        phone_numbers=("+15005550006",),
        signs_callbacks_with=TWILIO_WEBHOOK_TOKEN,
    )
    assert accounts.find_whatsapp(WHATSAPP_PHONE_NUMBER_ID) == WhatsAppNumber(
        phone_number_id=WHATSAPP_PHONE_NUMBER_ID, access_token=WHATSAPP_TOKEN, app_secret=None
    )
    assert accounts.find_twilio(SID_A) is None
    assert accounts.find_whatsapp(PHONE_A) is None


def test_a_known_sid_with_the_same_token_gains_a_number() -> None:
    accounts = SandboxAccounts()

    accounts.add_twilio(SID_B, TOKEN_B, NUMBER_B)
    accounts.add_twilio(SID_B, TOKEN_B, SECOND_NUMBER_B)
    accounts.add_twilio(SID_B, TOKEN_B, NUMBER_B)

    assert accounts.find_twilio(SID_B) == TwilioAccount(
        account_sid=SID_B, auth_token=TOKEN_B, phone_numbers=(NUMBER_B, SECOND_NUMBER_B)
    )


def test_a_known_sid_with_another_token_rotates_it_and_keeps_its_numbers() -> None:
    accounts = SandboxAccounts()
    accounts.add_twilio(SID_B, TOKEN_B, NUMBER_B)

    accounts.add_twilio(SID_B, "rotated-token", SECOND_NUMBER_B)

    account = accounts.find_twilio(SID_B)
    assert account == TwilioAccount(
        account_sid=SID_B, auth_token="rotated-token", phone_numbers=(NUMBER_B, SECOND_NUMBER_B)
    )
    assert account.callback_token == "rotated-token"


def test_a_whatsapp_token_is_known_only_while_a_number_holds_it() -> None:
    accounts = SandboxAccounts()
    accounts.add_whatsapp(PHONE_A, WA_TOKEN_A)

    assert accounts.is_whatsapp_token(WA_TOKEN_A) is True
    assert accounts.is_whatsapp_token(WA_TOKEN_B) is False

    accounts.add_whatsapp(PHONE_A, WA_TOKEN_B)

    assert accounts.is_whatsapp_token(WA_TOKEN_A) is False
    assert accounts.is_whatsapp_token(WA_TOKEN_B) is True


# --- Twilio -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sid", "token", "sender"),
    [
        pytest.param(SID_A, TOKEN_A, NUMBER_A, id="store_a_case"),
        pytest.param(SID_B, TOKEN_B, SECOND_NUMBER_B, id="store_b_case"),
        pytest.param(TWILIO_SID, TWILIO_TOKEN, "+15005550006", id="deployment_case"),
    ],
)
async def test_each_twilio_account_sends_with_its_own_credentials(
    client: httpx2.AsyncClient,
    store: SandboxStore,
    accounts: SandboxAccounts,
    sid: str,
    token: str,
    sender: str,
) -> None:
    response = await _send_sms(client, path_sid=sid, auth=(sid, token), From=sender)

    assert response.status_code == 201
    resource = response.json()
    assert resource["account_sid"] == sid
    assert resource["uri"] == f"/2010-04-01/Accounts/{sid}/Messages/{resource['sid']}.json"
    [captured] = store.list()
    assert (captured.channel, captured.sender, captured.to) == ("sms", sender, "+12025550143")
    assert captured.provider_message_id == resource["sid"]


@pytest.mark.parametrize(
    ("path_sid", "auth"),
    [
        pytest.param(SID_B, (SID_A, TOKEN_A), id="a_credentials_on_b_path_case"),
        pytest.param(SID_B, (SID_B, TOKEN_A), id="b_sid_with_a_token_case"),
        pytest.param(SID_B, (TWILIO_SID, TWILIO_TOKEN), id="deployment_credentials_case"),
        pytest.param(UNKNOWN_SID, (UNKNOWN_SID, TOKEN_A), id="unknown_sid_case"),
        pytest.param(UNKNOWN_SID, (UNKNOWN_SID, ""), id="unknown_sid_empty_token_case"),
    ],
)
async def test_twilio_credentials_of_another_account_are_refused_and_nothing_captured(
    client: httpx2.AsyncClient,
    store: SandboxStore,
    accounts: SandboxAccounts,
    path_sid: str,
    auth: tuple[str, str],
) -> None:
    await _send_sms(client, path_sid=SID_A, auth=(SID_A, TOKEN_A), From=NUMBER_A)
    before = store.list()

    response = await _send_sms(client, path_sid=path_sid, auth=auth)

    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert store.list() == before
    assert store.received_count("sms") == 1


async def test_twilio_account_and_its_numbers_answer_for_the_path_account(
    client: httpx2.AsyncClient, accounts: SandboxAccounts
) -> None:
    base = f"/twilio/2010-04-01/Accounts/{SID_B}"

    account = await client.get(f"{base}.json", auth=(SID_B, TOKEN_B))
    numbers = await client.get(f"{base}/IncomingPhoneNumbers.json", auth=(SID_B, TOKEN_B))
    one = await client.get(
        f"{base}/IncomingPhoneNumbers.json",
        params={"PhoneNumber": SECOND_NUMBER_B},
        auth=(SID_B, TOKEN_B),
    )
    foreign = await client.get(
        f"{base}/IncomingPhoneNumbers.json",
        params={"PhoneNumber": NUMBER_A},
        auth=(SID_B, TOKEN_B),
    )
    refused = await client.get(f"{base}.json", auth=(SID_A, TOKEN_A))

    assert (account.json()["sid"], account.json()["uri"]) == (
        SID_B,
        f"/2010-04-01/Accounts/{SID_B}.json",
    )
    listed = numbers.json()["incoming_phone_numbers"]
    assert [(n["account_sid"], n["phone_number"]) for n in listed] == [
        (SID_B, NUMBER_B),
        (SID_B, SECOND_NUMBER_B),
    ]
    assert [n["phone_number"] for n in one.json()["incoming_phone_numbers"]] == [SECOND_NUMBER_B]
    assert foreign.json()["incoming_phone_numbers"] == []
    assert (refused.status_code, refused.json()["code"]) == (401, 20003)


async def test_a_rotated_twilio_token_replaces_the_old_one(
    client: httpx2.AsyncClient, store: SandboxStore, accounts: SandboxAccounts
) -> None:
    accounts.add_twilio(SID_B, "rotated-token", NUMBER_B)

    old = await _send_sms(client, path_sid=SID_B, auth=(SID_B, TOKEN_B))
    new = await _send_sms(client, path_sid=SID_B, auth=(SID_B, "rotated-token"))

    assert (old.status_code, new.status_code) == (401, 201)
    assert [message.provider_message_id for message in store.list()] == [new.json()["sid"]]


@pytest.mark.parametrize(
    ("sid", "token", "sender", "signing_token"),
    [
        pytest.param(SID_B, TOKEN_B, NUMBER_B, TOKEN_B, id="store_b_case"),
        pytest.param(
            TWILIO_SID, TWILIO_TOKEN, "+15005550006", TWILIO_WEBHOOK_TOKEN, id="deployment_case"
        ),
    ],
)
async def test_twilio_status_callbacks_are_signed_by_the_sending_account(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    reporting_accounts: SandboxAccounts,
    fake_parley: FakeParley,
    sid: str,
    token: str,
    sender: str,
    signing_token: str,
) -> None:
    response = await _send_sms(
        reporting_client, path_sid=sid, auth=(sid, token), From=sender, StatusCallback=CALLBACK
    )
    await _drain(reporting_app)

    message_sid = response.json()["sid"]
    assert [str(request.url) for request in fake_parley.requests] == [CALLBACK] * 2
    url = twilio.public_url(PUBLIC_URL, "/webhooks/twilio/demo", "delivery=42")
    events = []
    for request in fake_parley.requests:
        params = dict(parse_qsl(request.content.decode()))
        signature = request.headers["x-twilio-signature"]
        twilio.verify_signature(url, params, signature, signing_token)
        with pytest.raises(SignatureError):
            twilio.verify_signature(url, params, signature, TOKEN_A)
        assert params["AccountSid"] == sid
        events.extend(twilio.parse(params))
    assert events == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id=message_sid,
            status=status,
            account=sender,
            recipient="+12025550143",
        )
        for status in ("sent", "delivered")
    ]


# --- WhatsApp ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone_number_id", "token"),
    [
        pytest.param(PHONE_A, WA_TOKEN_A, id="store_a_case"),
        pytest.param(PHONE_B, WA_TOKEN_B, id="store_b_case"),
        pytest.param(WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_TOKEN, id="deployment_case"),
    ],
)
async def test_each_whatsapp_number_sends_with_its_own_token(
    client: httpx2.AsyncClient,
    store: SandboxStore,
    accounts: SandboxAccounts,
    phone_number_id: str,
    token: str,
) -> None:
    response = await _send_whatsapp(client, phone_number_id=phone_number_id, token=token)
    node = await client.get(
        f"/whatsapp/v21.0/{phone_number_id}", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    [captured] = store.list()
    assert (captured.channel, captured.sender, captured.to) == (
        "whatsapp",
        phone_number_id,
        "447911123456",
    )
    assert captured.provider_message_id == response.json()["messages"][0]["id"]
    assert (node.status_code, node.json()["id"]) == (200, phone_number_id)


GRAPH_INVALID_TOKEN = {"code": 190, "type": "OAuthException"}
GRAPH_UNREACHABLE = {"code": 100, "type": "GraphMethodException", "error_subcode": 33}


@pytest.mark.parametrize(
    ("phone_number_id", "token", "status", "error"),
    [
        pytest.param(PHONE_B, WA_TOKEN_A, 400, GRAPH_UNREACHABLE, id="a_token_on_b_case"),
        pytest.param(
            PHONE_B, WHATSAPP_TOKEN, 400, GRAPH_UNREACHABLE, id="deployment_token_on_b_case"
        ),
        pytest.param(UNKNOWN_PHONE, WA_TOKEN_B, 400, GRAPH_UNREACHABLE, id="unknown_number_case"),
        pytest.param(
            UNKNOWN_PHONE, "EAAG-unknown", 401, GRAPH_INVALID_TOKEN, id="unknown_both_case"
        ),
        pytest.param(PHONE_B, "EAAG-unknown", 401, GRAPH_INVALID_TOKEN, id="unknown_token_case"),
    ],
)
async def test_whatsapp_token_of_another_number_is_refused_and_nothing_captured(
    client: httpx2.AsyncClient,
    store: SandboxStore,
    accounts: SandboxAccounts,
    phone_number_id: str,
    token: str,
    status: int,
    error: dict[str, Any],
) -> None:
    # Given store A has sent one message
    await _send_whatsapp(client, phone_number_id=PHONE_A, token=WA_TOKEN_A)
    before = store.list()

    # When a request uses a token that is not the path number's own
    response = await _send_whatsapp(client, phone_number_id=phone_number_id, token=token)
    node = await client.get(
        f"/whatsapp/v21.0/{phone_number_id}", headers={"Authorization": f"Bearer {token}"}
    )

    # Then Graph's answer comes back for both, and nothing more is captured
    assert (response.status_code, _graph_error(response)) == (status, error)
    assert (node.status_code, _graph_error(node)) == (status, error)
    assert store.list() == before
    assert store.received_count("whatsapp") == 1


@pytest.mark.parametrize(
    ("phone_number_id", "token", "app_secret"),
    [
        pytest.param(PHONE_B, WA_TOKEN_B, APP_SECRET_B, id="own_secret_case"),
        pytest.param(PHONE_A, WA_TOKEN_A, META_APP_SECRET, id="no_secret_of_its_own_case"),
        pytest.param(
            WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_TOKEN, META_APP_SECRET, id="deployment_case"
        ),
    ],
)
async def test_whatsapp_statuses_name_and_are_signed_for_the_sending_number(
    reporting_app: Starlette,
    reporting_client: httpx2.AsyncClient,
    reporting_accounts: SandboxAccounts,
    fake_parley: FakeParley,
    clock: FrozenClock,
    phone_number_id: str,
    token: str,
    app_secret: str,
) -> None:
    response = await _send_whatsapp(reporting_client, phone_number_id=phone_number_id, token=token)
    await _drain(reporting_app)

    wamid = response.json()["messages"][0]["id"]
    assert len(fake_parley.requests) == 2
    events = whatsapp_statuses(
        fake_parley,
        signed_with=app_secret,
        not_with=META_APP_SECRET if app_secret == APP_SECRET_B else APP_SECRET_B,
    )
    assert events == [
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=wamid,
            status=status,
            account=phone_number_id,
            recipient="+447911123456",
            occurred_at=NOW,
        )
        for status in ("sent", "delivered")
    ]


# --- parley's own app -------------------------------------------------------------------


async def test_parleys_app_exposes_the_mounted_sandboxs_accounts(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"sandbox": True}))
    [sandbox] = [
        route.app for route in app.routes if isinstance(route, Mount) and route.path == "/sandbox"
    ]

    accounts = app.state.sandbox_accounts

    assert isinstance(accounts, SandboxAccounts)
    assert accounts is sandbox.state.sandbox_accounts
    assert accounts.find_twilio(TWILIO_SID) is not None


def test_parleys_app_without_the_sandbox_has_no_accounts(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"sandbox": False}))

    assert app.state.sandbox_accounts is None
