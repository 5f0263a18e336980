"""Which adapter class serves which channel kind, and building/closing them together.

Delivery looks adapters up here by :class:`ChannelKind`, never with ``if``/``match`` on
the kind, so adding a channel is one folder plus one entry in the tuple below. A store
that sends from its own account (:class:`SendingAccount`) gets an adapter of its own,
built from the same settings with that account's number and credentials
(:class:`ChannelAdapters`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dns.exception import DNSException

from parley.channels.adapters import close_all
from parley.channels.base import (
    AccountChannelError,
    ChannelAdapter,
    ChannelError,
    ChannelKind,
    SendingAccount,
)
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


async def close_adapters(adapters: Mapping[ChannelKind, ChannelAdapter]) -> None:
    """Close every adapter, even if one of them fails to close (its error is re-raised)."""
    await close_all(adapters.values())


def _whatsapp_options(account: SendingAccount) -> dict[str, Any]:
    return {
        "phone_number_id": account.address,
        "access_token": account.credential("access_token"),
        "business_account_id": account.credential("business_account_id"),
    }


def _twilio_options(account: SendingAccount) -> dict[str, Any]:
    return {
        "from_number": account.address,
        "account_sid": account.credential("account_sid"),
        "auth_token": account.credential("auth_token"),
        "number_set_by": "the store's account on Settings → Channels",
    }


def _instagram_options(account: SendingAccount) -> dict[str, Any]:
    return {
        "instagram_account_id": account.address,
        "access_token": account.credential("access_token"),
    }


ACCOUNT_ADAPTERS: dict[str, tuple[type[Any], Callable[[SendingAccount], dict[str, Any]]]] = {
    WhatsappCloud.provider: (WhatsappCloud, _whatsapp_options),
    TwilioSms.provider: (TwilioSms, _twilio_options),
    Instagram.provider: (Instagram, _instagram_options),
}
"""Providers a store can send from with an account of its own, and what of the account
replaces the deployment's settings for it."""


def build_account_adapter(
    settings: Settings, account: SendingAccount, **overrides: Any
) -> ChannelAdapter:
    """An adapter sending from the store's own ``account``: the deployment's base URLs,
    API versions and timeouts, the account's number and credentials (``overrides``, such
    as a test's ``transport``, win)."""
    cls, options = ACCOUNT_ADAPTERS[account.provider]
    adapter: ChannelAdapter = cls.from_settings(settings, **(options(account) | overrides))
    return adapter


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


async def check_accounts(
    settings: Settings, accounts: Mapping[ChannelKind, SendingAccount]
) -> list[ProviderCheck]:
    """Ask each provider whether it takes a store's own account (its credentials, its
    number), sending nothing, as :func:`check_providers` asks of the deployment's."""
    adapters = {
        kind: build_account_adapter(settings, account) for kind, account in accounts.items()
    }
    try:
        answers = await asyncio.gather(
            *(adapter.check() for adapter in adapters.values()), return_exceptions=True
        )
    finally:
        await close_adapters(adapters)
    return [_checked(kind, answer) for kind, answer in zip(adapters, answers, strict=True)]


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
