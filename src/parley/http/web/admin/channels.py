"""``/admin/channels``: connected accounts and the Shopify secret, write-only.

Nothing here ever puts a stored secret in a response: the page lists which secret fields
are set and when they changed (read from a plain column), and every form field for a
secret is an empty password input.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from parley.channels.base import ChannelError
from parley.channels.email_smtp.domain import check_sending_domain
from parley.channels.registry import ProviderCheck, check_accounts
from parley.clock import utc_now
from parley.errors import ParleyError
from parley.http.web.admin import store
from parley.http.web.admin.common import done, page, text
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of, path_int
from parley.http.web.security import client_ip
from parley.messaging import sending_domain
from parley.messaging.senders import account_to_check
from parley.settings import Settings
from parley.workspaces import service as workspaces
from parley.workspaces.credentials import CHANNEL_PROVIDERS, SENDING_FIELDS

PROVIDER_LABELS = {
    "whatsapp_cloud": "WhatsApp Cloud API",
    "instagram": "Instagram",
    "twilio": "Twilio SMS",
    "mailgun": "Mailgun inbound email",
}
ADDRESS_HINTS = {
    "whatsapp_cloud": "phone_number_id",
    "instagram": "Instagram account id",
    "twilio": "number in E.164, e.g. +447700900123",
    "mailgun": "inbound address, e.g. help@shop.example",
}


PLAIN_FIELDS = frozenset({"account_sid", "business_account_id"})
"""Fields that are ids rather than secrets: typed in plain text, still never shown back."""


def _context(session: Session, workspace_id: int, settings: Settings) -> dict[str, Any]:
    return {
        "accounts": workspaces.connected_accounts(session, workspace_id=workspace_id),
        "email_sender": store.email_sender_view(
            session,
            workspace_id=workspace_id,
            deployment_selector=settings.email_dkim_selector or None,
        ),
        "deployment_from": parseaddr(settings.email_from)[1],
        "reads_dns": settings.email_domain_check,
        "shopify": workspaces.shopify_state(session, workspace_id=workspace_id),
        "providers": CHANNEL_PROVIDERS,
        "sending_fields": SENDING_FIELDS,
        "plain_fields": PLAIN_FIELDS,
        "labels": PROVIDER_LABELS,
        "hints": ADDRESS_HINTS,
        "deployment_addresses": {
            "whatsapp_cloud": settings.whatsapp_phone_number_id,
            "instagram": settings.instagram_account_id,
        },
    }


async def _page(
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    checked: tuple[int, ProviderCheck] | None = None,
) -> Response:
    login = admin(request)
    settings = request.app.state.settings
    context = await in_transaction(
        db_of(request), lambda s: _context(s, login.workspace_id, settings)
    )
    return page(
        request,
        "admin/channels.html",
        section="channels",
        status_code=status_code,
        error=error,
        checked=checked,
        **context,
    )


async def channels_page(request: Request) -> Response:
    """``GET /admin/channels``."""
    return await _page(request)


def _secrets(form: Any) -> dict[str, str]:
    names = {name for _, fields in CHANNEL_PROVIDERS.values() for name in fields}
    names.update(name for fields in SENDING_FIELDS.values() for name in fields)
    return {name: text(form, name, 5_000) for name in names}


async def connect(request: Request) -> Response:
    """``POST /admin/channels``: connect a provider account to this workspace."""
    login = admin(request)
    form = await request.form()
    try:
        await in_transaction(
            db_of(request),
            lambda s: workspaces.connect_account(
                s,
                login=login,
                provider=text(form, "provider", 40),
                address=text(form, "address", 400),
                secrets=_secrets(form),
                ip=client_ip(request),
            ),
        )
    except ParleyError as exc:
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/channels", "connected")


async def replace(request: Request) -> Response:
    """``POST /admin/channels/{account_id}/secrets``: blank fields keep their value."""
    login = admin(request)
    account_id = path_int(request, "account_id")
    form = await request.form()
    try:
        await in_transaction(
            db_of(request),
            lambda s: workspaces.replace_secrets(
                s, login=login, account_id=account_id, secrets=_secrets(form), ip=client_ip(request)
            ),
        )
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/channels", "replaced")


async def set_active(request: Request) -> Response:
    """``POST /admin/channels/{account_id}/active``: pause or resume an account."""
    login = admin(request)
    account_id = path_int(request, "account_id")
    form = await request.form()
    is_active = text(form, "is_active", 5) == "true"
    await in_transaction(
        db_of(request),
        lambda s: workspaces.set_active(
            s, login=login, account_id=account_id, is_active=is_active, ip=client_ip(request)
        ),
    )
    return done("/admin/channels", "resumed" if is_active else "paused")


async def check(request: Request) -> Response:
    """``POST /admin/channels/{account_id}/check``: ask the provider whether it takes the
    account's sending fields and number, sending nothing; the answer is shown on its row."""
    login = admin(request)
    account_id = path_int(request, "account_id")
    try:
        kind, account = await in_transaction(
            db_of(request), lambda s: account_to_check(s, login=login, account_id=account_id)
        )
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, status_code=exc.status_code, error=exc.message)
    [answer] = await check_accounts(request.app.state.settings, {kind: account})
    return await _page(request, checked=(account_id, answer))


async def shopify_secret(request: Request) -> Response:
    """``POST /admin/shopify``: set or rotate the Shopify webhook secret."""
    login = admin(request)
    form = await request.form()
    try:
        await in_transaction(
            db_of(request),
            lambda s: workspaces.set_shopify_secret(
                s,
                login=login,
                new_secret=text(form, "shopify_secret", 5_000),
                ip=client_ip(request),
            ),
        )
    except ParleyError as exc:
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/channels", "shopify")


async def save_email_sender(request: Request) -> Response:
    """``POST /admin/email-sender``: the address the store's email should go from."""
    login = admin(request)
    form = await request.form()
    try:
        await in_transaction(
            db_of(request),
            lambda s: store.set_email_sender(
                s,
                login=login,
                address=text(form, "address", 400),
                dkim_selector=text(form, "dkim_selector", 100),
                deployment_domain=_deployment_domain(request),
                ip=client_ip(request),
            ),
        )
    except ParleyError as exc:
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/channels", "email_sender")


async def remove_email_sender(request: Request) -> Response:
    """``POST /admin/email-sender/remove``: email goes from the deployment's address."""
    login = admin(request)
    await in_transaction(
        db_of(request), lambda s: store.remove_email_sender(s, login=login, ip=client_ip(request))
    )
    return done("/admin/channels", "email_sender_removed")


async def check_email_sender(request: Request) -> Response:
    """``POST /admin/email-sender/check``: read the store's domain from DNS now, with no
    transaction open, and keep the reading; the page shows what it found."""
    login = admin(request)
    try:
        sender = await in_transaction(
            db_of(request),
            lambda s: store.email_sender_to_read(
                s, login=login, deployment_domain=_deployment_domain(request)
            ),
        )
    except ParleyError as exc:
        return await _page(request, status_code=exc.status_code, error=exc.message)
    try:
        found = await check_sending_domain(
            request.app.state.settings, sender.domain, sender.dkim_selector
        )
    except ChannelError as exc:
        return await _page(request, status_code=503, error=exc.reason)
    await in_transaction(db_of(request), lambda s: sending_domain.record(s, found, now=utc_now()))
    return done("/admin/channels", "email_sender_checked")


def _deployment_domain(request: Request) -> str:
    """The domain of the deployment's own From address."""
    return parseaddr(request.app.state.settings.email_from)[1].rpartition("@")[2]
