"""An SMTP server that captures email instead of delivering it.

parley's email adapter sends real SMTP to ``smtp_host:smtp_port``; in the demo that is this
server (aiosmtpd, on its own thread and event loop). Every accepted message is captured
once per ``RCPT TO`` recipient. Like a large mailbox provider it refuses a message without
a ``From`` or a ``Message-ID`` header, and an injected fault on ``"email"`` answers the
DATA command with that SMTP reply code.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from parley.sandbox.store import CapturedMessage, Fault, SandboxStore

logger = logging.getLogger(__name__)

SERVER_HOSTNAME: Final = "sandbox.parley.test"


def fault_reply(fault: Fault) -> str:
    """The SMTP reply for an injected fault; ``fault.status`` is the reply code."""
    code = fault.status
    if code < 500:
        return f"{code} 4.3.0 Sandbox: simulated outage, try again later"
    if code in (550, 551, 553):
        return f"{code} 5.1.1 Sandbox: simulated permanent failure, mailbox unavailable"
    if code == 552:
        return f"{code} 5.2.2 Sandbox: simulated permanent failure, mailbox full"
    return f"{code} 5.3.0 Sandbox: simulated permanent failure"


def _part_content(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):
        # An unknown charset: keep what can be read rather than refuse the message.
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    # SMTP carries CRLF line ends; the capture keeps the text as it was written.
    return content.replace("\r\n", "\n") if isinstance(content, str) else None


class SandboxSmtpHandler:
    """aiosmtpd handler: validate, then capture one message per recipient."""

    def __init__(self, store: SandboxStore) -> None:
        self._store = store
        self._parser = BytesParser(_class=EmailMessage, policy=default_policy)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        """Called by aiosmtpd once the whole message has arrived."""
        fault = self._store.take_fault("email")
        if fault is not None:
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            return fault_reply(fault)
        raw = envelope.original_content or b""
        message = self._parser.parsebytes(raw)
        if message["From"] is None:
            return "550 5.7.1 Sandbox: message is not RFC 5322 compliant: no From header"
        message_id = str(message["Message-ID"] or "").strip()
        if not message_id:
            return "550 5.7.1 Sandbox: messages missing a valid Message-ID header are not accepted"
        headers = {name: str(value) for name, value in message.items()}
        subject = message["Subject"]
        body = _part_content(message, "plain")
        html = _part_content(message, "html")
        for recipient in envelope.rcpt_tos:
            self._store.add(
                CapturedMessage(
                    channel="email",
                    to=recipient,
                    sender=headers["From"],
                    body=body or "",
                    subject=str(subject) if subject is not None else None,
                    html=html,
                    provider_message_id=message_id,
                    headers=headers,
                )
            )
        return f"250 2.0.0 Ok: queued as {secrets.token_hex(6).upper()}"


class SandboxSmtpServer:
    """The sandbox's SMTP server: :meth:`start` it, send to ``host:port``, :meth:`stop` it."""

    def __init__(self, store: SandboxStore, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.host = host
        self.port = port
        self._controller = Controller(
            SandboxSmtpHandler(store),
            hostname=host,
            port=port,
            server_hostname=SERVER_HOSTNAME,
            ident="parley sandbox ESMTP",
            ready_timeout=10.0,
        )
        self._is_running = False

    @property
    def is_running(self) -> bool:
        return self._is_running

    def start(self) -> None:
        """Listen on ``host:port`` (blocks until the server accepts connections)."""
        if self._is_running:
            return
        self._controller.start()
        self._is_running = True
        logger.info("sandbox SMTP server listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop listening; safe to call twice."""
        if not self._is_running:
            return
        self._controller.stop()
        self._is_running = False

    def __enter__(self) -> SandboxSmtpServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
