"""The web app's routes, middleware and error pages, wired into the main ASGI app."""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from parley.errors import ParleyError
from parley.http.web.admin import admin_routes
from parley.http.web.auth import auth_routes
from parley.http.web.canned import canned_routes
from parley.http.web.composer import composer_routes
from parley.http.web.inbox import inbox_routes
from parley.http.web.live import live_routes
from parley.http.web.pages import SignInRequired, page_error, sign_in_required
from parley.http.web.security import SecurityHeaders
from parley.http.web.sessions import Sessions
from parley.http.web.sidebar import sidebar_routes

STATIC = Path(__file__).parent / "static"


def web_routes() -> list[BaseRoute]:
    return [
        *auth_routes(),
        *live_routes(),
        *composer_routes(),
        *sidebar_routes(),
        *canned_routes(),
        *admin_routes(),
        *inbox_routes(),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def web_middleware() -> list[Middleware]:
    """Outermost first: every response gets the security headers, refusals included."""
    return [Middleware(SecurityHeaders), Middleware(Sessions)]


WEB_EXCEPTION_HANDLERS = {SignInRequired: sign_in_required, ParleyError: page_error}
