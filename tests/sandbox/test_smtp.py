"""The SMTP stand-in, driven by a real aiosmtplib client over loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email.message import EmailMessage

import aiosmtplib
import pytest

from parley.clock import FrozenClock
from parley.sandbox.smtp import SandboxSmtpServer
from parley.sandbox.store import CapturedMessage, SandboxStore

pytestmark = pytest.mark.anyio

FROM = "Parley Demo Store <orders@demo.parley.test>"
MESSAGE_ID = "<order-1001-confirmation@demo.parley.test>"
UNSUBSCRIBE = "<https://shop.example/unsubscribe?t=abc>, <mailto:unsubscribe@demo.parley.test>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(store: SandboxStore) -> Iterator[SandboxSmtpServer]:
    smtp = SandboxSmtpServer(store, port=_free_port())
    smtp.start()
    yield smtp
    smtp.stop()


def _email(*, to: str = "ada@example.com", html: bool = True) -> EmailMessage:
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = to
    message["Subject"] = "Your order #1001 is confirmed"
    message["Message-ID"] = MESSAGE_ID
    message["List-Unsubscribe"] = UNSUBSCRIBE
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("Hi Ada,\nthanks for your order #1001.\n")
    if html:
        message.add_alternative("<p>Hi Ada,</p><p>thanks for your order <b>#1001</b>.</p>", "html")
    return message


async def _send(server: SandboxSmtpServer, message: EmailMessage, **kwargs: object) -> None:
    await aiosmtplib.send(message, hostname=server.host, port=server.port, timeout=5, **kwargs)  # type: ignore[arg-type]


async def test_multipart_email_is_captured_per_recipient(
    server: SandboxSmtpServer, store: SandboxStore, clock: FrozenClock
) -> None:
    # Given one message with a text and an HTML part; When it goes to two recipients
    await _send(server, _email(), recipients=["ada@example.com", "grace@example.com"])

    # Then one capture per RCPT TO, each with the parts and the headers
    captured = store.list(channel="email")
    assert [message.to for message in captured] == ["ada@example.com", "grace@example.com"]
    first = captured[0]
    assert first == CapturedMessage(
        id=first.id,
        channel="email",
        to="ada@example.com",
        sender=FROM,
        body="Hi Ada,\nthanks for your order #1001.\n",
        subject="Your order #1001 is confirmed",
        html="<p>Hi Ada,</p><p>thanks for your order <b>#1001</b>.</p>\n",
        provider_message_id=MESSAGE_ID,
        headers=first.headers,
        captured_at=clock.now,
    )
    assert first.headers["Message-ID"] == MESSAGE_ID
    assert first.headers["List-Unsubscribe"] == UNSUBSCRIBE
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.headers["From"] == FROM
    assert first.headers["To"] == "ada@example.com"
    assert first.id != captured[1].id
    assert store.received_count("email") == 2


async def test_text_only_email_has_no_html(server: SandboxSmtpServer, store: SandboxStore) -> None:
    await _send(server, _email(html=False))

    [captured] = store.list()
    assert captured.body == "Hi Ada,\nthanks for your order #1001.\n"
    assert captured.html is None


async def test_unicode_subject_and_body_survive(
    server: SandboxSmtpServer, store: SandboxStore
) -> None:
    message = _email(html=False)
    message.replace_header("Subject", "Ihre Bestellung ist unterwegs 🚚")
    message.set_content("Grüße, Zoë")

    await _send(server, message)

    [captured] = store.list()
    assert captured.subject == "Ihre Bestellung ist unterwegs 🚚"
    assert captured.body == "Grüße, Zoë\n"


async def test_an_internationalised_address_is_taken_over_smtputf8(
    server: SandboxSmtpServer, store: SandboxStore
) -> None:
    message = _email(to="Zoë Ünal <zoë@example.com>", html=False)
    message.replace_header("From", "Café Crème <orders@demo.parley.test>")

    await _send(server, message)

    [captured] = store.list()
    assert captured.to == "zoë@example.com"
    assert captured.sender == "Café Crème <orders@demo.parley.test>"
    assert captured.headers["To"] == "Zoë Ünal <zoë@example.com>"


async def test_the_inline_text_is_the_body_and_an_attached_text_file_is_not(
    server: SandboxSmtpServer, store: SandboxStore
) -> None:
    message = _email(html=False)
    message.add_attachment("sku,qty\nTEE-1,2\n", filename="order.csv")

    await _send(server, message)

    [captured] = store.list()
    assert captured.body == "Hi Ada,\nthanks for your order #1001.\n"
    assert captured.html is None


async def test_a_body_in_an_unknown_charset_is_kept_readable(
    server: SandboxSmtpServer, store: SandboxStore
) -> None:
    raw = (
        f"From: {FROM}\r\nTo: ada@example.com\r\nMessage-ID: {MESSAGE_ID}\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        'Content-Type: text/plain; charset="x-unknown"\r\n\r\nGr\u00fc\u00dfe\r\n'
    ).encode()

    await aiosmtplib.send(
        raw,
        sender="orders@demo.parley.test",
        recipients=["ada@example.com"],
        hostname=server.host,
        port=server.port,
        timeout=5,
    )

    [captured] = store.list()
    assert captured.subject == "Grüße"
    assert captured.body == "Grüße\n"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param("Message-ID", "Message-ID", id="no_message_id_case"),
        pytest.param("From", "From", id="no_from_case"),
    ],
)
async def test_email_missing_a_required_header_is_refused(
    server: SandboxSmtpServer, store: SandboxStore, header: str, reason: str
) -> None:
    message = _email()
    del message[header]

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(server, message, sender="orders@demo.parley.test")

    assert refused.value.code == 550
    assert reason in refused.value.message
    assert store.list() == []


async def test_injected_451_fails_once_then_succeeds(
    server: SandboxSmtpServer, store: SandboxStore
) -> None:
    store.inject_fault("email", 451)

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(server, _email())
    await _send(server, _email())

    assert refused.value.code == 451
    assert refused.value.message.startswith("4.3.0 ")
    assert len(store.list()) == 1
    assert store.received_count("email") == 1


async def test_injected_550_is_permanent(server: SandboxSmtpServer, store: SandboxStore) -> None:
    store.inject_fault("email", 550)

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(server, _email())

    assert refused.value.code == 550
    assert refused.value.message.startswith("5.1.1 ")
    assert store.list() == []


async def test_injected_535_refuses_the_login(
    server: SandboxSmtpServer, store: SandboxStore
) -> None:
    store.inject_fault("email", 535)

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(server, _email())

    assert refused.value.code == 535
    assert refused.value.message == "5.7.8 Sandbox: simulated login refused, credentials invalid"
    assert store.list() == []


def test_stop_is_safe_twice(store: SandboxStore) -> None:
    smtp = SandboxSmtpServer(store, port=_free_port())
    with smtp:
        assert smtp.is_running
    smtp.stop()

    assert not smtp.is_running
