"""Read inbound email posted by a Mailgun route's ``forward()`` action.

Mailgun parses the MIME message and posts form fields: ``recipient`` (the store's inbound
address), ``sender`` (the envelope sender), ``from``, ``subject``, ``body-plain``,
``stripped-text`` (the new text without the quoted thread and signature),
``message-headers`` (every header as a JSON list of ``[name, value]`` pairs), the most
useful headers again as their own fields (``Message-Id``, ``In-Reply-To``,
``References``), ``attachment-count`` with files ``attachment-1`` …, and a signature
block: ``timestamp``, ``token`` and ``signature`` = hex HMAC-SHA256 of
``timestamp + token`` keyed with the webhook signing key.

Message-IDs are kept in their angle-bracket form, ``<local@domain>``, everywhere
(``provider_message_id``, ``reply_to``, each of ``references``), which is exactly what
:func:`parley.channels.email_smtp.adapter.message_id_for` writes: a customer's
``In-Reply-To`` then equals the ``provider_message_id`` parley stored for its own email,
and the reply joins that conversation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parseaddr
from typing import Protocol

from parley.channels.base import (
    Attachment,
    ChannelKind,
    InboundMessage,
    MalformedWebhook,
    SignatureError,
)

DEFAULT_TOLERANCE = timedelta(seconds=300)
# Far above what fits in Mailgun's 25 MB message limit, far below a count that would make
# listing them expensive: the count is read before anything else is known about the post.
MAX_ATTACHMENTS = 100

_BRACKETED_ID = re.compile(r"<[^<>\s]+>")


class Upload(Protocol):
    """An uploaded file as a form parser hands it over (Starlette's ``UploadFile``)."""

    @property
    def filename(self) -> str | None: ...

    @property
    def content_type(self) -> str | None: ...


def sign(timestamp: str, token: str, signing_key: str) -> str:
    """The ``signature`` Mailgun sends for ``timestamp`` and ``token`` (tests, the sandbox)."""
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_signature(
    timestamp: str,
    token: str,
    signature: str,
    signing_key: str,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Raise :class:`SignatureError` unless the post is signed and fresh.

    Mailgun signs its timestamp, so unlike Meta or Twilio a replay window is possible:
    a timestamp more than ``tolerance`` old, or as far in the future (clock skew is
    bounded both ways), is refused even with a valid signature. ``now`` is passed in
    (``clock.utc_now()``) so the check is testable; it must be timezone-aware. The
    token should also be remembered for the tolerance window to refuse exact replays.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not signing_key:
        raise SignatureError("no Mailgun signing key is configured for this workspace")
    if not (timestamp and token and signature):
        raise SignatureError("the timestamp, token or signature field is missing")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureError(f"the timestamp is not a number of seconds: {timestamp!r}")
    expected = sign(timestamp, token, signing_key)
    if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise SignatureError("the Mailgun signature does not match")
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise SignatureError(f"the timestamp is out of range: {timestamp}") from exc
    age = now - signed_at
    if age > tolerance:
        raise SignatureError(f"the signature is {age.total_seconds():.0f} s old (stale)")
    if -age > tolerance:
        raise SignatureError(f"the signature is dated {-age.total_seconds():.0f} s in the future")


def parse(fields: Mapping[str, str | Upload]) -> InboundMessage:
    """The customer's email as an :class:`InboundMessage`.

    ``sender`` is who an answer goes to, lower-cased: a single ``Reply-To`` address (other
    than the store's own), else the ``From`` address, else the envelope ``sender``. A
    contact form or help widget sends every shopper's message From its own mailer with
    the shopper as ``Reply-To`` (RFC 5322 3.6.2: replies go there), so ``From`` would
    file every shopper as one customer and answer the mailer. The envelope address is
    often rewritten by forwarders (SRS) and bounce handling (VERP), while ``From`` is the
    person. ``text`` is ``stripped-text`` (only what the customer just wrote) or else
    ``body-plain``. A message without a ``Message-Id`` (RFC 5322 only says SHOULD) is
    identified by Mailgun's ``token``.

    Raises :class:`MalformedWebhook` when there is no sender, no recipient or no id.
    """
    headers = _Headers(fields)
    recipients = [found for _, found in getaddresses([headers.get("recipient") or ""]) if found]
    if not recipients:
        raise MalformedWebhook("recipient is missing")
    display_name, address = _reply_to(headers.get("reply-to"), store=recipients[0])
    if "@" not in address:
        display_name, address = parseaddr(headers.get("from") or "")
    if "@" not in address:
        display_name, address = "", parseaddr(headers.get("sender") or "")[1]
    if "@" not in address:
        raise MalformedWebhook("neither from nor sender holds an email address")
    message_id = _first_id(headers.get("message-id"))
    if message_id is None:
        token = headers.get("token")
        if not token:
            raise MalformedWebhook("there is neither a Message-Id nor a token")
        message_id = f"<{token}@mailgun.invalid>"
    return InboundMessage(
        channel=ChannelKind.EMAIL,
        provider_message_id=message_id,
        sender=address.lower(),
        text=headers.get("stripped-text") or headers.get("body-plain") or "",
        account=recipients[0].lower(),
        sent_at=_received_at(headers.get("timestamp")),
        sender_name=display_name or None,
        attachments=_attachments(fields, headers.get("attachment-count")),
        reply_to=_first_id(headers.get("in-reply-to")),
        references=_ids(headers.get("references")),
        subject=headers.get("subject") or None,
        is_automated=_is_automated(headers),
    )


AUTOMATED_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond")


def _is_automated(headers: _Headers) -> bool:
    """Whether a machine sent the mail: ``Auto-Submitted`` other than ``no`` (RFC 3834
    5.1), a ``Precedence`` of bulk, junk, list or auto_reply (what responders used before
    it), or a vacation responder's own ``X-Autoreply`` / ``X-Autorespond``."""
    submitted = (headers.get("auto-submitted") or "no").split(";")[0].strip().lower()
    precedence = (headers.get("precedence") or "").strip().lower()
    return (
        submitted != "no"
        or precedence in AUTOMATED_PRECEDENCE
        or any(headers.get(name) for name in AUTO_REPLY_HEADERS)
    )


def _reply_to(value: str | None, *, store: str) -> tuple[str, str]:
    """The one (name, address) a ``Reply-To`` names, or empty when it names none, several
    (no single person to file the message under) or the store's own address."""
    named = [(name, address) for name, address in getaddresses([value or ""]) if address]
    if len(named) != 1 or named[0][1].lower() == store.lower():
        return "", ""
    return named[0]


def _received_at(timestamp: str | None) -> datetime | None:
    """When Mailgun received the message: its signed timestamp, not the sender's Date."""
    if not timestamp or not (timestamp.isascii() and timestamp.isdigit()):
        return None
    try:
        return datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _ids(value: str | None) -> tuple[str, ...]:
    """Every Message-ID in a header, in order, bracketed.

    Well-formed headers hold ``<id>`` tokens, possibly with comments or folding between
    them; some clients write bare ids separated by spaces, which are bracketed here.
    """
    if not value:
        return ()
    bracketed = _BRACKETED_ID.findall(value)
    if bracketed:
        return tuple(bracketed)
    return tuple(f"<{part.strip('<>')}>" for part in value.replace(",", " ").split())


def _first_id(value: str | None) -> str | None:
    found = _ids(value)
    return found[0] if found else None


def _attachments(
    fields: Mapping[str, str | Upload], count_text: str | None
) -> tuple[Attachment, ...]:
    if not count_text:
        return ()
    if not (count_text.isascii() and count_text.isdigit()):
        raise MalformedWebhook(f"attachment-count is not a number: {count_text!r}")
    if len(count_text) > 3 or int(count_text) > MAX_ATTACHMENTS:
        raise MalformedWebhook(f"attachment-count {count_text} is over {MAX_ATTACHMENTS}")
    attachments = []
    for index in range(1, int(count_text) + 1):
        upload = fields.get(f"attachment-{index}")
        if upload is None or isinstance(upload, str):
            # The route kept only the text fields: the count is still worth showing.
            attachments.append(Attachment(kind="file"))
        else:
            attachments.append(
                Attachment(
                    kind="file",
                    filename=upload.filename or None,
                    mime_type=upload.content_type or None,
                )
            )
    return tuple(attachments)


class _Headers:
    """Case-insensitive lookup over the text fields, then the ``message-headers`` list.

    Mailgun posts some headers twice (as a field and inside ``message-headers``) and
    capitalises field names inconsistently (``Message-Id``, ``In-Reply-To``); the field
    wins because it is what Mailgun itself decoded.
    """

    def __init__(self, fields: Mapping[str, str | Upload]) -> None:
        self._fields = {
            name.lower(): value for name, value in fields.items() if isinstance(value, str)
        }
        self._headers: dict[str, str] = {}
        raw = self._fields.get("message-headers")
        if raw:
            try:
                pairs = json.loads(raw)
            except ValueError as exc:
                raise MalformedWebhook(f"message-headers is not JSON ({exc})") from exc
            if not isinstance(pairs, list):
                raise MalformedWebhook("message-headers is not a list")
            for pair in pairs:
                if not (
                    isinstance(pair, list)
                    and len(pair) == 2
                    and all(isinstance(p, str) for p in pair)
                ):
                    raise MalformedWebhook(
                        "message-headers holds something other than [name, value]"
                    )
                # The first occurrence wins, as for a MIME parser's message[name].
                self._headers.setdefault(pair[0].lower(), pair[1])

    def get(self, name: str) -> str | None:
        value = self._fields.get(name)
        return value if value is not None else self._headers.get(name)
