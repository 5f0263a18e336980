"""Read WhatsApp Cloud API webhooks: the signature, the subscribe handshake, the events.

Meta posts ``{"object": "whatsapp_business_account", "entry": [{"changes": [...]}]}``.
Changes with ``field: "messages"`` concern conversations. Their ``value`` carries
``metadata.phone_number_id`` (the store's number, our ``account``), ``contacts`` (the
customer's profile name), ``messages`` (what customers wrote) and ``statuses`` (what
became of what we sent). ``user_preferences`` is a customer stopping or resuming the
business's marketing messages from WhatsApp's own menu; ``message_template_status_update``
and ``template_category_update`` are Meta's review of a template and its change of
category. Every other field (account updates, quality scores, calls, Business-app echoes)
is acknowledged and ignored here, so a new field Meta adds never fails a delivery.

Signature checking and the ``hub.challenge`` handshake are Meta-wide and live in
:mod:`parley.channels.meta`; they are re-exported here so a route needs one import.
"""

from __future__ import annotations

from parley.channels.base import (
    Attachment,
    ChannelKind,
    InboundEvent,
    InboundMessage,
    MarketingPreference,
    StatusUpdate,
    TemplateReview,
)
from parley.channels.meta import (
    Batch,
    Located,
    handshake,
    load_payload,
    sign,
    verify_signature,
)

__all__ = ["handshake", "parse", "sign", "verify_signature"]

MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
TEMPLATE_FIELDS = frozenset({"message_template_status_update", "template_category_update"})
MARKETING = {"stop": False, "resume": True, "signup": True}
"""``user_preferences`` values for ``marketing_messages``: what the customer asked for in
WhatsApp itself (stop, resume, or sign up through the business's sign-up link)."""

# "played" is a voice message we sent being listened to: it can only follow "read".
_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}


def parse(body: bytes) -> list[InboundEvent]:
    """Every customer message and delivery status in one webhook body, in payload order.

    Raises :class:`~parley.channels.base.MalformedWebhook` when the body is not JSON or
    not shaped like a WhatsApp Business Account notification, and
    :class:`~parley.channels.meta.PartlyMalformed` (carrying every other event) when only
    some entries, changes, messages or statuses are not.
    """
    payload = load_payload(body, "whatsapp_business_account")
    batch = Batch()
    for entry in payload.children("entry"):
        with batch.part():
            for change in entry.children("changes"):
                with batch.part():
                    _change(change, batch)
    return batch.read()


def _change(change: Located, batch: Batch) -> None:
    """One change's events into ``batch``, each message and status read on its own."""
    field = change.data.get("field")
    if field in TEMPLATE_FIELDS:
        batch.events.append(_template_review(change.child("value")))
        return
    if field == "user_preferences":
        batch.events.extend(_preferences(change.child("value")))
        return
    if field != "messages":
        return
    value = change.child("value")
    account = value.child("metadata").optional_text("phone_number_id")
    names = _profile_names(value)
    for item in value.children("messages"):
        with batch.part():
            batch.events.append(_message(item, account, names))
    for item in value.children("statuses"):
        with batch.part():
            update = _status(item, account)
            if update is not None:
                batch.events.append(update)


def _template_review(value: Located) -> TemplateReview:
    """A template's new status (with its category) or its new category."""
    status = value.optional_text("event")
    category = value.optional_text("new_category") or value.optional_text(
        "message_template_category"
    )
    reason = value.optional_text("reason")
    rejection = value.child("rejection_info").optional_text("reason")
    template_id = value.data.get("message_template_id")
    return TemplateReview(
        name=value.text("message_template_name"),
        language=value.text("message_template_language"),
        status=status.upper() if status else None,
        category=category.upper() if category else None,
        meta_id=str(template_id) if template_id is not None else None,
        reason=rejection or (reason if reason and reason != "NONE" else None),
    )


def _preferences(value: Located) -> list[MarketingPreference]:
    """Each customer's stop, resume or sign-up for marketing messages; other categories
    and values are left."""
    account = value.child("metadata").optional_text("phone_number_id")
    preferences = []
    for item in value.children("user_preferences"):
        choice = item.optional_text("value")
        if item.optional_text("category") != "marketing_messages" or choice not in MARKETING:
            continue
        preferences.append(
            MarketingPreference(
                channel=ChannelKind.WHATSAPP,
                sender=as_e164(item.text("wa_id")),
                wants_marketing=MARKETING[choice],
                detail=item.optional_text("detail") or f"marketing messages: {choice}",
                account=account,
                occurred_at=item.time("timestamp"),
            )
        )
    return preferences


def as_e164(wa_id: str) -> str:
    """``447911123456`` → ``+447911123456``; anything not a plain number is kept as is.

    Group ids and Meta's newer business-scoped user ids are not phone numbers, and
    inventing a ``+`` for them would make up an identity.
    """
    return f"+{wa_id}" if wa_id.isascii() and wa_id.isdigit() else wa_id


def _profile_names(value: Located) -> dict[str, str]:
    names = {}
    for contact in value.children("contacts"):
        wa_id = contact.optional_text("wa_id")
        name = contact.child("profile").optional_text("name")
        if wa_id and name:
            names[wa_id] = name
    return names


def _message(item: Located, account: str | None, names: dict[str, str]) -> InboundMessage:
    sender = item.text("from")
    kind = item.text("type")
    text, attachments = _content(item, kind)
    return InboundMessage(
        channel=ChannelKind.WHATSAPP,
        provider_message_id=item.text("id"),
        sender=as_e164(sender),
        text=text,
        account=account,
        sent_at=item.time("timestamp"),
        sender_name=names.get(sender),
        kind=kind,
        attachments=attachments,
        reply_to=item.child("context").optional_text("id"),
    )


def _content(item: Located, kind: str) -> tuple[str, tuple[Attachment, ...]]:
    """The readable text and the media of one message, by its ``type``.

    Types with nothing to read here (reaction, order, contacts, system, unsupported and
    any type Meta adds later) keep their ``kind`` and an empty text, so the inbox can
    still show that something arrived.
    """
    if kind == "text":
        return item.child("text").optional_text("body") or "", ()
    if kind == "interactive":
        # button_reply / list_reply carry what the customer tapped as its title; other
        # interactive replies (flows, call permissions) have no text meant for people.
        interactive = item.child("interactive")
        reply_type = interactive.optional_text("type")
        reply = interactive.child(reply_type) if reply_type else interactive
        return reply.optional_text("title") or "", ()
    if kind == "button":
        return item.child("button").optional_text("text") or "", ()
    if kind in MEDIA_TYPES:
        media = item.child(kind)
        caption = media.optional_text("caption")
        attachment = Attachment(
            kind=kind,
            provider_media_id=media.optional_text("id"),
            url=media.optional_text("url"),
            mime_type=media.optional_text("mime_type"),
            filename=media.optional_text("filename"),
            caption=caption,
        )
        return caption or "", (attachment,)
    if kind == "location":
        return _location(item.child("location"))
    return "", ()


def _location(location: Located) -> tuple[str, tuple[Attachment, ...]]:
    latitude, longitude = location.data.get("latitude"), location.data.get("longitude")
    label = ", ".join(
        part for part in (location.optional_text("name"), location.optional_text("address")) if part
    )
    # A geo: URI (RFC 5870) keeps the coordinates in the one field every attachment has.
    url = location.optional_text("url")
    if url is None and _is_number(latitude) and _is_number(longitude):
        url = f"geo:{latitude},{longitude}"
    attachment = Attachment(kind="location", url=url, caption=label or None)
    return label, (attachment,)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _status(item: Located, account: str | None) -> StatusUpdate | None:
    status = _STATUSES.get(item.text("status").lower())
    if status is None:
        return None
    recipient = item.optional_text("recipient_id")
    error_code, error_reason = _first_error(item)
    return StatusUpdate(
        channel=ChannelKind.WHATSAPP,
        provider_message_id=item.text("id"),
        status=status,
        account=account,
        recipient=as_e164(recipient) if recipient else None,
        occurred_at=item.time("timestamp"),
        error_code=error_code,
        error_reason=error_reason,
        reference=item.optional_text("biz_opaque_callback_data"),
    )


def _first_error(item: Located) -> tuple[str | None, str | None]:
    """``errors[0]`` as (code, "title: message - details"), without repeating Meta."""
    errors = item.children("errors")
    if not errors:
        return None, None
    error = errors[0]
    code = error.data.get("code")
    title = error.optional_text("title")
    message = error.optional_text("message")
    details = error.child("error_data").optional_text("details")
    reason = title or message
    if message and reason and message != reason:
        reason = f"{reason}: {message}"
    if details:
        reason = f"{reason} - {details}" if reason else details
    return (str(code) if code is not None else None), reason
