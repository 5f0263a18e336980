"""``GET /inbox/events`` end to end: real servers on loopback, real streams, both engines.

Streaming needs a real server (the test client buffers whole responses), so each test runs
uvicorn in a thread and reads the stream with httpx2 in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx2
import pytest
import uvicorn
from sqlalchemy import text

import parley.http.web.live as live_module
from parley.accounts import service as accounts
from parley.accounts.service import SessionPolicy, token_digest
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.http.web.live import ENDED_FRAME, RETRY_MILLISECONDS, EventStream, uvicorn_exiting
from parley.inbox import service as inbox
from parley.inbox.models import ConversationStatus
from parley.live.hub import Subscriber
from parley.live.relay import Relay
from support import customer_writes
from web_support import ADMIN, AGENT, OTHER_ADMIN, PASSWORD, browser, login_as, seed_team, web_app

WAIT = 5.0
POLICY = SessionPolicy(idle=timedelta(hours=2), absolute=timedelta(hours=12))
log = logging.getLogger(__name__)


@pytest.fixture
def team(db):
    return seed_team(db)


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    app: Any


@contextmanager
def served(db, monkeypatch) -> Iterator[Served]:
    """parley on a free loopback port, as one ``parley serve`` process would run it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = web_app(db, session_cookie_secure=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    # Signals belong to the main thread, so this server's exit is watched directly.
    monkeypatch.setattr(live_module, "uvicorn_exiting", lambda: server.should_exit)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", server, app)
    finally:
        server.should_exit = True
        thread.join(WAIT)
        assert not thread.is_alive(), "server hung on exit"


def signed_in_cookies(url: str, email: str) -> httpx2.Cookies:
    with httpx2.Client(base_url=url) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        answer = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert answer.status_code == 303, answer.text
        return client.cookies


@dataclass
class Stream:
    """One EventSource: its frames, with the time each arrived, and whether it closed."""

    frames: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    opened: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    headers: httpx2.Headers | None = None

    def next(self, kind: str | None = None) -> dict[str, Any]:
        while True:
            frame = self.frames.get(timeout=WAIT)
            if kind is None or frame["event"] == kind:
                return frame

    def none_within(self, seconds: float) -> bool:
        try:
            frame = self.frames.get(timeout=seconds)
        except queue.Empty:
            return True
        pytest.fail(f"unexpected frame {frame}")


def open_stream(
    url: str,
    cookies: httpx2.Cookies,
    *,
    last_event_id: int | None = None,
    hang_up_after: int | None = None,
) -> Stream:
    """Connect like an EventSource; ``hang_up_after`` frames, close it like a tab would."""
    stream = Stream()
    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)

    def read() -> None:
        frame: dict[str, Any] = {}
        try:
            with (
                httpx2.Client(
                    base_url=url, cookies=cookies, timeout=httpx2.Timeout(30.0)
                ) as client,
                client.stream("GET", "/inbox/events", headers=headers) as answer,
            ):
                stream.headers = answer.headers
                for line in answer.iter_lines():
                    stream.opened.set()
                    if not line:
                        if "event" in frame:
                            frame["at"] = time.monotonic()
                            stream.frames.put(frame)
                            if hang_up_after is not None and stream.frames.qsize() >= hang_up_after:
                                break
                        frame = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        frame[name] = value
        except httpx2.HTTPError:
            pass
        finally:
            stream.opened.set()
            stream.closed.set()

    threading.Thread(target=read, daemon=True).start()
    assert stream.opened.wait(WAIT), "stream did not open"
    return stream


def payload(frame: dict[str, Any]) -> dict[str, Any]:
    return json.loads(frame["data"])


def test_the_stream_needs_a_signed_in_session(db, team):
    with browser(web_app(db)) as client:
        answer = client.get("/inbox/events", headers={"accept": "text/event-stream"})
    assert answer.status_code == 401
    assert answer.json() == {"error": "sign in first"}


def test_a_new_inbound_message_reaches_a_connected_agents_stream(db, team, monkeypatch):
    """How fast is ``bench/live_latency.py``'s figure; this pins that it arrives, whole."""
    with served(db, monkeypatch) as parley:
        agent = open_stream(parley.url, signed_in_cookies(parley.url, AGENT))

        message = customer_writes(
            db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="hi"
        )
        frame = agent.next()

    assert frame["event"] == "message"
    assert int(frame["id"]) > 0
    assert payload(frame) == {
        "kind": "message",
        "conversation_id": message.conversation_id,
        "data": {"message_id": message.message_id, "direction": "inbound"},
    }
    assert agent.headers is not None
    assert agent.headers["content-type"].startswith("text/event-stream")
    assert agent.headers["cache-control"] == "no-store"
    assert agent.headers["x-accel-buffering"] == "no"
    assert agent.closed.wait(WAIT), "the stream outlived the server"


def test_events_of_one_workspace_never_reach_another(db, team, monkeypatch):
    with served(db, monkeypatch) as parley:
        other = open_stream(parley.url, signed_in_cookies(parley.url, OTHER_ADMIN))
        agent = open_stream(parley.url, signed_in_cookies(parley.url, AGENT))

        customer_writes(db, channel=ChannelKind.SMS, sender="+447911000222", text="hello")
        agent.next("message")
        assert other.none_within(0.5)


def test_a_removed_agent_stream_ends_at_once_and_a_colleague_keeps_receiving(db, team, monkeypatch):
    with served(db, monkeypatch) as parley:
        agent_cookies = signed_in_cookies(parley.url, AGENT)
        agent = open_stream(parley.url, agent_cookies)
        admin = open_stream(parley.url, signed_in_cookies(parley.url, ADMIN))

        with db.transaction() as session:
            accounts.remove_member(
                session,
                login=login_as(session, team.workspace_id, team.admin_id),
                user_id=team.agent_id,
                ip="127.0.0.1",
                now=utc_now(),
            )
        ended = agent.next()
        assert agent.closed.wait(WAIT)
        message = customer_writes(db, channel=ChannelKind.SMS, sender="+447911000333", text="yo")
        seen = admin.next("message")

        assert ended["event"] == "ended"
        assert payload(seen)["conversation_id"] == message.conversation_id
        assert agent.frames.empty()
        reconnect = httpx2.get(
            f"{parley.url}/inbox/events",
            cookies=agent_cookies,
            headers={"accept": "text/event-stream"},
        )
        assert reconnect.status_code == 401


def test_a_reconnect_with_last_event_id_replays_what_it_missed(db, team, monkeypatch):
    with served(db, monkeypatch) as parley:
        cookies = signed_in_cookies(parley.url, AGENT)
        first = open_stream(parley.url, cookies, hang_up_after=1)
        customer_writes(db, channel=ChannelKind.SMS, sender="+447911000444", text="one")
        seen = first.next("message")
        assert first.closed.wait(WAIT)
        hub = parley.app.state.live.hub
        deadline = time.monotonic() + WAIT
        while hub.subscribers():  # the server notices the hang-up at once, not at a heartbeat
            assert time.monotonic() < deadline, "the stream outlived its client"
            time.sleep(0.02)
        missed = [
            customer_writes(db, channel=ChannelKind.SMS, sender="+447911000444", text=text)
            for text in ("two", "three")
        ]
        time.sleep(0.5)  # the relay hands them on while nobody listens

        second = open_stream(parley.url, cookies, last_event_id=int(seen["id"]))
        replayed = [second.next(), second.next()]

    assert [payload(f)["data"]["message_id"] for f in replayed] == [m.message_id for m in missed]
    assert int(replayed[0]["id"]) > int(seen["id"])


async def streamed(relay: Relay, subscriber: Subscriber, *, after: int | None) -> list[bytes]:
    """What the stream writes, up to its end; cut short after a while if it never ends."""
    written: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            written.append(message["body"])

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the browser stays connected
        raise AssertionError("unreachable")

    stream = EventStream(relay, subscriber, after=after)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            await stream({"type": "http"}, receive, send)
    return written


def removed(db, team) -> None:
    with db.transaction() as session:
        accounts.remove_member(
            session,
            login=login_as(session, team.workspace_id, team.admin_id),
            user_id=team.agent_id,
            ip="127.0.0.1",
            now=utc_now(),
        )


def agent_signs_in(db) -> accounts.SignedIn:
    with db.transaction() as session:
        signed = accounts.sign_in(
            session,
            email=AGENT,
            password=PASSWORD,
            ip="127.0.0.1",
            user_agent=None,
            now=utc_now(),
            limits=accounts.LoginLimits(max_failures=10, window=timedelta(minutes=15)),
        )
    assert isinstance(signed, accounts.SignedIn)
    return signed


@pytest.mark.anyio
async def test_a_stream_opened_as_its_agent_is_removed_ends_before_any_event(db, team):
    relay = Relay(db, policy=POLICY)
    try:
        signed = agent_signs_in(db)
        # The request's session was read before the removal; the relay handed the removal
        # on before the stream subscribed, so no ending event will concern it.
        removed(db, team)
        await relay.catch_up()
        subscriber = relay.hub.subscribe(
            workspace_id=team.workspace_id,
            user_id=team.agent_id,
            token_digest=token_digest(signed.token),
        )
        customer_writes(db, channel=ChannelKind.SMS, sender="+447911000777", text="later")
        stream = asyncio.create_task(streamed(relay, subscriber, after=None))
        await relay.catch_up()
        written = await stream
    finally:
        await relay.stop()

    assert written == [f"retry: {RETRY_MILLISECONDS}\n\n".encode(), ENDED_FRAME]


@pytest.mark.anyio
async def test_a_replay_for_a_stream_revoked_meanwhile_shows_nothing_after_the_removal(db, team):
    relay = Relay(db, policy=POLICY)
    try:
        signed = agent_signs_in(db)
        subscriber = relay.hub.subscribe(
            workspace_id=team.workspace_id,
            user_id=team.agent_id,
            token_digest=token_digest(signed.token),
        )
        # Between the subscription and the replay, the relay hands on a removal and a
        # later message.
        removed(db, team)
        customer_writes(db, channel=ChannelKind.SMS, sender="+447911000888", text="later")
        await relay.catch_up()
        written = await streamed(relay, subscriber, after=0)
    finally:
        await relay.stop()

    assert written == [f"retry: {RETRY_MILLISECONDS}\n\n".encode(), ENDED_FRAME]


def test_uvicorn_exiting_follows_the_server_that_handles_sigterm():
    server = uvicorn.Server(uvicorn.Config(app=None))
    previous = signal.signal(signal.SIGTERM, server.handle_exit)
    try:
        assert uvicorn_exiting() is False
        server.handle_exit(signal.SIGTERM, None)
        assert uvicorn_exiting() is True
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert uvicorn_exiting() is False


@pytest.fixture
def postgres_db(db):
    if not db.is_postgres:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    return db


def test_two_processes_relay_a_change_to_each_other_through_listen_notify(
    postgres_db, team, monkeypatch
):
    db = postgres_db
    with served(db, monkeypatch) as one, served(db, monkeypatch) as two:
        for parley in (one, two):
            deadline = time.monotonic() + WAIT
            while not parley.app.state.live.is_listening:
                assert time.monotonic() < deadline, "relay never listened"
                time.sleep(0.02)
        on_one = open_stream(one.url, signed_in_cookies(one.url, ADMIN))
        on_two = open_stream(two.url, signed_in_cookies(two.url, AGENT))

        conversation_id = customer_writes(
            db, channel=ChannelKind.SMS, sender="+447911000555", text="hi"
        ).conversation_id
        on_one.next("message")
        on_two.next("message")

        # Committed through instance one's database handle, as its request handlers do.
        with one.app.state.db.transaction() as session:
            inbox.set_status(
                session,
                workspace_id=team.workspace_id,
                conversation_id=conversation_id,
                status=ConversationStatus.PENDING,
                actor="agent:1",
            )
        committed = time.monotonic()
        frames = [on_one.next("conversation"), on_two.next("conversation")]

    latencies = [frame["at"] - committed for frame in frames]
    log.info("across processes: %s ms", ", ".join(f"{x * 1000:.1f}" for x in latencies))
    assert max(latencies) < 1.0, f"delivered after {latencies}"
    for frame in frames:
        assert payload(frame) == {
            "kind": "conversation",
            "conversation_id": conversation_id,
            "data": {"change": "status", "status": "pending"},
        }


def test_the_relay_listens_again_after_its_connection_is_killed(postgres_db, team, monkeypatch):
    db = postgres_db
    with served(db, monkeypatch) as parley:
        relay = parley.app.state.live
        agent = open_stream(parley.url, signed_in_cookies(parley.url, AGENT))
        with db.engine.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            ).all()
        assert killed
        deadline = time.monotonic() + WAIT
        while relay.is_listening:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while not relay.is_listening:
            assert time.monotonic() < deadline, "the relay never listened again"
            time.sleep(0.02)

        customer_writes(db, channel=ChannelKind.SMS, sender="+447911000666", text="back?")
        assert agent.next("message")
