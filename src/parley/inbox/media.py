"""A customer's attachment as the provider holds it, for an agent of the store to open.

The timeline links such attachments by message and position, never by the provider's
URL or id, so what is fetched, and with which account's credentials, is decided here from
the store's own rows: an agent can only reach the files of their own store's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import DELETED
from parley.errors import NotFound
from parley.messaging.models import Direction, Message
from parley.workspaces.models import ChannelAccount

PROVIDERS = {"whatsapp": "whatsapp_cloud", "sms": "twilio"}
"""The channels whose files need the account's credentials, and their provider."""


@dataclass(frozen=True)
class HeldMedia:
    """One attachment, where its provider keeps it, and the account it came to."""

    channel: str
    url: str | None
    media_id: str | None
    store_address: str | None
    secrets: dict[str, Any] | None
    """The store's own account's secrets; None when the customer wrote to the
    deployment's number, whose credentials are the deployment's settings."""


def is_held(channel: str | None, raw: dict[str, Any]) -> bool:
    """Whether the timeline links this attachment through :func:`held_media`: a WhatsApp
    file named only by its media id, or any Twilio media URL."""
    if channel == "whatsapp":
        return bool(raw.get("provider_media_id")) and not raw.get("url")
    return channel == "sms" and bool(raw.get("url"))


def held_media(session: Session, *, workspace_id: int, message_id: int, index: int) -> HeldMedia:
    """Attachment ``index`` of the store's inbound ``message_id``; NotFound for another
    store's message, an unsent one, or an attachment the timeline does not link here."""
    message = session.scalar(
        select(Message).where(
            Message.workspace_id == workspace_id,
            Message.id == message_id,
            Message.direction == Direction.INBOUND,
        )
    )
    attachments = (message.attachments or []) if message is not None else []
    raw = attachments[index] if 0 <= index < len(attachments) else None
    if (
        message is None
        or not isinstance(raw, dict)
        or (message.headers or {}).get("kind") == DELETED
        or not is_held(message.channel, raw)
    ):
        raise NotFound("no such attachment")
    channel = str(message.channel)
    account = session.scalar(
        select(ChannelAccount).where(
            ChannelAccount.workspace_id == workspace_id,
            ChannelAccount.provider == PROVIDERS[channel],
            ChannelAccount.address == message.store_address,
        )
    )
    return HeldMedia(
        channel=channel,
        url=raw.get("url"),
        media_id=raw.get("provider_media_id"),
        store_address=message.store_address,
        secrets=dict(account.secrets or {}) if account is not None else None,
    )
