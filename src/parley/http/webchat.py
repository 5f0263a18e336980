"""Website chat over HTTP: the widget script, visitor sessions, the chat socket, a demo store.

A store pastes ``<script src="{parley}/widget.js" data-workspace="{slug}" async>``. The
widget asks ``POST /webchat/{slug}/session`` for a visitor token (kept in a cookie and,
for a store on another domain whose browser refuses third-party cookies, in the store
page's ``localStorage``), then opens ``/webchat/{slug}/ws``. Frames are described in
:mod:`parley.channels.webchat.protocol`.

A socket shows what the database holds for its visitor: their own messages, once stored,
and the store's replies once delivery has picked them up. It reads new ones when the
:class:`~parley.channels.webchat.adapter.ChatHub` rings (a reply sent by this process)
and every :data:`CATCH_UP_SECONDS` (a reply sent by another process), and sends each
message once. Only web-chat messages to and from this visitor id are shown, never the rest
of the customer's profile: an email typed into the widget links the chat to a customer,
it does not prove the typist is that customer.

Who may open a chat: a page on the store's own site (``store_url``), on parley's public
URL, or served by this parley itself (the demo storefront, a local sandbox reached as
``localhost``). Requests without an ``Origin`` come from no browser and need the token
all the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from importlib.resources import files
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.channels.base import ChannelKind, InboundMessage
from parley.channels.webchat.adapter import PROCESS_HUB, ChatHub, Doorbell
from parley.channels.webchat.protocol import (
    BadFrame,
    ChatMessage,
    Entry,
    FloodGuard,
    Identify,
    Transcript,
    error_frame,
    history_frame,
    message_frame,
    parse_frame,
)
from parley.channels.webchat.visitor import (
    MAX_AGE,
    InvalidVisitorToken,
    issue_token,
    new_visitor_id,
    read_token,
)
from parley.clock import utc_now
from parley.db import Database
from parley.demo.seed import DEMO_NAME, PRODUCTS
from parley.errors import NotFound, ParleyError
from parley.inbox import service as inbox
from parley.inbox.visitors import visitor_history, visitor_messages_after
from parley.settings import Settings
from parley.workspaces import service as workspaces

log = logging.getLogger(__name__)

COOKIE: Final = "parley_visitor"
CATCH_UP_SECONDS = 2.0
"""How late a reply sent by another process can reach a socket."""
SETTLE_LAG: Final = timedelta(seconds=30)
"""See :class:`~parley.channels.webchat.protocol.Transcript`: how long a row's
lower-numbered neighbours get to commit before the socket's cursor passes it."""
FLOOD_LIMIT: Final = 20
FLOOD_WINDOW_SECONDS: Final = 10.0
# New visitors per client address: a burst of 20, then one every 3 seconds. Renewing a
# valid token is free: it creates nothing.
MINT_BURST: Final = 20.0
MINT_PER_SECOND: Final = 1 / 3

# Close codes the widget acts on: 4401 asks for a new token, 4403 and 4404 stop it.
CLOSE_UNAUTHENTICATED: Final = 4401
CLOSE_ORIGIN_REFUSED: Final = 4403
CLOSE_UNKNOWN_WORKSPACE: Final = 4404
CLOSE_POLICY_VIOLATION: Final = 1008


DEFAULT_PORTS: Final = {"http": 80, "https": 443}
WEBSOCKET_SCHEMES: Final = {"ws": "http", "wss": "https"}
SAFE_NETLOC = re.compile(r"[A-Za-z0-9.\-\[\]:]+")
NONCE_PLACEHOLDER: Final = "__CSP_NONCE__"


# --- reads and writes (each in its own transaction, run in the threadpool) ----------------


@dataclass(frozen=True)
class Store:
    """What the chat needs to know about a workspace, read once per request or socket."""

    id: int
    slug: str
    name: str
    origin: str | None
    """The origin of ``store_url``: pages there may open the chat."""


def find_store(session: Session, *, slug: str) -> Store | None:
    """An active workspace by slug; an uninstalled store has no chat."""
    workspace = workspaces.find_workspace(session, slug=slug)
    if workspace is None or not workspace.is_active:
        return None
    return Store(
        id=workspace.id,
        slug=workspace.slug,
        name=workspace.name,
        origin=origin_of(workspace.store_url),
    )


def record_chat_message(
    db: Database, *, store: Store, visitor_id: str, text: str, client_id: str
) -> None:
    """Store what the visitor wrote, once per (visitor, client id), and wake the assistant.

    The client id is namespaced by the visitor, so one visitor's ids can never collide
    with, or probe for, another's.
    """
    inbound = InboundMessage(
        channel=ChannelKind.WEBCHAT,
        provider_message_id=f"{visitor_id}:{client_id}",
        sender=visitor_id,
        text=text,
    )
    try:
        with db.transaction() as session:
            workspace = workspaces.find_workspace(session, slug=store.slug)
            if workspace is None or not workspace.is_active:
                raise NotFound("this store's chat is closed")
            inbox.record_inbound(session, workspace=workspace, inbound=inbound)
    except inbox.DuplicateMessage:
        # A resend raced its original, which is stored: nothing more to do.
        return


def identify(db: Database, *, store: Store, visitor_id: str, email: str) -> bool:
    """Link the visitor to the customer with this email; False for a malformed address."""
    with db.transaction() as session:
        linked = inbox.identify_visitor(
            session, workspace_id=store.id, visitor_id=visitor_id, email=email
        )
    return linked is not None


# --- origins, tokens and limits -------------------------------------------------------------


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased, default port dropped."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def own_origin(connection: HTTPConnection) -> str | None:
    """The origin this request was addressed to (a page parley served is same-origin)."""
    scheme = WEBSOCKET_SCHEMES.get(connection.url.scheme, connection.url.scheme)
    return origin_of(f"{scheme}://{connection.url.netloc}")


class TokenBucket:
    """Per-key token buckets kept in this process: ``capacity`` at once, then a steady rate.

    Only the event loop touches it, so it needs no lock. Keys whose bucket has refilled
    are forgotten once there are many, so a scan of addresses cannot grow it without end.
    """

    MAX_KEYS: Final = 10_000

    def __init__(self, *, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> float:
        """Take a token: 0.0 when one was free, else the seconds until one will be."""
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.per_second
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > self.MAX_KEYS:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.per_second < self.capacity
        }


class Refused(Exception):
    """A chat socket that may not open; ``code`` tells the widget what to do."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- the endpoints --------------------------------------------------------------------------


class StaticAsset:
    """A file from ``parley/http/static``, read once, with an ETag for revalidation."""

    def __init__(self, name: str) -> None:
        self.body = files("parley.http").joinpath("static", name).read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'


class WebChatEndpoints:
    """The web chat's routes, sharing the settings, the hub and the mint and flood limits."""

    def __init__(self, settings: Settings, *, hub: ChatHub) -> None:
        self.settings = settings
        self.hub = hub
        self.public_origin = origin_of(settings.resolved_public_url())
        self.is_https = self.public_origin is not None and self.public_origin.startswith("https:")
        self.mint_limit = TokenBucket(capacity=MINT_BURST, per_second=MINT_PER_SECOND)
        self.flood = FloodGuard(limit=FLOOD_LIMIT, window=FLOOD_WINDOW_SECONDS)
        self.widget_js = StaticAsset("widget.js")

    async def widget(self, request: Request) -> Response:
        """``GET /widget.js``: the script stores paste; short-cached, revalidated by ETag.

        The URL carries no version, so a long cache would pin stores to an old widget.
        """
        headers = {
            "ETag": self.widget_js.etag,
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        if request.headers.get("if-none-match") == self.widget_js.etag:
            return Response(status_code=304, headers=headers)
        return Response(
            self.widget_js.body,
            media_type="application/javascript; charset=utf-8",
            headers=headers,
        )

    async def session(self, request: Request) -> Response:
        """``POST /webchat/{workspace}/session``: a visitor token, new or renewed.

        A valid token (in the JSON body, else the cookie) keeps its visitor and gets a
        fresh issue time; anything else starts a new visitor, rate-limited per address.
        ``OPTIONS`` answers the CORS preflight the widget's JSON request triggers.
        """
        store = await run_in_threadpool(self._find_store, request)
        if store is None:
            return JSONResponse({"error": "unknown workspace"}, status_code=404)
        origin = request.headers.get("origin")
        if origin is not None and not self._allows(origin, store, request):
            log.info("web chat session for %s refused for origin %r", store.slug, origin)
            return JSONResponse({"error": "this site may not open the chat"}, status_code=403)
        cors = _cors_headers(origin)
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    **cors,
                    "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": "Content-Type",
                    "Access-Control-Max-Age": "600",
                },
            )
        presented = await _presented_token(request)
        if presented is None:
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=422)
        visitor_id = self._visitor_id(presented, store)
        if visitor_id is None:
            client = request.client.host if request.client else "unknown"
            wait = self.mint_limit.take(client, time.monotonic())
            if wait:
                return JSONResponse(
                    {"error": "too many new chats from this address; try again shortly"},
                    status_code=429,
                    headers={**cors, "Retry-After": str(math.ceil(wait))},
                )
            visitor_id = new_visitor_id()
        token = issue_token(self.settings.secret_key, workspace=store.slug, visitor_id=visitor_id)
        max_age = int(MAX_AGE.total_seconds())
        response = JSONResponse(
            {"token": token, "expires_in": max_age, "store": {"name": store.name}},
            headers={**cors, "Cache-Control": "no-store"},
        )
        # A widget on the store's own domain calls parley cross-site: only SameSite=None
        # (which browsers accept only with Secure) lets the cookie ride along. Over plain
        # http (a local sandbox) Secure cookies are dropped, so Lax it is.
        response.set_cookie(
            COOKIE,
            token,
            max_age=max_age,
            path=f"/webchat/{store.slug}",
            secure=self.is_https,
            httponly=True,
            samesite="none" if self.is_https else "lax",
        )
        return response

    async def chat(self, websocket: WebSocket) -> None:
        """``WS /webchat/{workspace}/ws``: one visitor's chat (see the protocol module)."""
        db: Database = websocket.app.state.db
        store = await run_in_threadpool(self._find_store, websocket)
        # Accept before refusing: a socket closed during the handshake reaches a browser
        # as a bare failure (1006), and the widget must tell "get a new token" from "stop".
        await websocket.accept()
        try:
            visitor_id = self._admit(websocket, store)
        except Refused as refused:
            log.info("web chat socket refused: %s", refused.reason)
            await websocket.close(code=refused.code, reason=refused.reason)
            return
        assert store is not None
        await ChatSocket(
            websocket, db=db, store=store, visitor_id=visitor_id, hub=self.hub, flood=self.flood
        ).run()

    async def demo_store(self, request: Request) -> Response:
        """``GET /demo/store`` (sandbox only): the demo store's shop front with the widget.

        Nothing but parley's own script runs: it is loaded from this origin and carries
        the response's nonce, which the widget hands on to its stylesheet.
        """
        nonce = secrets.token_urlsafe(16)
        page = _demo_store_page(self.settings.sandbox_workspace, nonce)
        connect = "'self'"
        if SAFE_NETLOC.fullmatch(request.url.netloc):
            connect += f" ws://{request.url.netloc} wss://{request.url.netloc}"
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": (
                    "default-src 'none'; "
                    f"script-src 'self' 'nonce-{nonce}'; "
                    f"style-src 'nonce-{nonce}'; "
                    f"connect-src {connect}; "
                    "img-src data:; "
                    "base-uri 'none'; "
                    "form-action 'none'; "
                    "frame-ancestors 'self'"
                ),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    def _find_store(self, connection: HTTPConnection) -> Store | None:
        db: Database = connection.app.state.db
        with db.transaction() as session:
            return find_store(session, slug=connection.path_params["workspace"])

    def _allows(self, origin: str, store: Store, connection: HTTPConnection) -> bool:
        allowed = {store.origin, self.public_origin, own_origin(connection)} - {None}
        return origin_of(origin) in allowed

    def _visitor_id(self, token: str, store: Store) -> str | None:
        if not token:
            return None
        try:
            return read_token(self.settings.secret_key, token, workspace=store.slug).visitor_id
        except InvalidVisitorToken as exc:
            log.info("web chat token for %s not renewed: %s", store.slug, exc)
            return None

    def _admit(self, websocket: WebSocket, store: Store | None) -> str:
        """The visitor id this socket speaks for, or :class:`Refused`."""
        if store is None:
            raise Refused(CLOSE_UNKNOWN_WORKSPACE, "unknown workspace")
        origin = websocket.headers.get("origin")
        if origin is not None and not self._allows(origin, store, websocket):
            raise Refused(CLOSE_ORIGIN_REFUSED, f"origin {origin!r} may not open {store.slug}")
        token = websocket.query_params.get("token") or websocket.cookies.get(COOKIE)
        if not token:
            raise Refused(CLOSE_UNAUTHENTICATED, "no visitor token")
        try:
            return read_token(self.settings.secret_key, token, workspace=store.slug).visitor_id
        except InvalidVisitorToken as exc:
            raise Refused(CLOSE_UNAUTHENTICATED, str(exc)) from exc


async def _presented_token(request: Request) -> str | None:
    """The token the widget sends back ("" when none); None for a body that is not JSON."""
    body = await request.body()
    presented: object = None
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        presented = data.get("token")
    if not isinstance(presented, str) or not presented:
        presented = request.cookies.get(COOKIE, "")
    return str(presented)


def _cors_headers(origin: str | None) -> dict[str, str]:
    """Echo an allowed origin (never ``*``: the answer carries a credential)."""
    if origin is None:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _demo_store_page(workspace: str, nonce: str) -> str:
    products = "\n".join(
        '<li class="product">'
        f'<div class="photo photo-{html.escape(external_id)}" aria-hidden="true">'
        f"{html.escape(''.join(word[0] for word in title.split()[:2]))}</div>"
        f'<p class="kind">{html.escape(kind)}</p>'
        f"<h3>{html.escape(title)}</h3>"
        f'<p class="price">£{html.escape(price)}</p>'
        "</li>"
        for external_id, title, kind, price in PRODUCTS
    )
    template = files("parley.http").joinpath("static", "demo_store.html").read_text("utf-8")
    return (
        template.replace("__STORE_NAME__", html.escape(DEMO_NAME))
        .replace("__WORKSPACE__", html.escape(workspace, quote=True))
        .replace("__PRODUCTS__", products)
        .replace(NONCE_PLACEHOLDER, nonce)
    )


# --- one open socket ------------------------------------------------------------------------


class ChatSocket:
    """One visitor's open chat: history on connect, then frames in and messages out.

    Two tasks share the socket: the reader acts on the visitor's frames, the follower
    sends new messages when rung or every :data:`CATCH_UP_SECONDS`. Sends go one at a time.
    """

    def __init__(
        self,
        websocket: WebSocket,
        *,
        db: Database,
        store: Store,
        visitor_id: str,
        hub: ChatHub,
        flood: FloodGuard,
    ) -> None:
        self.websocket = websocket
        self.db = db
        self.store = store
        self.visitor_id = visitor_id
        self.hub = hub
        self.transcript = Transcript()
        self.flood = flood
        self._send_lock = asyncio.Lock()
        self._is_closed = False

    async def run(self) -> None:
        # Subscribe before reading history: a reply sent in between rings, not slips by.
        doorbell = self.hub.subscribe(self.visitor_id)
        try:
            history = await run_in_threadpool(self._history)
            self.transcript.begin(history)
            await self._send(history_frame(history))
            async with anyio.create_task_group() as group:
                group.start_soon(self._follow, doorbell)
                await self._read()
                group.cancel_scope.cancel()
        except* WebSocketDisconnect:
            pass
        finally:
            self.hub.unsubscribe(doorbell)

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if not self.flood.allow(self.visitor_id, time.monotonic()):
                log.warning("web chat visitor %s flooded the socket; closed", self.visitor_id)
                await self._close(CLOSE_POLICY_VIOLATION, "too many messages")
                return
            try:
                frame = parse_frame(message.get("text"))
            except BadFrame as bad:
                await self._send(error_frame(bad.reason, client_id=bad.client_id))
                continue
            if isinstance(frame, ChatMessage):
                await self._on_message(frame)
            else:
                await self._on_identify(frame)

    async def _on_message(self, frame: ChatMessage) -> None:
        try:
            await run_in_threadpool(
                record_chat_message,
                self.db,
                store=self.store,
                visitor_id=self.visitor_id,
                text=frame.text,
                client_id=frame.client_id,
            )
        except ParleyError as exc:
            await self._send(error_frame(exc.message, client_id=frame.client_id))
        except OperationalError:
            log.exception("web chat message from %s not stored", self.visitor_id)
            await self._send(
                error_frame(
                    "the message could not be stored; send it again", client_id=frame.client_id
                )
            )
        else:
            # Every socket of this visitor here shows it now (this one's echo included).
            self.hub.ring(self.visitor_id)

    async def _on_identify(self, frame: Identify) -> None:
        try:
            linked = await run_in_threadpool(
                identify, self.db, store=self.store, visitor_id=self.visitor_id, email=frame.email
            )
        except ParleyError as exc:
            # A refused merge names other customers' details: the visitor hears only no.
            log.info("web chat visitor %s not identified: %s", self.visitor_id, exc.message)
            linked = False
        if linked:
            await self._send({"type": "identified"})
        else:
            await self._send(error_frame("that email address could not be used"))

    async def _follow(self, doorbell: Doorbell) -> None:
        while True:
            await doorbell.wait(CATCH_UP_SECONDS)
            try:
                entries = await run_in_threadpool(self._after, self.transcript.after_id)
            except OperationalError as exc:
                log.warning("web chat catch-up for %s failed: %s", self.visitor_id, exc)
                continue
            settled_before = utc_now() - SETTLE_LAG
            for entry in self.transcript.take(entries, settled_before=settled_before):
                await self._send(message_frame(entry))

    def _history(self) -> list[Entry]:
        with self.db.transaction() as session:
            return visitor_history(session, workspace_id=self.store.id, visitor_id=self.visitor_id)

    def _after(self, after_id: int) -> list[Entry]:
        with self.db.transaction() as session:
            return visitor_messages_after(
                session, workspace_id=self.store.id, visitor_id=self.visitor_id, after_id=after_id
            )

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            if not self._is_closed:
                await self.websocket.send_json(frame)

    async def _close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            self._is_closed = True
            await self.websocket.close(code=code, reason=reason)


def webchat_routes(settings: Settings, *, hub: ChatHub = PROCESS_HUB) -> list[BaseRoute]:
    """The web chat's routes for :func:`parley.http.app.create_app`."""
    endpoints = WebChatEndpoints(settings, hub=hub)
    routes: list[BaseRoute] = [
        Route("/widget.js", endpoints.widget, methods=["GET"]),
        Route("/webchat/{workspace}/session", endpoints.session, methods=["POST", "OPTIONS"]),
        WebSocketRoute("/webchat/{workspace}/ws", endpoints.chat),
    ]
    if settings.sandbox:
        routes.append(Route("/demo/store", endpoints.demo_store, methods=["GET"]))
    return routes
