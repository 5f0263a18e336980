"""Which adapter class serves which channel kind, and building/closing them together.

Delivery looks adapters up here by :class:`ChannelKind`, never with ``if``/``match`` on
the kind, so adding a channel is one folder plus one entry in the tuple below.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from dataclasses import dataclass

from dns.exception import DNSException

from parley.channels.base import AccountChannelError, ChannelAdapter, ChannelError, ChannelKind
from parley.channels.email_smtp.adapter import EmailSmtp
from parley.channels.email_smtp.domain import SendingDomain, check_sending_domain
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


@dataclass(frozen=True)
class ProviderCheck:
    """What one provider said of the settings."""

    channel: ChannelKind
    is_ok: bool
    said: str


async def check_providers(
    settings: Settings, channels: Collection[ChannelKind] = ()
) -> list[ProviderCheck]:
    """Ask every provider (or those of ``channels``) at once whether it takes the
    settings, sending nothing: what a deploying engineer runs before the first customer's
    message finds out."""
    adapters = build_adapters(settings)
    kinds = [kind for kind in adapters if not channels or kind in channels]
    domain = settings.sending_domain() if ChannelKind.EMAIL in kinds else None
    try:
        answers, found = await asyncio.gather(
            asyncio.gather(*(adapters[kind].check() for kind in kinds), return_exceptions=True),
            _read_domain(settings, domain),
        )
    finally:
        await close_adapters(adapters)
    checks = [_checked(kind, answer) for kind, answer in zip(kinds, answers, strict=True)]
    if found is None:
        return checks
    return [
        _with_domain(check, found) if check.channel is ChannelKind.EMAIL else check
        for check in checks
    ]


async def _read_domain(settings: Settings, domain: str | None) -> SendingDomain | Exception | None:
    if domain is None:
        return None
    try:
        return await check_sending_domain(settings, domain)
    except (ChannelError, DNSException, OSError) as exc:
        return exc


def _with_domain(check: ProviderCheck, found: SendingDomain | Exception) -> ProviderCheck:
    """The email check with what DNS says of the sending domain (RELIABILITY S12): its
    problems fail the check, since marketing email waits for them to be fixed."""
    if isinstance(found, Exception):
        said = (
            found.reason if isinstance(found, ChannelError) else f"{type(found).__name__}: {found}"
        )
        return ProviderCheck(check.channel, False, f"{check.said}; {said}")
    said = found.describe()
    if not found.is_ready:
        said += " (marketing email waits until this is fixed)"
    return ProviderCheck(check.channel, check.is_ok and found.is_ready, f"{check.said}; {said}")


def _checked(kind: ChannelKind, answer: str | BaseException) -> ProviderCheck:
    if isinstance(answer, str):
        return ProviderCheck(kind, True, answer)
    if isinstance(answer, AccountChannelError):
        return ProviderCheck(kind, False, f"{answer.reason} (check the credentials and sender)")
    if isinstance(answer, ChannelError):
        return ProviderCheck(kind, False, answer.reason)
    if isinstance(answer, Exception):
        return ProviderCheck(kind, False, f"{type(answer).__name__}: {answer}")
    raise answer
