"""A sandbox customer's WhatsApp photo, opened by an agent in the inbox: parley and its
sandbox served together on a loopback port (uvicorn in a thread, as ``parley demo`` runs
them), on both engines.

The customer's photo goes through the composer, which posts the signed Cloud API webhook
to parley's own route; the agent's ``/media/messages/{id}/0`` then makes parley ask the
sandbox's Graph stand-in for the media node with the number's token, and fetch the file
it names, over real HTTP.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest
import uvicorn
from sqlalchemy import select

from parley.db import Database
from parley.http.app import create_app
from parley.messaging.models import Direction, Message
from parley.runtime import Runtime
from parley.sandbox.composer import parcel_photo
from parley.settings import get_settings
from web_support import AGENT, PASSWORD, seed_team

WAIT = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def demo_served(db: Database, *, allow_private: bool) -> Iterator[str]:
    """parley with the sandbox mounted, on free loopback ports; its base URL.

    ``allow_private`` lets the media proxy reach loopback, where this sandbox (as the
    demo's) serves the file.
    """
    port = _free_port()
    settings = get_settings(
        database_url=db.url,
        sandbox=True,
        embedded_worker=False,
        host="127.0.0.1",
        port=port,
        sandbox_smtp_port=_free_port(),
        session_cookie_secure=False,
        media_proxy_allow_private=allow_private,
    )
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert thread.is_alive(), "server exited during startup"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        assert not thread.is_alive(), "server hung on exit"


def sign_in(client: httpx2.Client, email: str) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
    )
    assert answer.status_code == 303, answer.text


@pytest.mark.parametrize(
    "allow_private",
    [
        pytest.param(True, id="proxy_reaches_loopback_case"),
        pytest.param(False, id="demo_defaults_case"),
    ],
)
def test_a_photo_the_customer_sends_opens_in_the_inbox_as_the_sandboxs_png(
    db: Database, allow_private: bool
) -> None:
    seed_team(db)
    with (
        demo_served(db, allow_private=allow_private) as url,
        httpx2.Client(base_url=url, timeout=WAIT, follow_redirects=False) as client,
    ):
        sent = client.post(
            "/sandbox/api/inbound",
            json={
                "channel": "whatsapp",
                "from": "+447911123456",
                "text": "The box arrived crushed",
                "photo": True,
            },
        )
        assert sent.status_code == 200, sent.text
        with db.transaction() as session:
            [message] = session.scalars(
                select(Message).where(Message.direction == Direction.INBOUND)
            ).all()
            message_id, body = message.id, message.body
            attachments = list(message.attachments or [])
        signed_out = client.get(f"/media/messages/{message_id}/0")
        sign_in(client, AGENT)

        answer = client.get(f"/media/messages/{message_id}/0")

    assert body == "The box arrived crushed"
    assert [(a["kind"], a["mime_type"]) for a in attachments] == [("image", "image/png")]
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == f"/login?next=%2Fmedia%2Fmessages%2F{message_id}%2F0"
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    assert answer.content == parcel_photo()
