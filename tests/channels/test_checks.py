"""Each adapter's settings check: the provider's read-only endpoint, asked with the same
credentials a send uses, nothing sent; a refusal classified as a send's would be."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from tests.channels.conftest import (
    INSTAGRAM_ACCOUNT_ID,
    INSTAGRAM_TOKEN,
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_TOKEN,
    email_adapter,
    free_port,
    start_smtp_server,
)

from parley.channels.base import AccountChannelError, TransientChannelError
from parley.channels.instagram.adapter import Instagram
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.channels.webchat.adapter import ChatHub, WebChat
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud

pytestmark = pytest.mark.anyio

Answer = Callable[[httpx2.Request], httpx2.Response]


class Api:
    """A provider answering GETs by path; every request is kept."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.requests: list[httpx2.Request] = []
        self.transport = httpx2.MockTransport(self._handle)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answers[request.url.path](request)


def _json(status: int, body: dict[str, Any]) -> Answer:
    return lambda _request: httpx2.Response(status, json=body)


ACCOUNT = f"/2010-04-01/Accounts/{TWILIO_SID}.json"
NUMBERS = f"/2010-04-01/Accounts/{TWILIO_SID}/IncomingPhoneNumbers.json"
ACTIVE = _json(200, {"sid": TWILIO_SID, "status": "active"})
OURS = _json(200, {"incoming_phone_numbers": [{"phone_number": TWILIO_FROM}]})


def _twilio(api: Api, from_number: str = TWILIO_FROM) -> TwilioSms:
    return TwilioSms(
        account_sid=TWILIO_SID,
        auth_token=TWILIO_TOKEN,
        from_number=from_number,
        base_url="https://twilio.test",
        transport=api.transport,
    )


async def test_twilio_check_reads_the_account_and_its_sending_number() -> None:
    api = Api({ACCOUNT: ACTIVE, NUMBERS: OURS})

    said = await _twilio(api).check()

    assert (
        said == f"the Twilio account {TWILIO_SID} is active and {TWILIO_FROM} is one of its numbers"
    )
    assert [(r.method, r.url.path, r.url.params.get("PhoneNumber")) for r in api.requests] == [
        ("GET", ACCOUNT, None),
        ("GET", NUMBERS, TWILIO_FROM),
    ]
    assert all(r.headers["Authorization"].startswith("Basic ") for r in api.requests)


@pytest.mark.parametrize(
    ("answers", "code", "reason"),
    [
        pytest.param(
            {ACCOUNT: _json(401, {"code": 20003, "message": "Authenticate", "status": 401})},
            "20003",
            "Twilio refused the settings (HTTP 401, error 20003): Twilio rejected the account"
            " credentials - Authenticate",
            id="bad_credentials_case",
        ),
        pytest.param(
            {ACCOUNT: _json(200, {"sid": TWILIO_SID, "status": "suspended"})},
            "20005",
            f"the Twilio account {TWILIO_SID} is suspended",
            id="suspended_case",
        ),
        pytest.param(
            {ACCOUNT: ACTIVE, NUMBERS: _json(200, {"incoming_phone_numbers": []})},
            "21659",
            f"{TWILIO_FROM} (PARLEY_TWILIO_FROM_NUMBER) is not a number of the Twilio account"
            f" {TWILIO_SID}",
            id="number_not_on_the_account_case",
        ),
    ],
)
async def test_twilio_check_refuses_what_a_send_would_find_refused(
    answers: dict[str, Answer], code: str, reason: str
) -> None:
    with pytest.raises(AccountChannelError) as caught:
        await _twilio(Api(answers)).check()

    assert (caught.value.provider_code, caught.value.reason) == (code, reason)


async def test_twilio_check_during_an_outage_is_transient() -> None:
    down = _json(503, {"code": 20503, "message": "Service Unavailable", "status": 503})

    with pytest.raises(TransientChannelError) as caught:
        await _twilio(Api({ACCOUNT: down})).check()

    assert (
        caught.value.reason
        == "Twilio could not answer (HTTP 503, error 20503) - Service Unavailable"
    )


async def test_twilio_check_of_a_messaging_service_sender_reads_the_account_only() -> None:
    api = Api({ACCOUNT: ACTIVE})

    said = await _twilio(api, from_number="MG0123").check()

    assert said == f"the Twilio account {TWILIO_SID} is active; it sends as MG0123"
    assert len(api.requests) == 1


def _whatsapp(api: Api) -> WhatsappCloud:
    return WhatsappCloud(
        phone_number_id=WHATSAPP_PHONE_NUMBER_ID,
        access_token=WHATSAPP_TOKEN,
        base_url="https://graph.test",
        api_version="v21.0",
        transport=api.transport,
    )


NUMBER_NODE = f"/v21.0/{WHATSAPP_PHONE_NUMBER_ID}"


async def test_whatsapp_check_reads_the_phone_number_node_with_the_token() -> None:
    api = Api(
        {NUMBER_NODE: _json(200, {"display_phone_number": "+1 555-0100", "verified_name": "Shop"})}
    )

    said = await _whatsapp(api).check()

    assert said == (
        "the token reads the WhatsApp number +1 555-0100 (Shop); no business account id, "
        "so its templates are not read"
    )
    [request] = api.requests
    assert request.url.params["fields"] == "display_phone_number,verified_name"
    assert request.headers["Authorization"] == f"Bearer {WHATSAPP_TOKEN}"


async def test_whatsapp_check_counts_the_business_accounts_templates() -> None:
    templates = [
        {"name": "order_dispatched", "language": "en", "status": "APPROVED", "category": "UTILITY"},
        {"name": "sale", "language": "en", "status": "APPROVED", "category": "MARKETING"},
        {"name": "old", "language": "en", "status": "PAUSED", "category": "MARKETING"},
    ]
    api = Api(
        {
            NUMBER_NODE: _json(200, {"display_phone_number": "+1 555-0100"}),
            "/v21.0/4455/message_templates": _json(200, {"data": templates, "paging": {}}),
        }
    )
    adapter = WhatsappCloud(
        phone_number_id=WHATSAPP_PHONE_NUMBER_ID,
        access_token=WHATSAPP_TOKEN,
        base_url="https://graph.test",
        business_account_id="4455",
        transport=api.transport,
    )

    said = await adapter.check()

    assert said == (
        "the token reads the WhatsApp number +1 555-0100 and 3 templates of its business "
        "account (2 approved, 2 marketing)"
    )


async def test_whatsapp_check_classifies_an_expired_token_and_an_outage() -> None:
    expired = _json(401, {"error": {"code": 190, "message": "Error validating access token"}})
    down = _json(503, {"error": {"code": 2, "message": "Service temporarily unavailable"}})

    with pytest.raises(AccountChannelError) as refused:
        await _whatsapp(Api({NUMBER_NODE: expired})).check()
    with pytest.raises(TransientChannelError) as later:
        await _whatsapp(Api({NUMBER_NODE: down})).check()

    assert refused.value.reason == (
        "WhatsApp refused the settings (HTTP 401, error 190): Error validating access token"
    )
    assert (later.value.provider_code, later.value.reason) == (
        "2",
        "WhatsApp could not answer (HTTP 503, error 2): Service temporarily unavailable",
    )


def _instagram(api: Api) -> Instagram:
    return Instagram(
        instagram_account_id=INSTAGRAM_ACCOUNT_ID,
        access_token=INSTAGRAM_TOKEN,
        base_url="https://graph.instagram.test",
        api_version="v21.0",
        transport=api.transport,
    )


async def test_instagram_check_wants_the_token_of_the_sending_account() -> None:
    ours = _json(200, {"user_id": INSTAGRAM_ACCOUNT_ID, "username": "shop"})
    theirs = _json(200, {"user_id": "17841499999999999", "username": "another"})

    said = await _instagram(Api({"/v21.0/me": ours})).check()
    with pytest.raises(AccountChannelError) as caught:
        await _instagram(Api({"/v21.0/me": theirs})).check()

    assert said == "the token is the Instagram account @shop's"
    assert caught.value.reason == (
        "the Instagram token is @another's (17841499999999999), not the account in"
        f" PARLEY_INSTAGRAM_ACCOUNT_ID ({INSTAGRAM_ACCOUNT_ID})"
    )


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
async def test_email_check_logs_in_and_quits_sending_nothing() -> None:
    server = start_smtp_server(login=("orders", "right-password"))
    right = email_adapter(server, username="orders", password="right-password")
    wrong = email_adapter(server, username="orders", password="wrong-password")
    try:
        said = await right.check()
        with pytest.raises(AccountChannelError) as caught:
            await wrong.check()
    finally:
        server.stop()

    assert said == f"the mail server at 127.0.0.1:{server.port} took the login"
    assert caught.value.provider_code == "535"
    assert server.handler.received == []


async def test_email_check_of_a_relay_that_is_not_there_is_an_outage() -> None:
    server = start_smtp_server()
    server.stop()
    adapter = email_adapter(server, port=free_port())

    with pytest.raises(TransientChannelError, match="could not reach the mail server"):
        await adapter.check()


async def test_webchat_has_no_provider_to_check() -> None:
    assert await WebChat(hub=ChatHub()).check() == "served by parley itself: nothing to check"
