"""Send email through an SMTP relay with aiosmtplib.

The message is standard MIME: text/plain, plus a text/html alternative when the caller
rendered one. Its ``Message-ID`` is derived from the idempotency key, so a retried send
carries the same id (receivers and threading treat it as one message) and the id is known
before the relay answers.

Two builders, both the standard library's. Almost every address is ASCII, and for those the
message is built with the ``compat32`` classes (``email.mime``): non-ASCII names and
subjects become RFC 2047 encoded words and bodies UTF-8 quoted-printable, which every relay
takes. That costs about 0.5 ms per message against 1.5 ms for ``email.policy.default``,
which parses every header into an object at set time and refolds it when flattened, and an
email journey sends thousands. An address that is not ASCII (``zoë@example.com``) can only
travel as SMTPUTF8 with raw UTF-8 headers, which only ``policy.default`` writes, so those
messages are built with it. Its folding would turn a word longer than a line (a one-click
unsubscribe URL, an Outlook Message-ID) into RFC 2047 encoded words, which mean nothing in
a header of URLs or message ids, so those headers are written as given
(:class:`_AsWritten`).

SMTP has no request/response pooling of its own, so the adapter keeps a small pool of
authenticated connections and reuses each for many messages (one EHLO/STARTTLS/AUTH per
connection, not per email); ``max_connections`` bounds how many the relay sees at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import deque
from email.charset import QP, Charset
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Policy
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, ClassVar, Self

import aiosmtplib
import httpx2

from parley.channels.base import (
    AccountChannelError,
    Capabilities,
    ChannelError,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
)
from parley.clock import utc_now
from parley.settings import Settings

# Headers the adapter writes itself; letting a caller set them would break the MIME
# structure or detach the Message-ID from the idempotency key.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)

# RFC 5322 dot-atom text minus "." and "=": "=" becomes the escape character, so distinct
# keys always give distinct ids, and dropping "." sidesteps the no-leading/double-dot rule.
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9!#$%&'*+/?^_`{|}~-]")


# Bodies as UTF-8 quoted-printable: 7-bit clean for any relay, still readable on the wire,
# and no line over 76 characters whatever the template renders.
_UTF8_QUOTED_PRINTABLE = Charset("utf-8")
_UTF8_QUOTED_PRINTABLE.body_encoding = QP


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The ``Message-ID`` for a key: ``<{key, unsafe bytes as =XX}@{domain}>``."""
    local = _UNSAFE_ID_CHARS.sub(
        lambda match: "".join(f"={byte:02X}" for byte in match.group().encode()),
        idempotency_key,
    )
    return f"<{local}@{domain}>"


class EmailSmtp:
    """SMTP email adapter with a pool of reusable relay connections."""

    kind: ClassVar[ChannelKind] = ChannelKind.EMAIL
    provider: ClassVar[str] = "smtp"
    # Email has no practical body limit; this only stops a runaway render.
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_len=100_000, supports_html=True)

    def __init__(
        self,
        *,
        host: str,
        port: int,
        from_address: str,
        username: str | None = None,
        password: str | None = None,
        start_tls: bool = False,
        use_tls: bool = False,
        timeout: float = 10.0,
        max_connections: int = 10,
        max_idle_seconds: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """Configure the relay; nothing connects until the first send.

        ``transport`` is accepted only so every adapter can be built the same way in
        tests; SMTP does not use it. ``max_idle_seconds`` retires pooled connections
        before a relay's idle timeout (often 60 s or more) is likely to cut them.
        """
        del transport
        _, at, domain = parseaddr(from_address)[1].rpartition("@")
        if not at or not domain:
            raise ValueError(f"from_address has no domain: {from_address!r}")
        self.from_address = from_address
        self.domain = domain
        self._smtp_options: dict[str, Any] = {
            "hostname": host,
            "port": port,
            "username": username,
            "password": password,
            "start_tls": start_tls,
            "use_tls": use_tls,
            "timeout": timeout,
        }
        self._max_idle_seconds = max_idle_seconds
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[tuple[aiosmtplib.SMTP, float]] = deque()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """Build from ``smtp_*`` and ``email_from`` settings; ``overrides`` win."""
        options: dict[str, Any] = {
            "host": settings.smtp_host,
            "port": settings.smtp_port,
            "from_address": settings.email_from,
            "username": settings.smtp_username,
            "password": settings.smtp_password,
            "start_tls": settings.smtp_starttls,
            "use_tls": settings.smtp_use_tls,
            "timeout": settings.smtp_timeout_seconds,
        }
        return cls(**(options | overrides))

    def _sender(self, message: OutboundMessage) -> tuple[str, str]:
        """The store's own address when it sends from one, else the configured address;
        under the sending store's name when one is given."""
        configured_name, address = parseaddr(self.from_address)
        if message.account is not None:
            address = message.account.address
        return (message.sender_name or configured_name, address)

    def build_message(self, message: OutboundMessage) -> Message:
        """The MIME message for ``message``; PermanentChannelError if it cannot be built."""
        sender = self._sender(message)
        recipient = parseaddr(message.to)
        if "@" not in recipient[1]:
            raise PermanentChannelError(f"cannot build the email: no address in {message.to!r}")
        headers = {
            "Date": format_datetime(utc_now()),
            "Message-ID": message_id_for(message.idempotency_key, self.domain),
        }
        if message.subject is not None:
            headers["Subject"] = message.subject
        reply = parseaddr(message.reply_address or "")[1]
        if reply and reply.lower() != sender[1].lower():
            # The store's own inbound address: its customer's answer reaches its inbox,
            # not whichever store connected the shared From address.
            headers["Reply-To"] = formataddr((sender[0], reply))
        for name, value in message.headers.items():
            if name.lower() in RESERVED_HEADERS:
                raise PermanentChannelError(f"header {name!r} is set by the email adapter")
            headers[name] = value
        for name, value in (("From", sender[0]), ("To", message.to), *headers.items()):
            if "\r" in value or "\n" in value:
                # A line break in a header value would start a header of its own (injection).
                raise PermanentChannelError(
                    f"cannot build the email: the {name} header contains a line break"
                )
        if (sender[1] + recipient[1]).isascii():
            headers = {"From": formataddr(sender), "To": formataddr(recipient)} | headers
            return _compat_message(headers, message.text, message.html)
        return _international_message(sender, message.to, headers, message.text, message.html)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Hand one email to the relay; raise Transient/PermanentChannelError on failure."""
        email = self.build_message(message)
        message_id = str(email["Message-ID"])
        async with self._slots:
            try:
                smtp = await self._checkout()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _classify(exc) from exc
            reusable = False
            try:
                refused, reply = await smtp.send_message(email)
                reusable = True
            except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
                # aiosmtplib has already sent RSET, so a still-open connection is clean.
                reusable = True
                raise _classify(exc) from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _classify(exc) from exc
            except ValueError as exc:
                raise PermanentChannelError(f"the relay cannot take this address: {exc}") from exc
            finally:
                # Also reached on cancellation: a half-finished conversation is closed.
                self._checkin(smtp, reusable=reusable)
        return SendResult(
            provider_message_id=message_id,
            status="accepted",
            raw={
                "response": reply,
                "refused": {rcpt: f"{r.code} {r.message}" for rcpt, r in refused.items()},
            },
        )

    async def check(self) -> str:
        """Open a connection of its own (EHLO, STARTTLS or TLS, and AUTH as configured),
        ask NOOP, say QUIT: the relay takes these settings."""
        smtp = aiosmtplib.SMTP(**self._smtp_options)
        try:
            await smtp.connect()
            await smtp.noop()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _classify(exc) from exc
        finally:
            await _quit(smtp)
        where = f"{self._smtp_options['hostname']}:{self._smtp_options['port']}"
        if self._smtp_options["username"]:
            return f"the mail server at {where} took the login"
        return f"the mail server at {where} took the connection (no login configured)"

    async def aclose(self) -> None:
        """Say QUIT on every idle connection; busy ones are closed when they come back."""
        self._closed = True
        while self._idle:
            smtp, _ = self._idle.pop()
            await _quit(smtp)

    async def _checkout(self) -> aiosmtplib.SMTP:
        now = time.monotonic()
        while self._idle:
            smtp, idle_since = self._idle.pop()
            if smtp.is_connected and now - idle_since < self._max_idle_seconds:
                return smtp
            smtp.close()
        smtp = aiosmtplib.SMTP(**self._smtp_options)
        try:
            await smtp.connect()
        except BaseException:
            # Connected but refused at EHLO/STARTTLS/AUTH: do not leak the socket.
            smtp.close()
            raise
        return smtp

    def _checkin(self, smtp: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if reusable and smtp.is_connected and not self._closed:
            self._idle.append((smtp, time.monotonic()))
        else:
            smtp.close()


def _compat_message(headers: dict[str, str], text: str, html: str | None) -> Message:
    """The message for ASCII addresses, in ``compat32``'s cheap classes."""
    if html is None:
        email: Message = _text_part(text, "plain")
    else:
        parts = [_text_part(text, "plain"), _text_part(html, "html")]
        for part in parts:
            del part["MIME-Version"]  # the top level says it once
        email = MIMEMultipart("alternative", _subparts=parts)
    for name, value in headers.items():
        email[name] = value
    return email


def _text_part(content: str, subtype: str) -> MIMENonMultipart:
    """Bodies end with a line break, as ``set_content`` writes them on the other path."""
    if not content.endswith("\n"):
        content += "\n"
    part = MIMENonMultipart("text", subtype)
    part.set_payload(content, _UTF8_QUOTED_PRINTABLE)
    return part


class _AsWritten(UnstructuredHeader, BaseHeader):
    """A header of angle-bracketed URLs or message ids, folded only where its own value
    has a space.

    ``policy.default`` encodes a word too long for a line as RFC 2047 encoded words so it
    can break it; in these headers that leaves no URL and no message id for a mailbox
    provider to read (RFC 2369 and RFC 8058 one-click unsubscribe; RFC 5322 threading). A
    long word stays whole on a line of its own: SMTP allows 998 characters.
    """

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or math.inf
        lines = [f"{self.name}:"]
        for index, word in enumerate(str(self).split()):
            if index and len(lines[-1]) + 1 + len(word) > limit:
                lines.append("")
            lines[-1] += f" {word}"
        return policy.linesep.join(lines) + policy.linesep


_WRITTEN_AS_GIVEN = (
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-help",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "in-reply-to",
    "references",
)
_HEADERS = HeaderRegistry()
for _name in _WRITTEN_AS_GIVEN:
    _HEADERS.map_to_type(_name, _AsWritten)
_INTERNATIONAL = default_policy.clone(header_factory=_HEADERS)
"""``policy.default``, writing :data:`_WRITTEN_AS_GIVEN` headers as given. The relay
client flattens with a policy of its own, but each header folds itself as its class says."""


def _international_message(
    sender: tuple[str, str], to: str, headers: dict[str, str], text: str, html: str | None
) -> EmailMessage:
    """The message for a non-ASCII address: ``policy.default`` writes SMTPUTF8 headers."""
    email = EmailMessage(policy=_INTERNATIONAL)
    try:
        email["From"] = Address(display_name=sender[0], addr_spec=sender[1])
        email["To"] = to
        for name, value in headers.items():
            email[name] = value
        email.set_content(text)
        if html is not None:
            email.add_alternative(html, subtype="html")
    except ValueError as exc:
        raise PermanentChannelError(f"cannot build the email: {exc}") from exc
    return email


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        if smtp.is_connected:
            await smtp.quit()
    smtp.close()


def _classify(exc: aiosmtplib.SMTPException | OSError) -> ChannelError:
    """SMTP's own rule: 5xx is final, 4xx and a lost connection mean "try later"; settings
    the relay cannot take refuse the account."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        final = [code for code in codes if code >= 500]
        code = final[0] if final else codes[0]
        reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return _by_code(code, f"the mail server refused the recipient ({reason})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, f"the mail server answered {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentChannelError(f"the mail server cannot do what we need: {exc.message}")
    if isinstance(exc, TimeoutError):  # aiosmtplib timeouts subclass it
        return TransientChannelError(f"the mail server did not answer in time: {exc}")
    if type(exc) is aiosmtplib.SMTPException:
        # Not a reply, a timeout or a lost connection (each a subclass): aiosmtplib found
        # the relay lacks what the settings ask of it (STARTTLS, AUTH: often port 587
        # without STARTTLS turned on). Fixed in the settings, not by waiting.
        return AccountChannelError(f"the mail server cannot take these settings: {exc}")
    return TransientChannelError(f"could not reach the mail server: {type(exc).__name__}: {exc}")


# Authentication required (530), mechanism too weak (534), credentials invalid (535): the
# relay refuses the store's login, not the message.
_ACCOUNT_CODES = frozenset({530, 534, 535})


def _by_code(code: int, reason: str) -> ChannelError:
    if code in _ACCOUNT_CODES:
        reason += " (the SMTP login was refused)"
        return AccountChannelError(reason, provider_code=str(code))
    if code >= 500:
        return PermanentChannelError(reason, provider_code=str(code))
    return TransientChannelError(reason, provider_code=str(code))
