"""Read Twilio's messaging webhooks: ``X-Twilio-Signature`` and the posted parameters.

Twilio signs ``base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...))``
over the **exact URL it requested** (scheme, host, port, path and query) followed by the
POST parameters sorted by name. Behind a TLS-terminating proxy the app sees ``http`` and
an internal host, so the URL is rebuilt from the deployment's configured public base URL
(:func:`public_url`), never from the request's ``Host`` header, which a client controls.

The same endpoint receives two kinds of post: an inbound SMS/MMS (it has a ``Body``) and
a status callback for a message we sent (``MessageStatus`` and no ``Body``). Twilio signs
no timestamp, so replays are caught by deduplicating on ``MessageSid`` plus status.

A store may send through a Messaging Service (its address is the service's ``MG…`` SID):
Twilio then names the pool's number in ``From`` (receipts) or ``To`` (inbound) and the
service in ``MessagingServiceSid``, and both are carried on the event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

from parley.channels.base import (
    Attachment,
    ChannelKind,
    InboundEvent,
    InboundMessage,
    MalformedWebhook,
    SignatureError,
    StatusUpdate,
)

SIGNATURE_HEADER = "X-Twilio-Signature"

Params = Mapping[str, str] | Iterable[tuple[str, str]]
"""Form parameters: a mapping, or (name, value) pairs when a name repeats (pass Starlette's
``form.multi_items()`` so every value of a repeated name is signed, as Twilio does)."""

_DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_MEDIA = 10  # Twilio's limit of media items per MMS

# Only final or customer-visible states become events; queued, accepted, sending,
# scheduled, received and the like say nothing delivery acts on.
_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
}

# Status callbacks carry an ErrorCode but rarely an ErrorMessage; a store owner needs
# words. https://www.twilio.com/docs/api/errors
_ERROR_EXPLANATIONS = {
    "21610": "the recipient has opted out of messages from this number (replied STOP)",
    "30003": "the handset is unreachable (switched off or out of coverage)",
    "30004": "the message was blocked (the recipient or their carrier blocks it)",
    "30005": "the number is unknown or no longer in service",
    "30006": "the number is a landline or its carrier cannot receive SMS",
    "30007": "the carrier filtered the message as spam or unregistered traffic",
    "30008": "delivery failed for a reason the carrier did not give",
}


def public_url(base_url: str, path: str, query: str) -> str:
    """The URL Twilio requested: the configured public base URL, the path, the raw query.

    ``base_url`` may carry a path prefix (``https://shop.example/parley`` when a proxy
    mounts parley under ``/parley`` and strips it); ``path`` is the path the app routed
    (``/webhooks/twilio/demo``); ``query`` is the raw, still percent-encoded query string
    exactly as received (Starlette's ``request.url.query``), because Twilio signed the
    bytes it sent, and re-encoding could change them.
    """
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    url = base_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``.

    Names are sorted, and each name's distinct values are sorted too (Twilio's own
    validator does both, which matters only when a name repeats).
    """
    values: dict[str, set[str]] = {}
    for name, value in params.items() if isinstance(params, Mapping) else params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def verify_signature(
    url: str,
    params: Params,
    header: str | None,
    auth_token: str,
    *,
    body: bytes | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``header`` is Twilio's signature for the post.

    ``url`` is the rebuilt public URL (:func:`public_url`). Like Twilio's official
    validator, the URL is also tried with the scheme's default port added or removed
    (Twilio's signing side is inconsistent about ``:443``/``:80``); any other difference
    (``http`` vs ``https``, host, path, query, a changed or extra parameter) fails.

    For a JSON body Twilio appends ``bodySHA256=<hex sha256 of the body>`` to the URL and
    signs the URL alone: pass the raw ``body`` (and no ``params``); its hash must match.
    """
    if not auth_token:
        raise SignatureError("no Twilio auth token is configured for this workspace")
    if not header:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing")
    body_hashes = parse_qs(urlsplit(url).query).get("bodySHA256")
    if body_hashes:
        if body is None:
            raise SignatureError("the URL carries bodySHA256 but no body was given to check")
        digest = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(body_hashes[0].lower().encode(), digest.encode()):
            raise SignatureError("the body does not match the bodySHA256 Twilio signed")
        params = {}
    elif body is not None:
        raise SignatureError("a raw body is only signed through a bodySHA256 URL parameter")
    provided = header.strip().encode()
    # Every candidate is compared, so the timing does not reveal which form matched.
    matches = [
        hmac.compare_digest(compute_signature(candidate, params, auth_token).encode(), provided)
        for candidate in _port_variants(url)
    ]
    if not any(matches):
        raise SignatureError(f"the {SIGNATURE_HEADER} signature does not match this request")


def _port_variants(url: str) -> list[str]:
    """``url`` as given, plus the same URL with its scheme's default port made explicit
    or dropped. A non-default port is never removed: Twilio signs it as configured."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or parts.hostname is None:
        return [url]
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: only the URL as given can match
        return [url]
    host = parts.netloc.rpartition("@")[2]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare_host = host.rsplit(":", 1)[0] if port is not None else host
    if port is None:
        other = f"{userinfo}{bare_host}:{default}"
    elif port == default:
        other = f"{userinfo}{bare_host}"
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


def parse(params: Mapping[str, str], *, reference: str | None = None) -> list[InboundEvent]:
    """The event in one Twilio messaging post: an inbound message, a status, or nothing.

    Raises :class:`MalformedWebhook` when ``MessageSid`` (or the older ``SmsSid``) is
    missing, or an inbound message lacks ``From`` or has unreadable media fields.
    ``reference`` is the message's reference from the ``StatusCallback`` URL, if any.
    """
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid:
        raise MalformedWebhook("MessageSid (or SmsSid) is missing")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if status is not None and "Body" not in params:
        update = _status(sid, status, params, reference)
        return [update] if update is not None else []
    return [_inbound(sid, params)]


def _status(
    sid: str, status: str, params: Mapping[str, str], reference: str | None
) -> StatusUpdate | None:
    mapped = _STATUSES.get(status.strip().lower())
    if mapped is None:
        return None
    error_code = params.get("ErrorCode") or None
    # A status callback is about a message we sent: From is the store, To the customer.
    # Sent through a Messaging Service, From is the pool's number Twilio picked.
    return StatusUpdate(
        channel=ChannelKind.SMS,
        provider_message_id=sid,
        status=mapped,
        account=params.get("From") or None,
        messaging_service=params.get("MessagingServiceSid") or None,
        recipient=params.get("To") or None,
        error_code=error_code,
        error_reason=_error_reason(error_code, params.get("ErrorMessage")),
        reference=reference,
    )


def _error_reason(code: str | None, message: str | None) -> str | None:
    explanation = _ERROR_EXPLANATIONS.get(code or "")
    parts = [part for part in (explanation, message) if part]
    if parts:
        return " - ".join(parts)
    return f"Twilio error {code}" if code else None


def _inbound(sid: str, params: Mapping[str, str]) -> InboundMessage:
    sender = params.get("From")
    if not sender:
        raise MalformedWebhook("From is missing from an inbound message")
    attachments = _media(params)
    return InboundMessage(
        channel=ChannelKind.SMS,
        provider_message_id=sid,
        sender=sender,
        text=params.get("Body", ""),
        account=params.get("To") or None,
        messaging_service=params.get("MessagingServiceSid") or None,
        sender_name=params.get("ProfileName") or None,
        kind=attachments[0].kind if attachments else "text",
        attachments=attachments,
    )


def _media(params: Mapping[str, str]) -> tuple[Attachment, ...]:
    count_text = params.get("NumMedia", "0") or "0"
    if not (count_text.isascii() and count_text.isdigit()):
        raise MalformedWebhook(f"NumMedia is not a number: {count_text!r}")
    if len(count_text) > 2 or int(count_text) > MAX_MEDIA:
        raise MalformedWebhook(f"NumMedia {count_text} is over Twilio's limit of {MAX_MEDIA}")
    attachments = []
    for index in range(int(count_text)):
        url = params.get(f"MediaUrl{index}")
        if not url:
            raise MalformedWebhook(f"NumMedia is {count_text} but MediaUrl{index} is missing")
        mime_type = params.get(f"MediaContentType{index}") or None
        major = (mime_type or "").partition("/")[0]
        # Media URLs end in the Media resource's sid (ME...), Twilio's id for the file.
        last_segment = url.rstrip("/").rpartition("/")[2]
        attachments.append(
            Attachment(
                kind=major if major in ("image", "video", "audio") else "file",
                provider_media_id=last_segment if last_segment.startswith("ME") else None,
                url=url,
                mime_type=mime_type,
            )
        )
    return tuple(attachments)
