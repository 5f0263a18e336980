"""Who is signed in: the session cookie resolved once per request, and the CSRF gate.

``request.state.login`` is the :class:`~parley.accounts.service.Login` or None. Sessions
live in the database (``login_sessions``), so signing out, a password change or a removal
from the workspace ends them in every process at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.accounts import service as accounts
from parley.accounts.service import Login, SessionPolicy
from parley.clock import utc_now
from parley.db import Database
from parley.http.web.security import (
    TOKEN_AUTHENTICATED,
    client_ip,
    needs_csrf,
    read_body,
    refuse,
    replay,
    same_origin,
    submitted_token,
    tokens_match,
)
from parley.settings import Settings

log = logging.getLogger(__name__)

PASS_THROUGH = (*TOKEN_AUTHENTICATED, "/static/", "/healthz", "/widget.js", "/demo/")


@dataclass(frozen=True)
class CookieNames:
    """``__Host-`` cookies are Secure, host-only and path ``/``: no sibling subdomain can
    plant or overwrite them. Without Secure (plain-HTTP deployments) the prefix is dropped."""

    session: str
    csrf: str
    secure: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> CookieNames:
        if settings.session_cookie_secure:
            return cls("__Host-parley_session", "__Host-parley_csrf", True)
        return cls("parley_session", "parley_csrf", False)


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )


def _resume(db: Database, token: str, policy: SessionPolicy) -> Login | None:
    with db.transaction() as session:
        return accounts.resume(session, token=token, now=utc_now(), policy=policy)


class Sessions:
    """Loads the login for every page and app call, and refuses cross-site writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(PASS_THROUGH):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        app_state = scope["app"].state
        settings: Settings = app_state.settings
        names = CookieNames.from_settings(settings)
        connection = HTTPConnection(scope)
        token = connection.cookies.get(names.session)
        login = None
        if token:
            login = await run_in_threadpool(_resume, app_state.db, token, session_policy(settings))
        state["login"] = login
        method = scope["method"]
        if needs_csrf(method, path):
            headers = Headers(scope=scope)
            if not same_origin(headers, scope):
                log.warning(
                    "cross-origin %s %s refused from %s", method, path, client_ip(connection)
                )
                await refuse("cross-origin request")(scope, receive, send)
                return
            body, fits = await read_body(receive)
            if not fits:
                await PlainTextResponse("form too large", status_code=413)(scope, receive, send)
                return
            expected = login.csrf_token if login else connection.cookies.get(names.csrf)
            if not tokens_match(submitted_token(headers, body), expected):
                log.warning(
                    "%s %s without a valid CSRF token refused from %s",
                    method,
                    path,
                    client_ip(connection),
                )
                await refuse("missing or wrong CSRF token; reload the page")(scope, receive, send)
                return
            receive = replay(body)
        await self.app(scope, receive, send)
