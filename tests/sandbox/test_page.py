"""The sandbox page and its JSON API: security headers, no external resources, listing,
filters, clearing, the faults API, and the app working under a mount prefix."""

from __future__ import annotations

import re

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from parley.clock import FrozenClock
from parley.demo.seed import SHOPPERS
from parley.sandbox.store import CapturedMessage, SandboxStore

pytestmark = pytest.mark.anyio

XSS = "<img src=x onerror=alert(1)>"


def _capture(store: SandboxStore, channel: str, to: str, body: str = "hello") -> CapturedMessage:
    message = CapturedMessage(channel=channel, to=to, sender="+15005550006", body=body)
    store.add(message)
    return message


async def test_page_has_security_headers(client: httpx2.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    directives = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["base-uri"] == "'none'"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{16,})'", directives["script-src"])
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in response.text
    assert "__CSP_NONCE__" not in response.text


async def test_each_page_gets_a_fresh_nonce(client: httpx2.AsyncClient) -> None:
    first = (await client.get("/")).headers["content-security-policy"]
    second = (await client.get("/")).headers["content-security-policy"]

    assert first != second


async def test_page_loads_nothing_from_elsewhere(client: httpx2.AsyncClient) -> None:
    html = (await client.get("/")).text

    assert "http://" not in html
    assert "https://" not in html
    assert not re.search(r"""(src|href|action)\s*=\s*["']?//""", html)
    assert "<link" not in html
    assert "@import" not in html
    assert "url(" not in html


async def test_page_renders_customer_content_as_text_only(client: httpx2.AsyncClient) -> None:
    html = (await client.get("/")).text

    assert "innerHTML" not in html
    assert "outerHTML" not in html
    assert "insertAdjacentHTML" not in html
    assert "document.write" not in html
    assert "textContent" in html
    assert 'frame.setAttribute("sandbox", "")' in html
    # The poller's URL is relative to the mount point, never absolute.
    assert '"api/messages"' in html
    assert "/sandbox/" not in html


async def test_page_has_the_customer_composer(client: httpx2.AsyncClient) -> None:
    html = (await client.get("/")).text

    # It posts JSON to the composer, relative to the mount point like the poller.
    assert '"api/inbound"' in html
    assert '"Content-Type": "application/json"' in html
    for channel in ('value="whatsapp"', 'value="sms"', 'value="instagram"', 'value="email"'):
        assert channel in html
    # The demo shoppers are the customers it writes as, with their seeded addresses.
    for shopper in SHOPPERS:
        assert f'from: "{shopper.email}"' in html
        if shopper.phone is not None:
            assert f'from: "{shopper.phone}"' in html
    assert 'id="count-instagram"' in html


async def test_page_has_the_sign_up_form(client: httpx2.AsyncClient) -> None:
    html = (await client.get("/")).text

    # It posts JSON to the sign-up endpoints, relative to the mount point like the poller,
    # and shows what comes back as text only (the rendering test above covers that).
    assert 'id="signup"' in html
    assert '"api/accounts/"' in html
    assert "fetch(signUpUrl + provider, {" in html
    assert '<option value="twilio">' in html
    assert '<option value="whatsapp">WhatsApp Cloud</option>' in html
    assert '<input id="signup-secret" type="text" maxlength="4096"' in html


async def test_listing_is_oldest_first_with_exact_fields(
    client: httpx2.AsyncClient, store: SandboxStore, clock: FrozenClock
) -> None:
    first = _capture(store, "sms", "+447911123456", "first")
    second = _capture(store, "whatsapp", "447911123456", "second")

    response = await client.get("/api/messages")

    assert response.status_code == 200
    assert response.json() == {
        "messages": [
            {
                "id": first.id,
                "channel": "sms",
                "to": "+447911123456",
                "sender": "+15005550006",
                "body": "first",
                "subject": None,
                "html": None,
                "template": None,
                "provider_message_id": None,
                "headers": {},
                "captured_at": "2025-03-14T09:26:53+00:00",
                "direction": "outbound",
            },
            {
                "id": second.id,
                "channel": "whatsapp",
                "to": "447911123456",
                "sender": "+15005550006",
                "body": "second",
                "subject": None,
                "html": None,
                "template": None,
                "provider_message_id": None,
                "headers": {},
                "captured_at": "2025-03-14T09:26:53+00:00",
                "direction": "outbound",
            },
        ]
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("?channel=sms", ["a-sms", "b-sms"], id="channel_case"),
        pytest.param("?to=%2B447911123456", ["a-sms", "a-email"], id="to_case"),
        pytest.param("?channel=sms&to=%2B15551234567", ["b-sms"], id="both_case"),
        pytest.param("?channel=whatsapp", [], id="nothing_matches_case"),
        pytest.param("?limit=2", ["b-sms", "a-email"], id="limit_keeps_newest_case"),
        pytest.param("", ["a-sms", "b-sms", "a-email"], id="no_filter_case"),
    ],
)
async def test_listing_filters(
    client: httpx2.AsyncClient, store: SandboxStore, query: str, expected: list[str]
) -> None:
    _capture(store, "sms", "+447911123456", "a-sms")
    _capture(store, "sms", "+15551234567", "b-sms")
    _capture(store, "email", "+447911123456", "a-email")

    response = await client.get("/api/messages" + query)

    assert [message["body"] for message in response.json()["messages"]] == expected


@pytest.mark.parametrize("query", ["?channel=fax", "?limit=0", "?limit=many"])
async def test_listing_refuses_bad_queries(client: httpx2.AsyncClient, query: str) -> None:
    response = await client.get("/api/messages" + query)

    assert response.status_code == 400
    assert response.json()["error"]


async def test_markup_in_a_body_is_returned_verbatim_as_data(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    # Given a message whose body looks like HTML, accepted through the Twilio stand-in
    response = await client.post(
        "/twilio/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        data={"To": "+447911123456", "From": "+15005550006", "Body": XSS},
        auth=("AC0123456789abcdef0123456789abcdef", "twilio-secret-token"),
    )
    assert response.status_code == 201

    # When the page's poller reads it
    listing = await client.get("/api/messages")

    # Then it is JSON data, character for character, never markup
    assert listing.headers["content-type"] == "application/json"
    assert listing.json()["messages"][0]["body"] == XSS


async def test_delete_clears_messages_and_counts(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    _capture(store, "sms", "+447911123456")

    response = await client.delete("/api/messages")

    assert response.status_code == 204
    assert store.list() == []
    assert store.received_count("sms") == 0
    assert (await client.get("/api/messages")).json() == {"messages": []}


async def test_faults_api_injects_lists_and_clears(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    injected = await client.post(
        "/api/faults", json={"channel": "sms", "status": 503, "count": 2, "delay_seconds": 0}
    )
    listed = await client.get("/api/faults")
    cleared = await client.delete("/api/faults")

    assert injected.status_code == 201
    assert injected.json() == {
        "fault": {"channel": "sms", "status": 503, "count": 2, "delay_seconds": 0.0}
    }
    assert listed.json() == {
        "faults": [{"channel": "sms", "status": 503, "count": 2, "delay_seconds": 0.0}]
    }
    assert cleared.status_code == 204
    assert store.faults() == []


async def test_injected_fault_applies_to_the_provider_route(
    client: httpx2.AsyncClient, store: SandboxStore
) -> None:
    await client.post("/api/faults", json={"channel": "whatsapp", "status": 500})

    response = await client.post(
        "/whatsapp/v21.0/106540352242922/messages",
        json={"messaging_product": "whatsapp", "to": "447911123456", "text": {"body": "hi"}},
        headers={"Authorization": "Bearer EAAG-sandbox-test-token"},
    )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == 131016
    assert store.list() == []


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"channel": "fax", "status": 503}, id="unknown_channel_case"),
        pytest.param({"channel": "sms", "status": 200}, id="success_status_case"),
        pytest.param({"channel": "sms", "status": "503"}, id="string_status_case"),
        pytest.param({"channel": "sms", "status": 503, "count": 0}, id="zero_count_case"),
        pytest.param({"channel": "sms", "status": 503, "delay_seconds": -1}, id="negative_delay"),
        pytest.param(["sms", 503], id="not_an_object_case"),
    ],
)
async def test_faults_api_refuses_bad_faults(
    client: httpx2.AsyncClient, store: SandboxStore, payload: object
) -> None:
    response = await client.post("/api/faults", json=payload)

    assert response.status_code == 400
    assert response.json()["error"]
    assert store.faults() == []


async def test_works_under_a_mount_prefix(app: Starlette, store: SandboxStore) -> None:
    # Given the sandbox mounted the way parley's server mounts it
    server = Starlette(routes=[Mount("/sandbox", app=app)])
    transport = httpx2.ASGITransport(app=server)
    async with httpx2.AsyncClient(transport=transport, base_url="http://parley.test") as client:
        # When an adapter posts to its base URL plus the provider's own path
        sent = await client.post(
            "/sandbox/twilio/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
            data={"To": "+447911123456", "From": "+15005550006", "Body": "hi"},
            auth=("AC0123456789abcdef0123456789abcdef", "twilio-secret-token"),
        )
        page = await client.get("/sandbox/")
        listing = await client.get("/sandbox/api/messages")

    # Then the route, the page and the page's relative API all resolve under the prefix
    assert sent.status_code == 201
    assert page.status_code == 200
    assert [message["body"] for message in listing.json()["messages"]] == ["hi"]
    assert store.received_count("sms") == 1
