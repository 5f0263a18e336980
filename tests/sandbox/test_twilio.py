"""The Twilio Messages API stand-in: auth, validation, the resource it answers, faults."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from parley.channels.twilio_sms.segments import count_segments
from parley.clock import FrozenClock
from parley.sandbox.store import CapturedMessage, SandboxStore

pytestmark = pytest.mark.anyio

# The credentials the conftest's settings carry.
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-secret-token"
URL = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
AUTH = (TWILIO_SID, TWILIO_TOKEN)
VALID_FORM = {"To": "+447911123456", "From": "+15005550006", "Body": "Your order #1001 shipped"}


async def _send(
    client: httpx2.AsyncClient, form: dict[str, str] | None = None, **kwargs: Any
) -> httpx2.Response:
    kwargs.setdefault("auth", AUTH)
    return await client.post(kwargs.pop("url", URL), data=form or VALID_FORM, **kwargs)


async def test_accepted_message_is_captured(
    client: httpx2.AsyncClient, store: SandboxStore, clock: FrozenClock
) -> None:
    # Given valid credentials and a valid form; When the message is posted
    response = await _send(client)

    # Then Twilio's message resource comes back with 201
    assert response.status_code == 201
    resource = response.json()
    sid = resource["sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    assert resource == {
        "account_sid": TWILIO_SID,
        "api_version": "2010-04-01",
        "body": "Your order #1001 shipped",
        "date_created": "Fri, 14 Mar 2025 09:26:53 +0000",
        "date_sent": None,
        "date_updated": "Fri, 14 Mar 2025 09:26:53 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+15005550006",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}/Media.json"
        },
        "to": "+447911123456",
        "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json",
    }
    # And exactly that message is captured
    [captured] = store.list()
    assert captured == CapturedMessage(
        id=captured.id,
        channel="sms",
        to="+447911123456",
        sender="+15005550006",
        body="Your order #1001 shipped",
        provider_message_id=sid,
        captured_at=clock.now,
    )
    assert store.received_count("sms") == 1


@pytest.mark.parametrize(
    ("kwargs"),
    [
        pytest.param({"auth": (TWILIO_SID, "wrong-token")}, id="wrong_token_case"),
        pytest.param({"auth": ("AC" + "f" * 32, TWILIO_TOKEN)}, id="wrong_username_case"),
        pytest.param(
            {"url": "/twilio/2010-04-01/Accounts/ACffffffffffffffffffffffffffffffff/Messages.json"},
            id="path_sid_of_another_account_case",
        ),
        pytest.param({"auth": None}, id="no_credentials_case"),
        pytest.param(
            {"auth": None, "headers": {"Authorization": f"Bearer {TWILIO_TOKEN}"}},
            id="bearer_scheme_case",
        ),
        pytest.param(
            {"auth": None, "headers": {"Authorization": "Basic !!not-base64!!"}},
            id="garbled_basic_case",
        ),
    ],
)
async def test_wrong_auth_is_refused_and_nothing_captured(
    client: httpx2.AsyncClient, store: SandboxStore, kwargs: dict[str, Any]
) -> None:
    response = await _send(client, **kwargs)

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert store.list() == []
    assert store.received_count("sms") == 0


@pytest.mark.parametrize(
    ("form", "code"),
    [
        pytest.param({"From": "+15005550006", "Body": "hi"}, 21604, id="missing_to_case"),
        pytest.param({"To": "", "From": "+15005550006", "Body": "hi"}, 21604, id="empty_to_case"),
        pytest.param(
            {"To": "07700900123", "From": "+15005550006", "Body": "hi"},
            21211,
            id="national_to_case",
        ),
        pytest.param(
            {"To": "+0447700900", "From": "+15005550006", "Body": "hi"}, 21211, id="leading_0_case"
        ),
        pytest.param(
            {"To": "+1 415 555 0100", "From": "+15005550006", "Body": "hi"}, 21211, id="spaces_case"
        ),
        pytest.param({"To": "+447911123456", "Body": "hi"}, 21603, id="missing_from_case"),
        pytest.param({"To": "+447911123456", "From": "+15005550006"}, 21602, id="no_body_case"),
        pytest.param(
            {"To": "+447911123456", "From": "+15005550006", "Body": ""}, 21602, id="empty_body_case"
        ),
        pytest.param(
            {"To": "+447911123456", "From": "+15005550006", "Body": "x" * 1601},
            21617,
            id="body_over_1600_case",
        ),
    ],
)
async def test_malformed_request_is_refused_and_nothing_captured(
    client: httpx2.AsyncClient, store: SandboxStore, form: dict[str, str], code: int
) -> None:
    response = await _send(client, form)

    assert response.status_code == 400
    error = response.json()
    assert error["code"] == code
    assert error["status"] == 400
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert store.list() == []


async def test_json_body_is_not_read_as_a_form(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await client.post(URL, json=VALID_FORM, auth=AUTH)

    assert response.status_code == 400
    assert response.json()["code"] == 21604
    assert store.list() == []


@pytest.mark.parametrize(
    "sender",
    [
        pytest.param({"MessagingServiceSid": "MG" + "a" * 32}, id="messaging_service_sid_case"),
        pytest.param({"From": "MG" + "a" * 32}, id="from_case"),
    ],
)
async def test_a_messaging_service_sends_from_a_number_of_its_pool(
    client: httpx2.AsyncClient, store: SandboxStore, sender: dict[str, str]
) -> None:
    """As Twilio does: the service is named, accepted, and the number is picked later."""
    form = {"To": "+447911123456", "Body": "hi"} | sender

    response = await _send(client, form)

    assert response.status_code == 201
    assert (response.json()["messaging_service_sid"], response.json()["from"]) == (
        "MG" + "a" * 32,
        None,
    )
    assert response.json()["status"] == "accepted"
    assert [message.sender for message in store.list()] == ["+15005550006"]


async def test_a_messaging_service_with_no_number_is_refused_and_nothing_captured(
    app: Starlette, client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    numberless = "AC" + "d" * 32
    app.state.sandbox_accounts.add_twilio(numberless, "numberless-token", "")
    form = {"To": "+447911123456", "MessagingServiceSid": "MG" + "a" * 32, "Body": "hi"}

    response = await _send(
        client,
        form,
        url=f"/twilio/2010-04-01/Accounts/{numberless}/Messages.json",
        auth=(numberless, "numberless-token"),
    )

    assert (response.status_code, response.json()["code"]) == (400, 21704)
    assert store.list() == []


async def test_injected_503_fails_once_then_succeeds(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("sms", 503)

    failed = await _send(client)
    succeeded = await _send(client)

    assert failed.status_code == 503
    assert failed.json() == {
        "code": 20503,
        "message": "Service Unavailable",
        "more_info": "https://www.twilio.com/docs/errors/20503",
        "status": 503,
    }
    assert succeeded.status_code == 201
    assert [message.provider_message_id for message in store.list()] == [succeeded.json()["sid"]]
    assert store.received_count("sms") == 1


async def test_injected_429_carries_retry_after(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("sms", 429, count=2)

    responses = [await _send(client) for _ in range(3)]

    assert [response.status_code for response in responses] == [429, 429, 201]
    assert responses[0].headers["Retry-After"] == "1"
    assert responses[0].json()["code"] == 20429
    assert store.received_count("sms") == 1


async def test_an_injected_401_answers_as_twilio_refuses_a_revoked_token(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("sms", 401)

    refused = await _send(client)

    assert refused.status_code == 401
    assert refused.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert store.list() == []


async def test_fault_until_cleared(client: httpx2.AsyncClient, store: SandboxStore) -> None:
    store.inject_fault("sms", 500, count=-1)

    statuses = [(await _send(client)).status_code for _ in range(4)]
    store.clear_faults()
    after = await _send(client)

    assert statuses == [500, 500, 500, 500]
    assert after.status_code == 201
    assert store.received_count("sms") == 1


async def test_fault_on_another_channel_does_not_touch_sms(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("whatsapp", 503)

    response = await _send(client)

    assert response.status_code == 201
    assert len(store.faults()) == 1


async def test_fault_delay_holds_the_answer(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    store.inject_fault("sms", 504, delay_seconds=0.2)

    started = time.monotonic()
    response = await _send(client)
    elapsed = time.monotonic() - started

    assert response.status_code == 504
    assert elapsed >= 0.2
    assert store.list() == []


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        pytest.param("a" * 160, 1, id="gsm_single_case"),
        pytest.param("a" * 161, 2, id="gsm_two_case"),
        pytest.param("a" * 306, 2, id="gsm_two_full_case"),
        pytest.param("a" * 307, 3, id="gsm_three_case"),
        pytest.param("€" * 80, 1, id="extension_chars_count_twice_case"),
        pytest.param("€" * 81, 2, id="extension_overflow_case"),
        pytest.param("ł" * 70, 1, id="ucs2_single_case"),
        pytest.param("ł" * 71, 2, id="ucs2_two_case"),
        pytest.param("a" * 69 + "😀", 2, id="astral_takes_two_units_case"),
    ],
)
def test_segments(body: str, segments: int) -> None:
    assert count_segments(body) == segments


async def test_segment_count_in_resource(client: httpx2.AsyncClient) -> None:
    form = {**VALID_FORM, "Body": "Zażółć gęślą jaźń " * 5}

    response = await _send(client, form)

    assert response.json()["num_segments"] == "2"


ACCOUNT_URL = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}"


async def test_the_account_and_its_number_are_read_with_its_credentials_only(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    account = await client.get(f"{ACCOUNT_URL}.json", auth=AUTH)
    numbers = await client.get(f"{ACCOUNT_URL}/IncomingPhoneNumbers.json", auth=AUTH)
    other = await client.get(
        f"{ACCOUNT_URL}/IncomingPhoneNumbers.json",
        params={"PhoneNumber": "+15551234567"},
        auth=AUTH,
    )
    refused = await client.get(f"{ACCOUNT_URL}.json", auth=(TWILIO_SID, "wrong"))

    assert (account.status_code, account.json()["sid"], account.json()["status"]) == (
        200,
        TWILIO_SID,
        "active",
    )
    [number] = numbers.json()["incoming_phone_numbers"]
    assert number["account_sid"] == TWILIO_SID
    assert other.json()["incoming_phone_numbers"] == []
    assert (refused.status_code, refused.json()["code"]) == (401, 20003)
    assert store.list() == []


@pytest.mark.parametrize(
    "sender",
    [
        pytest.param({"From": "+15005551000"}, id="another_accounts_number_case"),
        pytest.param({"From": "+447700900123"}, id="nobodys_number_case"),
        pytest.param(
            {"MessagingServiceSid": "MG" + "a" * 32, "From": "+15005551000"},
            id="service_with_a_number_outside_its_pool_case",
        ),
    ],
)
async def test_a_from_number_the_account_does_not_own_is_refused_and_nothing_captured(
    app: Starlette, client: httpx2.AsyncClient, store: SandboxStore, sender: dict[str, str]
) -> None:
    """As Twilio refuses it (21606): a send through the deployment's account from a
    store's own number, say, must fail here as it would in production."""
    # Given another account owning +15005551000
    app.state.sandbox_accounts.add_twilio("AC" + "e" * 32, "other-token", "+15005551000")

    # When the deployment's account sends from a number that is not its own
    response = await _send(client, {"To": "+447911123456", "Body": "hi"} | sender)

    # Then Twilio's refusal comes back and nothing was sent
    assert response.status_code == 400
    assert response.json() == {
        "code": 21606,
        "message": f"The From phone number {sender['From']} is not a valid, SMS-capable "
        "inbound phone number or short code for your account.",
        "more_info": "https://www.twilio.com/docs/errors/21606",
        "status": 400,
    }
    assert store.list() == []
    assert store.received_count("sms") == 0


async def test_an_alphanumeric_sender_id_is_taken_as_twilio_takes_it(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await _send(client, {"To": "+447911123456", "From": "JUNIPER", "Body": "hi"})

    assert (response.status_code, response.json()["from"]) == (201, "JUNIPER")
    assert [message.sender for message in store.list()] == ["JUNIPER"]
