"""The sandbox as one Starlette app, mounted by parley's server at ``/sandbox``.

Routes are relative to the mount point, so the adapters' base URLs are
``{server}/sandbox/twilio``, ``{server}/sandbox/whatsapp`` and
``{server}/sandbox/instagram``, exactly where the real providers' paths begin.
``/api/whatsapp-templates`` plays Meta's template review (:mod:`.whatsapp_templates`);
``/whatsapp/media/{media_id}`` plays Meta's file host for the photos customers send.
``POST /api/inbound`` is the customer's side: it posts signed provider webhooks to
parley's own ``/webhooks/...`` routes.
"""

from __future__ import annotations

import secrets
from importlib.resources import files
from typing import Final

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from parley.sandbox.accounts import SandboxAccounts
from parley.sandbox.api import SandboxApi
from parley.sandbox.composer import CustomerComposer
from parley.sandbox.instagram import InstagramMessages
from parley.sandbox.store import SandboxStore
from parley.sandbox.twilio import TwilioMessages
from parley.sandbox.webhooks import (
    DEFAULT_STATUS_DELAY_SECONDS,
    ProviderWebhooks,
    StatusReporter,
    WebhookPoster,
)
from parley.sandbox.whatsapp import WhatsAppMessages
from parley.sandbox.whatsapp_templates import TemplateCatalogue, WhatsAppTemplates
from parley.settings import SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID, Settings

NONCE_PLACEHOLDER: Final = "__CSP_NONCE__"

# The page loads nothing from anywhere: its script carries a per-response nonce, and it
# fetches only its own JSON API. Inline styles stay allowed because an email's HTML part,
# shown in a sandboxed srcdoc iframe (which inherits this policy), is styled inline.
_CSP_TEMPLATE: Final = (
    "default-src 'none'; "
    "script-src 'nonce-{nonce}'; "
    "style-src 'unsafe-inline'; "
    "img-src data:; "
    "connect-src 'self'; "
    "frame-src 'self'; "
    "base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'self'"
)


class SandboxPage:
    """``GET /``: the phone and the mailbox, from ``page.html``, read once."""

    def __init__(self) -> None:
        self._html = files("parley.sandbox").joinpath("page.html").read_text(encoding="utf-8")

    async def show(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(
            self._html.replace(NONCE_PLACEHOLDER, nonce),
            headers={
                "Content-Security-Policy": _CSP_TEMPLATE.format(nonce=nonce),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )


def create_sandbox_app(
    store: SandboxStore,
    settings: Settings,
    *,
    status_webhooks: bool = True,
    webhook_transport: httpx2.AsyncBaseTransport | None = None,
    status_delay_seconds: float = DEFAULT_STATUS_DELAY_SECONDS,
    accounts: SandboxAccounts | None = None,
    zone: dict[str, list[str]] | None = None,
) -> Starlette:
    """Build the sandbox app: provider stand-ins, the customer composer, the API, the page.

    ``status_webhooks`` makes the WhatsApp and Twilio stand-ins report ``sent`` then
    ``delivered`` back to parley, ``status_delay_seconds`` apart, like the real providers
    (on for the demo; unit tests with no parley server behind them turn it off).
    ``webhook_transport`` replaces the network for every post to parley's webhooks
    (tests pass ``httpx2.MockTransport`` or an ``httpx2.ASGITransport``). The poster is
    kept as ``app.state.webhook_poster`` so a test can wait for background posts.

    ``accounts`` are the Twilio accounts and WhatsApp numbers the stand-ins serve; by
    default only the deployment's, from ``settings``. They are kept as
    ``app.state.sandbox_accounts``, where parley (or a test) registers a store's own
    sender while the app runs.

    ``zone`` is what the sandbox's nameserver answers (name → TXT records); ``/api/dns``
    changes it while both run.
    """
    if accounts is None:
        accounts = SandboxAccounts.from_settings(settings)
    poster = WebhookPoster(transport=webhook_transport, delay_seconds=status_delay_seconds)
    statuses = StatusReporter(settings, poster) if status_webhooks else None
    twilio = TwilioMessages(store, accounts=accounts, statuses=statuses)
    catalogue = TemplateCatalogue()
    whatsapp = WhatsAppMessages(store, accounts=accounts, statuses=statuses, templates=catalogue)
    whatsapp_templates = WhatsAppTemplates(
        catalogue,
        access_token=settings.whatsapp_access_token,
        business_account_id=settings.whatsapp_business_account_id
        or SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID,
        webhooks=ProviderWebhooks(settings) if status_webhooks else None,
        poster=poster,
    )
    instagram = InstagramMessages(
        store,
        access_token=settings.instagram_access_token,
        account_id=settings.instagram_account_id,
    )
    composer = CustomerComposer(store, settings, poster)
    api = SandboxApi(store, accounts=accounts, zone=zone)
    page = SandboxPage()
    app = Starlette(
        routes=[
            Route(
                "/twilio/2010-04-01/Accounts/{AccountSid}/Messages.json",
                twilio.create,
                methods=["POST"],
            ),
            Route("/twilio/2010-04-01/Accounts/{AccountSid}.json", twilio.account, methods=["GET"]),
            Route(
                "/twilio/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
                twilio.incoming_numbers,
                methods=["GET"],
            ),
            # Before the node route, which would otherwise read "media" as an API version.
            Route("/whatsapp/media/{media_id}", whatsapp.media_file, methods=["GET"]),
            Route("/whatsapp/{version}/{phone_number_id}", whatsapp.node, methods=["GET"]),
            Route(
                "/whatsapp/{version}/{waba_id}/message_templates",
                whatsapp_templates.list,
                methods=["GET"],
            ),
            Route("/instagram/{version}/me", instagram.me, methods=["GET"]),
            Route(
                "/whatsapp/{version}/{phone_number_id}/messages", whatsapp.create, methods=["POST"]
            ),
            Route("/instagram/{version}/{account_id}/messages", instagram.create, methods=["POST"]),
            Route("/api/inbound", composer.compose, methods=["POST"]),
            Route("/api/messages", api.list_messages, methods=["GET"]),
            Route("/api/messages", api.clear_messages, methods=["DELETE"]),
            Route("/api/faults", api.list_faults, methods=["GET"]),
            Route("/api/faults", api.inject_fault, methods=["POST"]),
            Route("/api/faults", api.clear_faults, methods=["DELETE"]),
            Route("/api/accounts", api.list_accounts, methods=["GET"]),
            Route("/api/accounts/twilio", api.create_twilio_account, methods=["POST"]),
            Route("/api/accounts/whatsapp", api.create_whatsapp_number, methods=["POST"]),
            Route("/api/dns", api.list_dns, methods=["GET"]),
            Route("/api/dns/{name}", api.put_dns, methods=["PUT"]),
            Route("/api/dns/{name}", api.delete_dns, methods=["DELETE"]),
            Route("/api/whatsapp-templates", whatsapp_templates.show, methods=["GET"]),
            Route("/api/whatsapp-templates", whatsapp_templates.review, methods=["POST"]),
            Route("/", page.show, methods=["GET"]),
        ]
    )
    app.state.store = store
    app.state.sandbox_accounts = accounts
    app.state.webhook_poster = poster
    app.state.whatsapp_templates = catalogue
    return app
