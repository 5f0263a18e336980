"""``POST /api/inbound``: a sandbox customer writes to the store.

The page's composer (or a test) posts ``{"channel", "from", "text"}`` plus optional
``name``, ``reply_to`` (the provider id of the store's message being answered),
``subject`` (email) and ``photo`` (WhatsApp: ``true`` sends :func:`parcel_photo`, with
``text``, now optional, as its caption; the store keeps the file under a new media id,
which the WhatsApp stand-in serves as Graph does). The composer builds that provider's
real webhook, signs it with the demo workspace's secrets, records the customer's message
in the store (direction ``"inbound"``, so the page shows both sides of the chat) and posts
the webhook to parley's own route. It answers with parley's status code and body, so a
refused signature or a missing route is visible rather than hidden.

The request must be ``application/json``: a cross-site page cannot send that without a
CORS preflight this app never grants, so the endpoint cannot be driven from elsewhere.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from typing import Any, Final

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.sandbox.instagram import new_instagram_mid
from parley.sandbox.store import CapturedMessage, SandboxStore, StoredMedia
from parley.sandbox.webhooks import ProviderWebhooks, SignedWebhook, WebhookPoster
from parley.sandbox.whatsapp import new_wamid
from parley.settings import Settings

MAX_TEXT_CHARS: Final = 4096
MAX_FIELD_CHARS: Final = 300
E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")
IGSID: Final = re.compile(r"^\d{1,32}$")
# Control characters would let a name or subject smuggle headers into an email.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

PHOTO_SIZE: Final = (96, 64)
_BACKGROUND: Final = (241, 238, 230)
# (left, top, right, bottom, colour), painted in order: a parcel on a table, its taped
# lid, a shipping label with two lines of address.
_PARCEL: Final = (
    (14, 52, 84, 56, (214, 208, 196)),
    (22, 22, 74, 53, (166, 117, 66)),
    (22, 14, 74, 22, (190, 140, 85)),
    (45, 14, 51, 53, (222, 196, 140)),
    (56, 36, 71, 47, (250, 250, 245)),
    (58, 39, 69, 40, (90, 90, 90)),
    (58, 43, 66, 44, (90, 90, 90)),
)


@functools.cache
def parcel_photo() -> bytes:
    """The sample photo a sandbox customer sends: a 96x64 RGB PNG of a brown parcel on a
    light background, drawn here so no binary file is kept in the repository."""
    width, height = PHOTO_SIZE
    pixels = [[_BACKGROUND] * width for _ in range(height)]
    for left, top, right, bottom, colour in _PARCEL:
        for y in range(top, bottom):
            pixels[y][left:right] = [colour] * (right - left)
    # Each scanline starts with its filter type, 0 (none).
    raw = b"".join(b"\x00" + bytes(value for pixel in row for value in pixel) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def new_media_id() -> str:
    """A media id shaped like the Cloud API's: sixteen digits."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


@dataclass(frozen=True)
class Draft:
    """A validated composer request."""

    channel: str
    sender: str
    text: str
    name: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    photo: bool = False


def _optional(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS or _CONTROL.search(value):
        raise ValueError(f"'{key}' must be a single-line string of at most {MAX_FIELD_CHARS}")
    return value


def _sender(channel: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("'from' is required")
    if channel in ("whatsapp", "sms"):
        if not E164.match(value):
            raise ValueError("'from' must be an E.164 number such as +447911123456")
        return value
    if channel == "instagram":
        if not IGSID.match(value):
            raise ValueError("'from' must be an Instagram-scoped id (digits)")
        return value
    address = parseaddr(value)[1]
    if "@" not in address or _CONTROL.search(value) or " " in address:
        raise ValueError("'from' must be an email address")
    return address.lower()


def _text(value: object, *, caption: bool) -> str:
    """The message's text; a photo's caption may be left out (``""``)."""
    if caption:
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"'text' must be a string of at most {MAX_TEXT_CHARS}")
        return value if value.strip() else ""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"'text' must be a non-empty string of at most {MAX_TEXT_CHARS}")
    return value


def parse_draft(payload: object) -> Draft:
    """Validate a composer request; ``ValueError`` says what is wrong."""
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    channel = payload.get("channel")
    if channel not in ("whatsapp", "sms", "instagram", "email"):
        raise ValueError("'channel' must be one of whatsapp, sms, instagram, email")
    photo = payload.get("photo")
    if photo is None:
        photo = False
    if not isinstance(photo, bool):
        raise ValueError("'photo' must be true or false")
    if photo and channel != "whatsapp":
        raise ValueError("'photo' is for whatsapp only")
    text = _text(payload.get("text"), caption=photo)
    draft = Draft(
        channel=channel,
        sender=_sender(channel, payload.get("from")),
        text=text,
        name=_optional(payload, "name"),
        reply_to=_optional(payload, "reply_to"),
        subject=_optional(payload, "subject"),
        photo=photo,
    )
    if draft.subject is not None and channel != "email":
        raise ValueError("'subject' is for email only")
    if draft.reply_to is not None and channel == "sms":
        raise ValueError("an SMS cannot reply to a particular message")
    return draft


class CustomerComposer:
    """Handler for ``POST /api/inbound``."""

    def __init__(self, store: SandboxStore, settings: Settings, poster: WebhookPoster) -> None:
        self._store = store
        self._settings = settings
        self._webhooks = ProviderWebhooks(settings)
        self._poster = poster
        self._builders: dict[str, Callable[[Draft], tuple[SignedWebhook, CapturedMessage]]] = {
            "whatsapp": self._whatsapp,
            "sms": self._sms,
            "instagram": self._instagram,
            "email": self._email,
        }

    async def compose(self, request: Request) -> Response:
        """Build, sign, record and post one customer message; answer with parley's reply."""
        if request.headers.get("content-type", "").partition(";")[0].strip() != (
            "application/json"
        ):
            return JSONResponse({"error": "send application/json"}, status_code=415)
        try:
            draft = parse_draft(json.loads(await request.body()))
        except ValueError as error:  # includes invalid JSON
            return JSONResponse({"error": str(error)}, status_code=400)
        webhook, message = self._builders[draft.channel](draft)
        self._store.add(message)
        try:
            answer = await self._poster.post(webhook)
        except httpx2.HTTPError as exc:
            return JSONResponse(
                {"error": f"could not reach parley's webhook at {webhook.url}: {exc!r}"},
                status_code=502,
            )
        media_type = answer.headers.get("content-type", "")
        if not media_type.startswith("application/json"):
            # Whatever parley answered is shown as text, never rendered by this origin.
            media_type = "text/plain; charset=utf-8"
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=media_type,
            headers={"X-Content-Type-Options": "nosniff"},
        )

    @staticmethod
    def _inbound(
        draft: Draft,
        *,
        to: str,
        sender: str,
        provider_message_id: str,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> CapturedMessage:
        return CapturedMessage(
            channel=draft.channel,
            to=to,
            sender=sender,
            body=draft.text if body is None else body,
            subject=draft.subject,
            provider_message_id=provider_message_id,
            headers=headers or {},
            direction="inbound",
        )

    def _whatsapp(self, draft: Draft) -> tuple[SignedWebhook, CapturedMessage]:
        wa_id = draft.sender.removeprefix("+")
        wamid = new_wamid()
        number = self._settings.whatsapp_phone_number_id
        body = None
        if draft.photo:
            media = StoredMedia(
                media_id=new_media_id(),
                phone_number_id=number,
                content=parcel_photo(),
                mime_type="image/png",
            )
            # Kept before the webhook goes: the id it names must already be there to fetch.
            self._store.add_media(media)
            webhook = self._webhooks.whatsapp_image(
                wa_id=wa_id,
                media=media,
                caption=draft.text or None,
                message_id=wamid,
                name=draft.name,
                reply_to=draft.reply_to,
            )
            body = f"📷 {draft.text}" if draft.text else "📷 photo"
        else:
            webhook = self._webhooks.whatsapp_message(
                wa_id=wa_id,
                text=draft.text,
                message_id=wamid,
                name=draft.name,
                reply_to=draft.reply_to,
            )
        # The WhatsApp stand-in captures recipients as wa_id; so does this, so a customer's
        # messages and parley's replies form one thread on the page.
        message = self._inbound(
            draft, to=number, sender=wa_id, provider_message_id=wamid, body=body
        )
        return webhook, message

    def _sms(self, draft: Draft) -> tuple[SignedWebhook, CapturedMessage]:
        sid = "SM" + secrets.token_hex(16)
        webhook = self._webhooks.twilio_message(
            sender=draft.sender, text=draft.text, message_sid=sid
        )
        message = self._inbound(
            draft,
            to=self._settings.twilio_from_number,
            sender=draft.sender,
            provider_message_id=sid,
        )
        return webhook, message

    def _instagram(self, draft: Draft) -> tuple[SignedWebhook, CapturedMessage]:
        mid = new_instagram_mid()
        webhook = self._webhooks.instagram_message(
            igsid=draft.sender, text=draft.text, mid=mid, reply_to=draft.reply_to
        )
        message = self._inbound(
            draft,
            to=self._settings.instagram_account_id,
            sender=draft.sender,
            provider_message_id=mid,
        )
        return webhook, message

    def _email(self, draft: Draft) -> tuple[SignedWebhook, CapturedMessage]:
        # A mail client names its Message-IDs after its own domain.
        message_id = f"<{secrets.token_hex(12)}@{draft.sender.rpartition('@')[2]}>"
        webhook = self._webhooks.mailgun_message(
            address=draft.sender,
            name=draft.name,
            subject=draft.subject,
            text=draft.text,
            message_id=message_id,
            reply_to=draft.reply_to,
        )
        headers = {
            "From": formataddr((draft.name, draft.sender)) if draft.name else draft.sender,
            "To": self._webhooks.inbound_address(),
            "Message-ID": message_id,
        }
        if draft.reply_to:
            headers["In-Reply-To"] = draft.reply_to
        message = self._inbound(
            draft,
            to=self._webhooks.inbound_address(),
            sender=draft.sender,
            provider_message_id=message_id,
            headers=headers,
        )
        return webhook, message
