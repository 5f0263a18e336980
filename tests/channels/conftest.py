"""Fake providers for the channel tests: httpx2.MockTransport for HTTP APIs, a real aiosmtpd
server on loopback for SMTP. Each ``*_channel`` fixture yields ``(adapter, fake)`` where the
fake can be told how to answer the next send (see :class:`FakeProvider`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from parley.channels.email_smtp.adapter import EmailSmtp
from parley.channels.instagram.adapter import Instagram
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-secret-token"
TWILIO_FROM = "+15005550006"
TWILIO_MESSAGE_SID = "SM" + "0123456789abcdef" * 2
WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
WHATSAPP_TOKEN = "EAAGtest-token"
WHATSAPP_MESSAGE_ID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
INSTAGRAM_ACCOUNT_ID = "17841400000000001"
INSTAGRAM_TOKEN = "IGAA-test-token"
INSTAGRAM_CUSTOMER = "1234567890123456"
INSTAGRAM_MESSAGE_ID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDE"
EMAIL_FROM = "Demo Store <orders@demo.parley.test>"
EMAIL_TIMEOUT_SECONDS = 0.5


class FakeProvider(Protocol):
    """What the contract suite may ask of any fake provider."""

    recipient: str
    carries_retry_after: bool

    def expected_provider_message_id(self, idempotency_key: str) -> str: ...

    def accept(self) -> None: ...

    def answer_text(self, status: int, text: str) -> None:
        self._answer = lambda _request: httpx2.Response(status, text=text)

    def answer_status(self, http_status: int, *, retry_after: int | None = None) -> str:
        """Answer the next send with the provider's version of ``http_status``; return the
        provider code the adapter should report."""
        ...

    def time_out(self) -> None: ...

    def refuse_connection(self) -> None: ...

    @property
    def delivered_count(self) -> int: ...


# --- HTTP providers ------------------------------------------------------------------


@dataclass
class FakeHttpApi:
    """A provider behind ``httpx2.MockTransport``: records requests, answers as told."""

    success: Callable[[], httpx2.Response]
    error_body: Callable[[int, str], dict[str, Any]]
    error_codes: dict[int, str]
    recipient: str = "+15551234567"
    carries_retry_after: bool = True
    message_id: str = ""
    requests: list[httpx2.Request] = field(default_factory=list)
    delivered_count: int = 0
    _answer: Callable[[httpx2.Request], httpx2.Response] = field(init=False)

    def __post_init__(self) -> None:
        self.accept()

    @property
    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self._handle)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        response = self._answer(request)
        if response.is_success:
            self.delivered_count += 1
        return response

    def expected_provider_message_id(self, idempotency_key: str) -> str:
        return self.message_id

    def accept(self) -> None:
        self._answer = lambda _request: self.success()

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._answer = lambda _request: httpx2.Response(status, json=body, headers=headers)

    def answer_text(self, status: int, text: str) -> None:
        self._answer = lambda _request: httpx2.Response(status, text=text)

    def answer_status(self, http_status: int, *, retry_after: int | None = None) -> str:
        code = self.error_codes[http_status]
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        self.answer(http_status, self.error_body(http_status, code), headers)
        return code

    def time_out(self) -> None:
        def hang(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ReadTimeout("timed out", request=request)

        self._answer = hang

    def refuse_connection(self) -> None:
        def refuse(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

        self._answer = refuse


def twilio_api() -> FakeHttpApi:
    def success() -> httpx2.Response:
        return httpx2.Response(
            201,
            json={
                "sid": TWILIO_MESSAGE_SID,
                "account_sid": TWILIO_SID,
                "status": "queued",
                "to": "+15551234567",
                "from": TWILIO_FROM,
                "body": "Your order has shipped",
                "num_segments": "1",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
            },
        )

    def error_body(status: int, code: str) -> dict[str, Any]:
        return {
            "code": int(code),
            "message": f"Twilio error {code}",
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    return FakeHttpApi(
        success=success,
        error_body=error_body,
        error_codes={429: "20429", 500: "20500", 503: "20503", 400: "21211"},
        message_id=TWILIO_MESSAGE_SID,
    )


def graph_error(status: int, code: str, message: str = "") -> dict[str, Any]:
    """A Graph API error body as the WhatsApp Cloud API sends it."""
    return {
        "error": {
            "message": message or f"(#{code}) Graph error {code}",
            "type": "OAuthException",
            "code": int(code),
            "error_subcode": 2494010,
            "fbtrace_id": "AbCdEfGhIjK",
        }
    }


def whatsapp_api() -> FakeHttpApi:
    def success() -> httpx2.Response:
        return httpx2.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": "15551234567", "wa_id": "15551234567"}],
                "messages": [{"id": WHATSAPP_MESSAGE_ID}],
            },
        )

    return FakeHttpApi(
        success=success,
        error_body=graph_error,
        # 1 (unknown error) and 100 (invalid parameter) are not rate-limit codes, so 500 and
        # 400 here are classified by HTTP status alone.
        error_codes={429: "130429", 500: "1", 503: "2", 400: "100"},
        message_id=WHATSAPP_MESSAGE_ID,
    )


def instagram_api() -> FakeHttpApi:
    def success() -> httpx2.Response:
        return httpx2.Response(
            200, json={"recipient_id": INSTAGRAM_CUSTOMER, "message_id": INSTAGRAM_MESSAGE_ID}
        )

    return FakeHttpApi(
        success=success,
        error_body=graph_error,
        # 613 is Instagram's rate-limit code; 1 (unknown) and 100 (invalid parameter) are
        # not transient codes, so 500 and 400 are classified by HTTP status alone.
        error_codes={429: "613", 500: "1", 503: "2", 400: "100"},
        recipient=INSTAGRAM_CUSTOMER,
        message_id=INSTAGRAM_MESSAGE_ID,
    )


@pytest.fixture
async def twilio_channel() -> AsyncIterator[tuple[TwilioSms, FakeHttpApi]]:
    api = twilio_api()
    adapter = TwilioSms(
        account_sid=TWILIO_SID,
        auth_token=TWILIO_TOKEN,
        from_number=TWILIO_FROM,
        base_url="https://twilio.test",
        timeout=2.0,
        transport=api.transport,
    )
    yield adapter, api
    await adapter.aclose()


@pytest.fixture
async def whatsapp_channel() -> AsyncIterator[tuple[WhatsappCloud, FakeHttpApi]]:
    api = whatsapp_api()
    adapter = WhatsappCloud(
        phone_number_id=WHATSAPP_PHONE_NUMBER_ID,
        access_token=WHATSAPP_TOKEN,
        base_url="https://graph.test",
        api_version="v21.0",
        timeout=2.0,
        transport=api.transport,
    )
    yield adapter, api
    await adapter.aclose()


@pytest.fixture
async def instagram_channel() -> AsyncIterator[tuple[Instagram, FakeHttpApi]]:
    api = instagram_api()
    adapter = Instagram(
        instagram_account_id=INSTAGRAM_ACCOUNT_ID,
        access_token=INSTAGRAM_TOKEN,
        base_url="https://graph.instagram.test",
        api_version="v21.0",
        timeout=2.0,
        transport=api.transport,
    )
    yield adapter, api
    await adapter.aclose()


# --- SMTP ------------------------------------------------------------------------------


@dataclass
class Received:
    peer: Any
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    smtp_utf8: bool


class SmtpHandler:
    """aiosmtpd handler whose RCPT and DATA replies the test chooses."""

    def __init__(self) -> None:
        self.rcpt_reply = "250 OK"
        self.data_reply = "250 2.0.0 Ok: queued as 4ABC"
        self.data_delay = 0.0
        self.received: list[Received] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply.startswith("250"):
            self.received.append(
                Received(
                    session.peer,
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.content,
                    envelope.smtp_utf8,
                )
            )
        return self.data_reply


@dataclass
class FakeSmtpServer:
    """A real SMTP server on 127.0.0.1 (aiosmtpd), driven through its handler."""

    handler: SmtpHandler
    controller: Controller
    port: int
    recipient: str = "ada@example.com"
    carries_retry_after: bool = False
    running: bool = True

    # How each HTTP-flavoured contract case looks on SMTP.
    REPLIES = {
        429: "421 4.7.0 Too many messages, slow down",
        500: "451 4.3.0 Local error in processing",
        503: "421 4.3.2 Service not available",
        400: "550 5.1.1 Mailbox unavailable",
    }

    def expected_provider_message_id(self, idempotency_key: str) -> str:
        return f"<{idempotency_key}@demo.parley.test>"

    @property
    def delivered_count(self) -> int:
        return len(self.handler.received)

    def accept(self) -> None:
        self.handler.data_reply = "250 2.0.0 Ok: queued as 4ABC"

    def answer_text(self, status: int, text: str) -> None:
        self._answer = lambda _request: httpx2.Response(status, text=text)

    def answer_status(self, http_status: int, *, retry_after: int | None = None) -> str:
        self.handler.data_reply = self.REPLIES[http_status]
        return self.REPLIES[http_status][:3]

    def time_out(self) -> None:
        self.handler.data_delay = EMAIL_TIMEOUT_SECONDS * 4

    def refuse_connection(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_smtp_server(
    *, smtputf8: bool = False, login: tuple[str, str] | None = None
) -> FakeSmtpServer:
    """A fake relay on a free port; ``smtputf8`` offers the SMTPUTF8 extension; with
    ``login`` the relay requires AUTH (over plain loopback) with that user and password."""
    handler = SmtpHandler()
    port = free_port()
    auth: dict[str, Any] = {}
    if login is not None:
        expected = (login[0].encode(), login[1].encode())

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            matches = isinstance(data, LoginPassword) and (data.login, data.password) == expected
            return AuthResult(success=matches, handled=False)

        auth = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8, **auth
    )
    controller.start()
    return FakeSmtpServer(handler=handler, controller=controller, port=port)


@pytest.fixture
def smtp_server() -> Iterator[FakeSmtpServer]:
    server = start_smtp_server()
    yield server
    server.stop()


def email_adapter(server: FakeSmtpServer, **overrides: Any) -> EmailSmtp:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "from_address": EMAIL_FROM,
        "timeout": EMAIL_TIMEOUT_SECONDS,
    }
    return EmailSmtp(**(options | overrides))


@pytest.fixture
async def email_channel(
    smtp_server: FakeSmtpServer,
) -> AsyncIterator[tuple[EmailSmtp, FakeSmtpServer]]:
    adapter = email_adapter(smtp_server)
    yield adapter, smtp_server
    await adapter.aclose()
