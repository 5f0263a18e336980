"""An SMTP server that captures email instead of delivering it.

parley's email adapter sends real SMTP to ``smtp_host:smtp_port``; in the demo that is this
server (aiosmtpd, on its own thread and event loop). Every accepted message is captured
once per ``RCPT TO`` recipient. Like a large mailbox provider it refuses a message without
a ``From`` or a ``Message-ID`` header, and an injected fault on ``"email"`` answers the
DATA command with that SMTP reply code. It offers SMTPUTF8, as the large providers do.

Messages are parsed with the ``compat32`` policy, whose headers stay plain strings, and only
the headers and text parts the capture keeps are decoded. ``policy.default`` turns every
header into an object and costs about 3.4 ms per confirmation email against 0.3 ms, which
made this stand-in, not parley, the ceiling of every email benchmark.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
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
    if code in (530, 535):  # a relay refusing the login (a real one does so at AUTH)
        return f"{code} 5.7.8 Sandbox: simulated login refused, credentials invalid"
    return f"{code} 5.3.0 Sandbox: simulated permanent failure"


class _RawHeaders(Compat32):
    """``compat32`` that hands every header back as the string that arrived.

    Its default wraps a raw UTF-8 (SMTPUTF8) header in a ``Header`` object; the capture
    decodes headers itself, in :func:`_header_text`.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        """The value as it arrived, folding and encoded words included."""
        return value


# A folded header line: the line break before continuation whitespace (RFC 5322 2.2.3).
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _header_text(value: str) -> str:
    """A raw header value as a reader sees it: unfolded, encoded words decoded."""
    value = _FOLD.sub("", value)
    if not value.isascii():
        # SMTPUTF8 headers arrive as raw UTF-8, which the parser keeps as surrogates.
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError):
        return value


def _part_text(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    try:
        text = payload.decode(part.get_content_charset() or "us-ascii")
    except (LookupError, UnicodeError):
        # An unknown or wrong charset: keep what can be read rather than refuse the message.
        text = payload.decode("utf-8", "replace")
    # SMTP carries CRLF line ends; the capture keeps the text as it was written.
    return text.replace("\r\n", "\n")


def _bodies(message: Message) -> dict[str, str | None]:
    """The first inline text/plain and text/html parts, decoded."""
    found: dict[str, str | None] = {"plain": None, "html": None}
    for part in message.walk():
        subtype = part.get_content_subtype()
        if (
            part.get_content_maintype() == "text"
            and subtype in found
            and found[subtype] is None
            and part.get_content_disposition() != "attachment"
        ):
            found[subtype] = _part_text(part)
    return found


class SandboxSmtpHandler:
    """aiosmtpd handler: validate, then capture one message per recipient."""

    def __init__(self, store: SandboxStore) -> None:
        self._store = store
        self._parser = BytesParser(policy=_RawHeaders())

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        """Called by aiosmtpd once the whole message has arrived."""
        fault = self._store.take_fault("email")
        if fault is not None:
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            return fault_reply(fault)
        raw = envelope.original_content or b""
        message = self._parser.parsebytes(raw)
        sender, message_id, subject = (message[name] for name in ("From", "Message-ID", "Subject"))
        if sender is None:
            return "550 5.7.1 Sandbox: message is not RFC 5322 compliant: no From header"
        if message_id is None or not message_id.strip():
            return "550 5.7.1 Sandbox: messages missing a valid Message-ID header are not accepted"
        headers = {name: _header_text(value) for name, value in message.items()}
        bodies = _bodies(message)
        for recipient in envelope.rcpt_tos:
            self._store.add(
                CapturedMessage(
                    channel="email",
                    to=recipient,
                    sender=_header_text(sender),
                    body=bodies["plain"] or "",
                    subject=None if subject is None else _header_text(subject),
                    html=bodies["html"],
                    provider_message_id=_header_text(message_id).strip(),
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
            enable_SMTPUTF8=True,
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
