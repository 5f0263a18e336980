"""The ASGI application factory.

``create_app`` wires the routes; its lifespan opens the database, starts the sandbox's
SMTP server when the sandbox is on, and runs the embedded worker unless told not to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from parley.http.api.v1 import create_api
from parley.http.intake import CountIntake, Intake
from parley.http.metrics import metrics
from parley.http.responses import EXCEPTION_HANDLERS, no_such_path
from parley.http.unsubscribe import unsubscribe, unsubscribe_page
from parley.http.web.app import WEB_EXCEPTION_HANDLERS, web_middleware, web_routes
from parley.http.web.live import start_relay
from parley.http.webchat import webchat_routes
from parley.http.webhooks.email import email_webhook
from parley.http.webhooks.meta import (
    instagram_handshake,
    instagram_webhook,
    whatsapp_handshake,
    whatsapp_webhook,
)
from parley.http.webhooks.shopify import shopify_webhook
from parley.http.webhooks.twilio import twilio_webhook
from parley.runtime import Runtime, build_runtime, tune_garbage_collector
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.nameserver import SandboxNameserver, demo_zone
from parley.sandbox.smtp import SandboxSmtpServer
from parley.sandbox.store import SandboxStore
from parley.settings import Settings, get_settings

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """200 once the database answers; 503 otherwise."""
    db = request.app.state.db

    def ping() -> None:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})


async def index(request: Request) -> Response:
    return RedirectResponse("/inbox")


def _sandbox_zone(settings: Settings) -> dict[str, list[str]]:
    """What the sandbox's DNS answers at first: the demo's sending domain, set up."""
    domain = settings.sending_domain()
    if domain is None:
        return {}
    return demo_zone(domain, dkim_selector=settings.email_dkim_selector)


async def _sandbox_nameserver(
    settings: Settings, zone: dict[str, list[str]]
) -> SandboxNameserver | None:
    """The sandbox's DNS, where the settings point the domain check; none when that check
    is off."""
    if settings.sending_domain() is None:
        return None
    port = settings.sandbox_dns_port or settings.sandbox_smtp_port
    nameserver = SandboxNameserver(zone, port=port)
    await nameserver.start()
    return nameserver


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Starlette:
    """Build parley's web app. With the sandbox on, providers point at ``/sandbox``."""
    if settings.sandbox:
        settings = settings.pointed_at_sandbox()
    sandbox_store = SandboxStore() if settings.sandbox else None
    zone = _sandbox_zone(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or build_runtime(
            settings, run_migrations=settings.is_sqlite and settings.migrate_on_start
        )
        app.state.db = rt.db
        api.state.db = rt.db
        smtp = None
        nameserver = None
        if sandbox_store is not None:
            smtp = SandboxSmtpServer(sandbox_store, port=settings.sandbox_smtp_port)
            smtp.start()
            nameserver = await _sandbox_nameserver(settings, zone)
            app.state.sandbox_nameserver = nameserver
        worker_task = None
        worker = None
        app.state.intake = Intake(max_in_flight=settings.intake_max_in_flight)
        if settings.embedded_worker:
            worker = rt.worker(intake=app.state.intake)
            app.state.worker = worker
            worker_task = asyncio.create_task(worker.run_forever(), name="parley-worker")
        relay = await start_relay(app, rt.db, settings)
        try:
            yield
        finally:
            await relay.stop()
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            if smtp is not None:
                smtp.stop()
            if nameserver is not None:
                nameserver.stop()
            if runtime is None:
                await rt.aclose()

    api = create_api()
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/webhooks/shopify/{workspace}", shopify_webhook, methods=["POST"]),
        Route("/webhooks/whatsapp/{workspace}", whatsapp_handshake, methods=["GET"]),
        Route("/webhooks/whatsapp/{workspace}", whatsapp_webhook, methods=["POST"]),
        Route("/webhooks/instagram/{workspace}", instagram_handshake, methods=["GET"]),
        Route("/webhooks/instagram/{workspace}", instagram_webhook, methods=["POST"]),
        Route("/webhooks/twilio/{workspace}", twilio_webhook, methods=["POST"]),
        Route("/webhooks/email/{workspace}", email_webhook, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
        *webchat_routes(settings),
        *web_routes(),
        Mount("/api/v1", app=api),
    ]
    sandbox_app = (
        create_sandbox_app(sandbox_store, settings, zone=zone)
        if sandbox_store is not None
        else None
    )
    if sandbox_app is not None:
        routes.append(Mount("/sandbox", app=sandbox_app))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(CountIntake), *web_middleware()],
        exception_handlers={**EXCEPTION_HANDLERS, **WEB_EXCEPTION_HANDLERS, 404: no_such_path},
    )
    app.state.settings = settings
    app.state.sandbox = sandbox_store
    app.state.sandbox_accounts = sandbox_app.state.sandbox_accounts if sandbox_app else None
    app.state.worker = None
    app.state.live = None
    app.state.intake = None
    return app


def app_from_environment() -> Starlette:
    """The app built from ``PARLEY_*`` settings: what each ``serve --workers`` process runs."""
    app = create_app(get_settings())
    tune_garbage_collector()
    return app
