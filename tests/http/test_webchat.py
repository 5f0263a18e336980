"""Website chat over HTTP and WebSocket: the widget script, visitor sessions, the chat socket.

Given the demo store, a shopper's browser gets a visitor token, opens the chat socket, and
what they write lands in the inbox once; the store's replies reach the socket exactly once,
whether the reply was sent by this process (the hub rings) or another (the catch-up read).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from parley.channels.base import ChannelKind
from parley.channels.webchat.adapter import PROCESS_HUB, ChatHub, WebChat
from parley.channels.webchat.visitor import issue_token, new_visitor_id, read_token
from parley.customers.models import Customer, CustomerIdentity, IdentityKind
from parley.http import webchat
from parley.http.app import create_app
from parley.inbox import service as inbox
from parley.inbox.models import Conversation
from parley.messaging import replies
from parley.messaging.models import Author, Direction, Message, MessageStatus
from parley.runtime import Runtime
from parley.settings import get_settings
from parley.workspaces.models import Workspace
from support import all_adapters, count, customer_writes, drain, inbox_worker, rows, seed

HTTPS_URL = "https://parley.example.com"
HTTP_URL = "http://parley.local:8000"
STORE_ORIGIN = "https://juniper-and-pine.example"
XSS = "<img src=x onerror=alert(1)><script>alert('x')</script>"
WIDGET = Path(webchat.__file__).parent / "static" / "widget.js"


def build_client(db, *, public_url: str = HTTPS_URL) -> TestClient:
    settings = get_settings(database_url=db.url, embedded_worker=False, public_url=public_url)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    return TestClient(app)


@pytest.fixture
def client(db):
    seed(db)
    with build_client(db) as test_client:
        yield test_client


@pytest.fixture
def secret_key() -> str:
    return get_settings().secret_key


def visitor_token(secret_key: str, visitor_id: str | None = None, *, workspace: str = "demo"):
    return issue_token(secret_key, workspace=workspace, visitor_id=visitor_id or new_visitor_id())


class Chat:
    """One open chat socket, read with a deadline so a missing frame fails, not hangs."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    def next(self, seconds: float = 5.0) -> dict[str, Any]:
        async def receive() -> Any:
            with anyio.fail_after(seconds):
                # The test session's own queue: ``receive_json`` has no timeout.
                return await self.ws._send_rx.receive()

        message = self.ws.portal.call(receive)
        self.ws._raise_on_close(message)
        frame = json.loads(message["text"])
        self.frames.append(frame)
        return frame

    def until(self, predicate, seconds: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            frame = self.next(max(0.01, deadline - time.monotonic()))
            if predicate(frame):
                return frame

    def say(self, text: str, client_id: str) -> dict[str, Any]:
        """Send a message and return its echo."""
        self.ws.send_json({"type": "message", "id": client_id, "text": text})
        return self.until(lambda f: f["type"] == "message" and f.get("client_id") == client_id)

    def close_code(self, seconds: float = 5.0) -> int:
        """Read on until the server closes the socket; its close code."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.next(max(0.01, deadline - time.monotonic()))
            except WebSocketDisconnect as closed:
                return closed.code

    def messages(self, **match: Any) -> list[dict[str, Any]]:
        return [
            frame
            for frame in self.frames
            if frame["type"] == "message" and all(frame.get(k) == v for k, v in match.items())
        ]


def open_chat(client: TestClient, token: str | None, **headers: str):
    url = "/webchat/demo/ws" + (f"?token={token}" if token else "")
    return client.websocket_connect(url, headers=headers)


def inbound(db) -> list[Message]:
    return rows(db, Message, Message.direction == Direction.INBOUND)


def refusal_code(client: TestClient, url: str, **headers: str) -> int:
    with (
        client.websocket_connect(url, headers=headers) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    return closed.value.code


# --- the widget script ---------------------------------------------------------------------


def test_widget_js_is_served_as_a_cacheable_script(client):
    response = client.get("/widget.js")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert response.content == WIDGET.read_bytes()
    revalidated = client.get("/widget.js", headers={"If-None-Match": response.headers["etag"]})
    assert (revalidated.status_code, revalidated.content) == (304, b"")


def test_the_widget_never_parses_text_as_html():
    source = WIDGET.read_text(encoding="utf-8")

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source
    assert "new Function" not in source
    assert re.search(r'el\("div", "bubble", message\.text\)', source)
    assert "node.textContent = String(text)" in source


# --- sessions -------------------------------------------------------------------------------


def test_session_issues_a_token_and_a_cross_site_cookie_over_https(client, secret_key):
    response = client.post("/webchat/demo/session", headers={"Origin": STORE_ORIGIN})

    assert response.status_code == 200
    body = response.json()
    assert body["store"] == {"name": "Juniper & Pine"}
    assert body["expires_in"] == 365 * 24 * 3600
    assert read_token(secret_key, body["token"], workspace="demo").visitor_id.startswith("v_")
    assert response.headers["set-cookie"] == (
        f"parley_visitor={body['token']}; HttpOnly; Max-Age=31536000; "
        "Path=/webchat/demo; SameSite=none; Secure"
    )
    assert response.headers["access-control-allow-origin"] == STORE_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["vary"] == "Origin"
    assert response.headers["cache-control"] == "no-store"


def test_session_cookie_is_lax_and_not_secure_over_plain_http(db):
    seed(db)
    with build_client(db, public_url=HTTP_URL) as client:
        response = client.post("/webchat/demo/session")

    assert response.status_code == 200
    assert response.headers["set-cookie"] == (
        f"parley_visitor={response.json()['token']}; HttpOnly; Max-Age=31536000; "
        "Path=/webchat/demo; SameSite=lax"
    )
    assert "access-control-allow-origin" not in response.headers


def test_session_renews_a_valid_token_for_the_same_visitor(client, secret_key, frozen_clock):
    old = visitor_token(secret_key, "v_returning")
    frozen_clock.advance(webchat.MAX_AGE / 2)

    response = client.post("/webchat/demo/session", json={"token": old})

    renewed = read_token(secret_key, response.json()["token"], workspace="demo")
    assert (renewed.visitor_id, renewed.issued_at) == ("v_returning", frozen_clock.now)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            lambda key: visitor_token(key, "v_other", workspace="other"), id="other_store_case"
        ),
        pytest.param(lambda key: "forged." + visitor_token(key, "v_x"), id="forged_case"),
    ],
)
def test_session_starts_a_new_visitor_for_a_token_it_cannot_renew(client, secret_key, token):
    response = client.post("/webchat/demo/session", json={"token": token(secret_key)})

    visitor = read_token(secret_key, response.json()["token"], workspace="demo")
    assert visitor.visitor_id not in ("v_other", "v_x")


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(STORE_ORIGIN, id="store_site_case"),
        pytest.param(
            "https://JUNIPER-and-pine.example:443", id="store_site_spelled_otherwise_case"
        ),
        pytest.param(HTTPS_URL, id="parley_public_url_case"),
        pytest.param("http://testserver", id="served_by_parley_itself_case"),
    ],
)
def test_session_and_preflight_allow_the_stores_own_origins(client, origin):
    preflight = client.options(
        "/webchat/demo/session",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    response = client.post("/webchat/demo/session", json={}, headers={"Origin": origin})

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert preflight.headers["access-control-allow-headers"] == "Content-Type"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("https://evil.example", id="other_site_case"),
        pytest.param("http://juniper-and-pine.example", id="store_site_without_tls_case"),
        pytest.param("https://juniper-and-pine.example.evil.example", id="lookalike_case"),
        pytest.param("null", id="opaque_origin_case"),
    ],
)
def test_session_refuses_other_origins_and_issues_nothing(client, origin):
    preflight = client.options(
        "/webchat/demo/session",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    response = client.post("/webchat/demo/session", headers={"Origin": origin})

    for refused in (preflight, response):
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        assert "set-cookie" not in refused.headers
    assert response.json() == {"error": "this site may not open the chat"}


def test_session_for_an_unknown_workspace_is_404(client):
    response = client.post("/webchat/nope/session", headers={"Origin": STORE_ORIGIN})

    assert response.status_code == 404
    assert "set-cookie" not in response.headers
    assert "access-control-allow-origin" not in response.headers


def test_new_visitors_are_rate_limited_per_address_but_renewals_are_not(client, secret_key):
    minted = []
    for _ in range(20):
        client.cookies.clear()
        minted.append(client.post("/webchat/demo/session").status_code)

    client.cookies.clear()
    refused = client.post("/webchat/demo/session")
    renewed = client.post("/webchat/demo/session", json={"token": visitor_token(secret_key)})

    assert minted == [200] * 20
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 3
    assert "set-cookie" not in refused.headers
    assert renewed.status_code == 200


def test_a_token_bucket_allows_a_burst_then_one_per_interval():
    bucket = webchat.TokenBucket(capacity=2, per_second=0.5)

    waits = [bucket.take("1.2.3.4", 100.0) for _ in range(3)]

    assert waits == [0.0, 0.0, 2.0]
    assert bucket.take("5.6.7.8", 100.0) == 0.0
    assert bucket.take("1.2.3.4", 101.0) == 1.0
    assert bucket.take("1.2.3.4", 102.0) == 0.0


# --- the chat socket: who may open it ------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda key: None, id="no_token_case"),
        pytest.param(lambda key: "garbage", id="garbage_case"),
        pytest.param(lambda key: visitor_token("another-key"), id="other_key_case"),
        pytest.param(lambda key: visitor_token(key, workspace="other"), id="other_store_case"),
    ],
)
def test_socket_refuses_a_missing_or_bad_token_and_writes_nothing(client, db, secret_key, token):
    customers_before = count(db, Customer)
    url = "/webchat/demo/ws" + (f"?token={t}" if (t := token(secret_key)) else "")

    with client.websocket_connect(url) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        ws.send_json({"type": "message", "id": "c1", "text": "let me in"})

    assert closed.value.code == 4401
    assert (count(db, Customer), count(db, Message)) == (customers_before, 0)


def test_socket_refuses_an_origin_the_store_does_not_use(client, db, secret_key):
    token = visitor_token(secret_key)

    code = refusal_code(client, f"/webchat/demo/ws?token={token}", origin="https://evil.example")

    assert code == 4403
    assert count(db, Message) == 0


def test_socket_for_an_unknown_workspace_closes_4404(client, secret_key):
    token = visitor_token(secret_key, workspace="nope")

    assert refusal_code(client, f"/webchat/nope/ws?token={token}") == 4404


def test_the_session_cookie_alone_opens_the_socket(db):
    seed(db)
    with build_client(db, public_url=HTTP_URL) as client:
        client.post("/webchat/demo/session")
        with open_chat(client, None) as ws:
            assert Chat(ws).next() == {"type": "history", "messages": []}


# --- the chat socket: what the visitor writes -----------------------------------------------


def test_a_message_lands_in_a_webchat_conversation_and_is_echoed_once(client, db, secret_key):
    visitor_id = new_visitor_id()
    with open_chat(client, visitor_token(secret_key, visitor_id), origin=STORE_ORIGIN) as ws:
        chat = Chat(ws)
        assert chat.next() == {"type": "history", "messages": []}

        echo = chat.say("Where is my order?", "c-1")
        ws.send_json({"type": "message", "id": "c-1", "text": "Where is my order?"})
        chat.say("Thanks!", "c-2")

    [first, second] = inbound(db)
    assert (first.channel, first.sender, first.body, first.author) == (
        "webchat",
        visitor_id,
        "Where is my order?",
        "customer",
    )
    assert first.provider_message_id == f"{visitor_id}:c-1"
    assert first.conversation_id is not None
    assert second.conversation_id == first.conversation_id
    [conversation] = rows(db, Conversation)
    assert conversation.channel == "webchat"
    assert echo == {
        "type": "message",
        "id": first.id,
        "direction": "inbound",
        "author": "customer",
        "text": "Where is my order?",
        "created_at": first.created_at.isoformat(),
        "client_id": "c-1",
    }
    assert [f["client_id"] for f in chat.messages()] == ["c-1", "c-2"]


def test_an_xss_payload_is_stored_and_echoed_verbatim(client, db, secret_key):
    with open_chat(client, visitor_token(secret_key)) as ws:
        chat = Chat(ws)
        chat.next()
        echo = chat.say(XSS, "c-xss")

    [message] = inbound(db)
    assert message.body == XSS
    assert echo["text"] == XSS


def test_bad_frames_get_an_error_and_the_socket_stays_open(client, db, secret_key):
    with open_chat(client, visitor_token(secret_key)) as ws:
        chat = Chat(ws)
        chat.next()
        ws.send_text("hello?")
        ws.send_json({"type": "message", "id": "c-long", "text": "x" * 4001})
        ws.send_bytes(b"\x00")
        errors = [chat.next() for _ in range(3)]
        chat.say("still here", "c-ok")

    assert errors == [
        {"type": "error", "reason": "frames are JSON text"},
        {"type": "error", "reason": "a message is at most 4000 characters", "id": "c-long"},
        {"type": "error", "reason": "frames are JSON text"},
    ]
    assert [m.body for m in inbound(db)] == ["still here"]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        pytest.param(
            '{"type": "message", "id": "c-bad", "text": "a\\u0000b"}',
            "a message cannot contain a NUL character or a lone surrogate",
            id="nul_in_text_case",
        ),
        pytest.param(
            '{"type": "message", "id": "c-bad", "text": "a\\ud800b"}',
            "a message cannot contain a NUL character or a lone surrogate",
            id="lone_surrogate_in_text_case",
        ),
    ],
)
def test_text_no_database_can_store_gets_an_error_and_the_socket_stays_open(
    client, db, secret_key, frame, reason
):
    with open_chat(client, visitor_token(secret_key)) as ws:
        chat = Chat(ws)
        chat.next()
        ws.send_text(frame)
        error = chat.next()
        chat.say("still here", "c-ok")

    assert error == {"type": "error", "reason": reason, "id": "c-bad"}
    assert [m.body for m in inbound(db)] == ["still here"]


def test_an_email_no_database_can_store_gets_an_error_and_links_nothing(client, db, secret_key):
    with open_chat(client, visitor_token(secret_key)) as ws:
        chat = Chat(ws)
        chat.next()
        ws.send_text('{"type": "identify", "email": "ada\\u0000@example.com"}')
        error = chat.next()
        chat.say("still here", "c-ok")

    assert error == {"type": "error", "reason": "identify needs an email address"}
    assert count(db, CustomerIdentity, CustomerIdentity.kind == IdentityKind.WEBCHAT) == 1


def test_a_flood_of_frames_closes_the_socket(client, db, secret_key):
    with open_chat(client, visitor_token(secret_key)) as ws:
        chat = Chat(ws)
        chat.next()
        for number in range(21):
            ws.send_json({"type": "message", "id": f"c{number}", "text": f"spam {number}"})
        code = chat.close_code()

    assert code == 1008
    assert len(chat.messages(direction="inbound")) <= 20
    assert count(db, Message) == 20


def test_the_flood_limit_holds_for_the_visitor_across_reconnects(client, db, secret_key):
    token = visitor_token(secret_key)
    with open_chat(client, token) as ws:
        chat = Chat(ws)
        chat.next()
        for number in range(20):
            ws.send_json({"type": "message", "id": f"c{number}", "text": f"spam {number}"})
        chat.until(lambda f: f["type"] == "message" and f["client_id"] == "c19")

    with open_chat(client, token) as ws:
        chat = Chat(ws)
        chat.next()
        ws.send_json({"type": "message", "id": "c20", "text": "spam 20"})
        code = chat.close_code()

    assert code == 1008
    assert chat.messages(direction="inbound") == []
    assert count(db, Message) == 20


def test_the_flood_limit_holds_for_the_visitor_across_open_sockets(client, db, secret_key):
    token = visitor_token(secret_key)
    with open_chat(client, token) as first, open_chat(client, token) as second:
        chats = [Chat(first), Chat(second)]
        for chat in chats:
            chat.next()
        for number in range(10):
            first.send_json({"type": "message", "id": f"a{number}", "text": f"spam {number}"})
        chats[0].until(lambda f: f["type"] == "message" and f["client_id"] == "a9")
        for number in range(11):
            second.send_json({"type": "message", "id": f"b{number}", "text": f"spam {number}"})
        code = chats[1].close_code()

    assert code == 1008
    assert count(db, Message) == 20


def test_history_is_the_visitors_last_50_webchat_messages_oldest_first(client, db, secret_key):
    visitor_id = new_visitor_id()
    for number in range(52):
        customer_writes(db, channel=ChannelKind.WEBCHAT, sender=visitor_id, text=f"m{number}")
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender=new_visitor_id(), text="someone else")

    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        history = Chat(ws).next()

    texts = [message["text"] for message in history["messages"]]
    assert texts == [f"m{number}" for number in range(2, 52)]
    assert {m["direction"] for m in history["messages"]} == {"inbound"}


def test_identify_with_a_known_email_links_the_visitor_to_that_customer(client, db, secret_key):
    visitor_id = new_visitor_id()
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        chat = Chat(ws)
        chat.next()
        chat.say("hi, it's me", "c-1")
        ws.send_json({"type": "identify", "email": "Ada@Example.com"})
        identified = chat.next()

    [ada] = rows(db, Customer, Customer.email == "ada@example.com")
    [identity] = rows(
        db,
        CustomerIdentity,
        CustomerIdentity.kind == IdentityKind.WEBCHAT,
        CustomerIdentity.value == visitor_id,
    )
    assert identified == {"type": "identified"}
    assert identity.customer_id == ada.id
    assert [m.customer_id for m in inbound(db)] == [ada.id]


def test_identify_with_a_malformed_email_links_nothing(client, db, secret_key):
    with open_chat(client, visitor_token(secret_key)) as ws:
        chat = Chat(ws)
        chat.next()
        ws.send_json({"type": "identify", "email": "not an email"})
        answer = chat.next()

    assert answer == {"type": "error", "reason": "that email address could not be used"}
    assert count(db, CustomerIdentity, CustomerIdentity.kind == IdentityKind.WEBCHAT) == 0


def test_an_identified_visitor_sees_only_the_chat_not_the_customers_other_messages(
    client, db, secret_key
):
    visitor_id = new_visitor_id()
    customer_writes(db, channel=ChannelKind.EMAIL, sender="ada@example.com", text="my address")
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        chat = Chat(ws)
        chat.next()
        chat.say("hello from the site", "c-1")
        ws.send_json({"type": "identify", "email": "ada@example.com"})
        chat.until(lambda f: f["type"] == "identified")

    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        history = Chat(ws).next()

    assert [m["text"] for m in history["messages"]] == ["hello from the site"]


def test_a_closed_socket_leaves_the_hub(client, secret_key):
    visitor_id = new_visitor_id()
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        Chat(ws).next()
        assert PROCESS_HUB.listeners(visitor_id) == 1

    deadline = time.monotonic() + 5
    while PROCESS_HUB.listeners(visitor_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert PROCESS_HUB.listeners(visitor_id) == 0


# --- the chat socket: what the store sends ---------------------------------------------------


def agent_replies(db, visitor_id: str, text: str, *, key: str) -> int:
    """An agent takes the visitor's conversation and queues a reply; the reply's row id."""
    with db.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "demo"))
        conversation = session.scalar(
            select(Conversation)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.sender == visitor_id)
        )
        assert workspace is not None
        assert conversation is not None
        inbox.hand_off(
            session,
            workspace_id=workspace.id,
            conversation_id=conversation.id,
            reason="agent answered",
            actor="agent",
        )
        return replies.queue_reply(
            session,
            workspace=workspace,
            conversation=conversation,
            text=text,
            author=Author.AGENT,
            idempotency_key=key,
        ).id


def deliver(db, tmp_path, hub: ChatHub) -> None:
    adapters = {**all_adapters(), ChannelKind.WEBCHAT: WebChat(hub=hub)}
    drain(inbox_worker(db, adapters, tmp_model_dir=tmp_path))


def test_a_reply_sent_here_reaches_the_socket_at_once_and_exactly_once(
    client, db, secret_key, tmp_path, monkeypatch
):
    # No catch-up read within the test: only the hub's ring can bring the reply.
    monkeypatch.setattr(webchat, "CATCH_UP_SECONDS", 60.0)
    visitor_id = new_visitor_id()
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        chat = Chat(ws)
        chat.next()
        chat.say("Can a person help?", "c-1")
        reply_id = agent_replies(db, visitor_id, "Hi, Sam here <3", key="agent-reply-1")

        deliver(db, tmp_path, PROCESS_HUB)
        reply = chat.until(lambda f: f["type"] == "message" and f["direction"] == "outbound")
        chat.say("Thank you", "c-2")

    [stored] = rows(db, Message, Message.id == reply_id)
    assert (stored.status, stored.recipient, stored.channel) == (
        MessageStatus.SENT,
        visitor_id,
        "webchat",
    )
    assert stored.provider_message_id == f"parley-{stored.workspace_id}-{reply_id}"
    assert reply == {
        "type": "message",
        "id": reply_id,
        "direction": "outbound",
        "author": "agent",
        "text": "Hi, Sam here <3",
        "created_at": stored.created_at.isoformat(),
        "client_id": None,
    }
    assert [f["id"] for f in chat.messages(direction="outbound")] == [reply_id]


def test_a_reply_sent_by_another_process_arrives_by_catch_up_exactly_once(
    client, db, secret_key, tmp_path, monkeypatch
):
    monkeypatch.setattr(webchat, "CATCH_UP_SECONDS", 0.05)
    visitor_id = new_visitor_id()
    another_process = ChatHub()
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        chat = Chat(ws)
        chat.next()
        chat.say("Anyone there?", "c-1")
        reply_id = agent_replies(db, visitor_id, "Yes, how can I help?", key="agent-reply-2")

        deliver(db, tmp_path, another_process)
        chat.until(lambda f: f["type"] == "message" and f["direction"] == "outbound")
        time.sleep(0.3)  # several more catch-up reads, each seeing the reply again
        chat.say("My parcel is late", "c-2")

    assert [f["id"] for f in chat.messages(direction="outbound")] == [reply_id]
    assert [f["client_id"] for f in chat.messages(direction="inbound")] == ["c-1", "c-2"]


def test_the_assistant_answers_on_the_socket(client, db, secret_key, tmp_path, monkeypatch):
    monkeypatch.setattr(webchat, "CATCH_UP_SECONDS", 60.0)
    visitor_id = new_visitor_id()
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        chat = Chat(ws)
        chat.next()
        chat.say("hello", "c-1")

        deliver(db, tmp_path, PROCESS_HUB)
        answer = chat.until(lambda f: f["type"] == "message" and f["direction"] == "outbound")

    [stored] = rows(db, Message, Message.direction == Direction.OUTBOUND)
    assert (answer["id"], answer["author"], answer["text"]) == (
        stored.id,
        "assistant",
        stored.body,
    )
    assert stored.recipient == visitor_id


def test_a_queued_reply_is_not_shown_until_it_is_sent(client, db, secret_key, monkeypatch):
    monkeypatch.setattr(webchat, "CATCH_UP_SECONDS", 0.05)
    visitor_id = new_visitor_id()
    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        chat = Chat(ws)
        chat.next()
        chat.say("hi", "c-1")
        agent_replies(db, visitor_id, "not yet", key="agent-reply-3")
        time.sleep(0.3)
        chat.say("still there?", "c-2")

    with open_chat(client, visitor_token(secret_key, visitor_id)) as ws:
        history = Chat(ws).next()

    assert chat.messages(direction="outbound") == []
    assert [m["text"] for m in history["messages"]] == ["hi", "still there?"]


# --- the demo storefront --------------------------------------------------------------------


def test_the_demo_store_carries_the_widget_under_a_strict_policy(db):
    settings = get_settings(database_url=db.url, sandbox=True, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))

    response = TestClient(app).get("/demo/store")

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert policy == (
        "default-src 'none'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'nonce-{nonce}'; "
        "connect-src 'self' ws://testserver wss://testserver; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )
    page = response.text
    assert re.findall(r"<script[^>]*>", page) == [
        f'<script src="/widget.js" data-workspace="demo" nonce="{nonce}" async>'
    ]
    assert "Juniper &amp; Pine" in page
    for title in ("Merino Crew Sweater", "Linen Camp Shirt", "Trail Runner 2"):
        assert f"<h3>{title}</h3>" in page
    assert "__" not in page


def test_the_demo_store_exists_only_in_the_sandbox(client):
    assert client.get("/demo/store").status_code == 404
