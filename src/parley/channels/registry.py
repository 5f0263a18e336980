"""Which adapter class serves which channel kind, and building/closing them together.

Delivery looks adapters up here by :class:`ChannelKind`, never with ``if``/``match`` on
the kind, so adding a channel is one folder plus one entry in the tuple below.
"""

from __future__ import annotations

import contextlib

from parley.channels.base import ChannelAdapter, ChannelKind
from parley.channels.email_smtp.adapter import EmailSmtp
from parley.channels.instagram.adapter import Instagram
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.channels.webchat.adapter import WebChat
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.settings import Settings

ADAPTERS: dict[ChannelKind, type[ChannelAdapter]] = {
    cls.kind: cls for cls in (EmailSmtp, TwilioSms, WhatsappCloud, Instagram, WebChat)
}


def build_adapters(settings: Settings) -> dict[ChannelKind, ChannelAdapter]:
    """One long-lived adapter per kind, to be shared by every send in the process."""
    return {kind: cls.from_settings(settings) for kind, cls in ADAPTERS.items()}


async def close_adapters(adapters: dict[ChannelKind, ChannelAdapter]) -> None:
    """Close every adapter, even if one of them fails to close (its error is re-raised)."""
    async with contextlib.AsyncExitStack() as stack:
        for adapter in adapters.values():
            stack.push_async_callback(adapter.aclose)
