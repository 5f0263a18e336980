"""Rendering pages and guarding them: the pieces every page handler uses.

Templates are parley's own files (not store-editable), rendered with autoescaping on, so
every customer-supplied string is escaped unless a template says otherwise; none does.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from parley.accounts.service import Login, require_admin
from parley.clock import utc_now
from parley.db import Database
from parley.errors import NotFound
from parley.http.web.sessions import CookieNames
from parley.messaging.types import WaitingFor


class SignInRequired(Exception):
    """Raised by :func:`signed_in`; answered by a redirect to the login page (or a 401)."""


def _span(seconds: int) -> str:
    """'5 min', '3 h', '2 d': a duration as lists and timelines show it."""
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'just now', '5 min', '3 h', '2 d': how long ago."""
    if moment is None:
        return ""
    seconds = int(((now or utc_now()) - moment).total_seconds())
    return "just now" if seconds < 60 else _span(seconds)


def _until(moment: datetime) -> str:
    """'now', 'in 5 min', 'in 3 h', 'in 2 d': how soon a scheduled send goes out."""
    seconds = int((moment - utc_now()).total_seconds())
    return "now" if seconds < 60 else f"in {_span(seconds)}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%d %b %Y, %H:%M UTC") if moment else ""


WAITING_FOR: dict[str, str] = {
    WaitingFor.MARKETING_PAUSED: "the store to resume marketing",
    WaitingFor.QUIET_HOURS: "the customer's quiet hours to end",
    WaitingFor.MARKETING_RATE: "its turn at the store's marketing rate",
    WaitingFor.SENDER_PACE: "room at the provider (order updates first)",
}
"""What a send put back without going waits for (``jobs.waiting_for``), in words."""


def _waiting_for(code: str | None) -> str:
    return WAITING_FOR.get(code or "", code or "")


ENV = Environment(
    loader=PackageLoader("parley.http.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["ago"] = _ago
ENV.filters["until"] = _until
ENV.filters["when"] = _when
ENV.filters["waiting_for"] = _waiting_for


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def path_int(request: Request, name: str) -> int:
    """An id from the path (a plain segment or an ``:int`` one); anything that is not one
    cannot exist, so it is a 404. Past 18 digits it could not be asked of the database
    either: a 64-bit column cannot hold it, and the driver would fail the request."""
    raw = str(request.path_params[name])
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("not found")
    return int(raw)


def signed_in(request: Request) -> Login:
    """The signed-in agent, or :class:`SignInRequired`."""
    login: Login | None = getattr(request.state, "login", None)
    if login is None:
        raise SignInRequired
    return login


def admin(request: Request) -> Login:
    """The signed-in admin; an agent gets 403 whatever the page showed them."""
    login = signed_in(request)
    require_admin(login)
    return login


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    login: Login | None = getattr(request.state, "login", None)
    csrf = login.csrf_token if login else getattr(request.state, "csrf_cookie", "")
    body = ENV.get_template(template).render(
        request=request, login=login, csrf_token=csrf, now=utc_now(), **context
    )
    return HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


def wants_html(request: Request) -> bool:
    """A page view, answered with a page (or the login) rather than a status for a script.

    Browsers mark their own navigations (``Sec-Fetch-Mode: navigate``) and their scripts'
    fetches, image loads and event streams otherwise; a client that sends no such header
    (curl, a monitoring check) and does not ask for JSON or a stream is treated as a page
    view too.
    """
    if request.method != "GET":
        return False
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return True
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None and mode != "navigate":
        return False
    return "application/json" not in accept and "text/event-stream" not in accept


async def sign_in_required(request: Request, exc: Exception) -> Response:
    names = CookieNames.from_settings(request.app.state.settings)
    response: Response
    if wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    else:
        response = JSONResponse({"error": "sign in first"}, status_code=401)
    if request.cookies.get(names.session):
        response.delete_cookie(names.session, path="/", secure=names.secure, httponly=True)
    return response


def ensure_csrf_cookie(request: Request) -> str:
    """The pre-session CSRF token for the login and invite forms (double-submit cookie)."""
    names = CookieNames.from_settings(request.app.state.settings)
    token = request.cookies.get(names.csrf) or secrets.token_urlsafe(32)
    request.state.csrf_cookie = token
    return token


def set_csrf_cookie(request: Request, response: Response) -> None:
    names = CookieNames.from_settings(request.app.state.settings)
    token = getattr(request.state, "csrf_cookie", None)
    if token and request.cookies.get(names.csrf) != token:
        response.set_cookie(
            names.csrf, token, path="/", secure=names.secure, httponly=True, samesite="strict"
        )


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    names = CookieNames.from_settings(request.app.state.settings)
    response.set_cookie(
        names.session, token, path="/", secure=names.secure, httponly=True, samesite="lax"
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    names = CookieNames.from_settings(request.app.state.settings)
    response.delete_cookie(names.session, path="/", secure=names.secure, httponly=True)


def safe_next(target: str | None) -> str:
    """Only same-site paths: ``next`` must never become an open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/inbox"


async def page_error(request: Request, exc: Exception) -> Response:
    """Domain errors as a page for a browser, as JSON for the app's own fetches."""
    from parley.errors import ParleyError
    from parley.http.responses import domain_error

    assert isinstance(exc, ParleyError)
    if not wants_html(request) or request.url.path.startswith(("/api/", "/webhooks/")):
        return await domain_error(request, exc)
    titles = {403: "Not allowed", 404: "Not found", 401: "Sign in first"}
    return render(
        request,
        "error.html",
        status_code=exc.status_code,
        title=titles.get(exc.status_code, "Something is wrong"),
        message=exc.message,
    )
