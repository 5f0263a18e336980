"""The Instagram Send API stand-in: bearer auth, the account id, DMs, private replies, the
HUMAN_AGENT tag, Graph-shaped errors and faults; and parley's real Instagram adapter
talking to it in-process."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from tests.sandbox.conftest import INSTAGRAM_ACCOUNT_ID, INSTAGRAM_TOKEN, NOW

from parley.channels.base import OutboundMessage, TransientChannelError
from parley.channels.instagram.adapter import Instagram
from parley.clock import FrozenClock
from parley.sandbox.store import CapturedMessage, SandboxStore

pytestmark = pytest.mark.anyio

URL = f"/instagram/v21.0/{INSTAGRAM_ACCOUNT_ID}/messages"
AUTH = {"Authorization": f"Bearer {INSTAGRAM_TOKEN}"}
MID = re.compile(r"aWdf[A-Za-z0-9_-]{60,}")
CUSTOMER = "1234567890123456"
DM = {"recipient": {"id": CUSTOMER}, "message": {"text": "Yes, it ships to Spain."}}


async def _send(
    client: httpx2.AsyncClient, payload: Any = None, *, url: str = URL, **kwargs: Any
) -> httpx2.Response:
    kwargs.setdefault("headers", AUTH)
    return await client.post(url, json=DM if payload is None else payload, **kwargs)


def _assert_graph_error(response: httpx2.Response, *, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["fbtrace_id"]
    return error


async def test_dm_is_captured_and_answered_like_graph(
    client: httpx2.AsyncClient, store: SandboxStore, clock: FrozenClock
) -> None:
    response = await _send(client)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"recipient_id", "message_id"}
    assert body["recipient_id"] == CUSTOMER
    assert MID.fullmatch(body["message_id"])
    [captured] = store.list()
    assert captured == CapturedMessage(
        id=captured.id,
        channel="instagram",
        to=CUSTOMER,
        sender=INSTAGRAM_ACCOUNT_ID,
        body="Yes, it ships to Spain.",
        provider_message_id=body["message_id"],
        captured_at=NOW,
    )
    assert store.received_count("instagram") == 1


async def test_human_agent_tag_is_recorded(client: httpx2.AsyncClient, store: SandboxStore) -> None:
    payload = DM | {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}

    response = await _send(client, payload)

    assert response.status_code == 200
    assert store.list()[0].headers == {"tag": "HUMAN_AGENT"}


async def test_private_reply_is_captured_against_the_comment(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    payload = {"recipient": {"comment_id": "17865799348089039"}, "message": {"text": "DM'd you!"}}

    response = await _send(client, payload)

    assert response.status_code == 200
    assert set(response.json()) == {"message_id"}
    [captured] = store.list()
    assert captured.to == "comment:17865799348089039"
    assert captured.provider_message_id == response.json()["message_id"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no_token_case"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong_token_case"),
        pytest.param({"Authorization": f"Basic {INSTAGRAM_TOKEN}"}, id="wrong_scheme_case"),
    ],
)
async def test_bad_token_is_refused(
    client: httpx2.AsyncClient, store: SandboxStore, headers: dict[str, str]
) -> None:
    response = await _send(client, headers=headers)

    _assert_graph_error(response, status=401, code=190)
    assert store.list() == []


async def test_unknown_account_is_refused(client: httpx2.AsyncClient, store: SandboxStore) -> None:
    response = await _send(client, url="/instagram/v21.0/17841499999999999/messages")

    error = _assert_graph_error(response, status=400, code=100)
    assert error["error_subcode"] == 33
    assert store.list() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param([], "(#100) The request body must be a JSON object.", id="array_case"),
        pytest.param(
            {"message": {"text": "hi"}}, "(#100) The parameter recipient is required.", id="no_to"
        ),
        pytest.param(
            {"recipient": {"id": "1", "comment_id": "2"}, "message": {"text": "hi"}},
            "(#100) Param recipient must have exactly one of id, comment_id.",
            id="both_recipients_case",
        ),
        pytest.param(
            {"recipient": {"id": "+1555"}, "message": {"text": "hi"}},
            "(#100) Param recipient id must be a numeric string.",
            id="phone_as_recipient_case",
        ),
        pytest.param(
            {"recipient": {"id": CUSTOMER}, "message": {}},
            "(#100) The parameter message[text] is required.",
            id="no_text_case",
        ),
        pytest.param(
            {"recipient": {"id": CUSTOMER}, "message": {"text": "x" * 1001}},
            "(#100) Length of param message[text] must be less than or equal to 1000.",
            id="text_too_long_case",
        ),
        pytest.param(
            DM | {"messaging_type": "MARKETING"},
            "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}.",
            id="unknown_messaging_type_case",
        ),
        pytest.param(
            DM | {"messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE"},
            "(#100) Param tag must be HUMAN_AGENT on Instagram.",
            id="messenger_only_tag_case",
        ),
        pytest.param(
            DM | {"tag": "HUMAN_AGENT"},
            "(#100) Param tag needs messaging_type MESSAGE_TAG.",
            id="tag_without_message_tag_case",
        ),
    ],
)
async def test_invalid_requests_are_refused(
    client: httpx2.AsyncClient, store: SandboxStore, payload: Any, message: str
) -> None:
    response = await _send(client, payload)

    error = _assert_graph_error(response, status=400, code=100)
    assert error["message"] == message
    assert store.list() == []


async def test_body_that_is_not_json_is_refused(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    response = await client.post(URL, content=b"{", headers=AUTH)

    _assert_graph_error(response, status=400, code=100)
    assert store.list() == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(429, 613, id="rate_limit_case"),
        pytest.param(503, 2, id="outage_case"),
        pytest.param(401, 190, id="token_case"),
        pytest.param(400, 1, id="other_case"),
    ],
)
async def test_injected_faults_answer_like_graph(
    client: httpx2.AsyncClient, store: SandboxStore, status: int, code: int
) -> None:
    store.inject_fault("instagram", status)

    response = await _send(client)

    _assert_graph_error(response, status=status, code=code)
    assert store.list() == []
    assert store.faults() == []


def _adapter(app: Starlette) -> Instagram:
    return Instagram(
        instagram_account_id=INSTAGRAM_ACCOUNT_ID,
        access_token=INSTAGRAM_TOKEN,
        base_url="http://sandbox.test/instagram",
        api_version="v21.0",
        transport=httpx2.ASGITransport(app=app),
    )


async def test_parleys_adapter_sends_a_human_agent_dm_through_the_stand_in(
    app: Starlette, store: SandboxStore
) -> None:
    adapter = _adapter(app)
    try:
        result = await adapter.send(
            OutboundMessage(idempotency_key="d-1", to=CUSTOMER, text="Hi!", is_human_agent=True)
        )
    finally:
        await adapter.aclose()

    [captured] = store.list()
    assert result.provider_message_id == captured.provider_message_id
    assert captured.to == CUSTOMER
    assert captured.headers == {"tag": "HUMAN_AGENT"}


async def test_parleys_adapter_sees_an_outage_as_transient(
    app: Starlette, store: SandboxStore
) -> None:
    store.inject_fault("instagram", 503)
    adapter = _adapter(app)
    try:
        with pytest.raises(TransientChannelError) as caught:
            await adapter.send(OutboundMessage(idempotency_key="d-1", to=CUSTOMER, text="Hi!"))
    finally:
        await adapter.aclose()

    assert caught.value.provider_code == "2"
    assert store.list() == []
