"""``/login``, ``/logout``, ``/account`` and ``/invite/…``: signing in, moving between
one's stores, and joining."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from parley.accounts import service as accounts
from parley.accounts.service import LoginLimits, Refused, SignedIn
from parley.clock import utc_now
from parley.db import Database
from parley.errors import ParleyError
from parley.http.web.pages import (
    clear_session_cookie,
    db_of,
    ensure_csrf_cookie,
    render,
    safe_next,
    set_csrf_cookie,
    set_session_cookie,
    signed_in,
)
from parley.http.web.security import client_ip
from parley.http.web.sessions import CookieNames
from parley.workspaces import service as workspaces

T = TypeVar("T")


def _limits(request: Request) -> LoginLimits:
    settings = request.app.state.settings
    return LoginLimits(
        max_failures=settings.login_max_failures,
        window=timedelta(minutes=settings.login_failure_window_minutes),
    )


async def in_transaction(db: Database, work: Callable[..., T]) -> T:
    """Run ``work(session)`` in one transaction on a worker thread."""

    def run() -> T:
        with db.transaction() as session:
            return work(session)

    return await run_in_threadpool(run)


async def login_page(request: Request) -> Response:
    """``GET /login``: the sign-in form (or the inbox, for someone already signed in)."""
    if getattr(request.state, "login", None) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    ensure_csrf_cookie(request)
    response = render(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        email="",
        error=None,
    )
    set_csrf_cookie(request, response)
    return response


async def login(request: Request) -> Response:
    """``POST /login``: a new session id on success; any session the browser had ends."""
    form = await request.form()
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    names = CookieNames.from_settings(request.app.state.settings)
    result: SignedIn | Refused = await in_transaction(
        db_of(request),
        lambda session: accounts.sign_in(
            session,
            email=email,
            password=password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            now=utc_now(),
            limits=_limits(request),
            previous_token=request.cookies.get(names.session),
        ),
    )
    if isinstance(result, Refused):
        request.state.login = None
        ensure_csrf_cookie(request)
        response: Response = render(
            request,
            "login.html",
            status_code=result.status_code,
            next=target,
            email=email,
            error=result.reason,
        )
        set_csrf_cookie(request, response)
        clear_session_cookie(request, response)
        return response
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, result.token)
    return response


async def logout(request: Request) -> Response:
    """``POST /logout``: the session row goes, so the cookie is worthless everywhere."""
    names = CookieNames.from_settings(request.app.state.settings)
    token = request.cookies.get(names.session)
    if token:
        await in_transaction(db_of(request), lambda s: accounts.sign_out(s, token=token))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


async def account_page(request: Request) -> Response:
    """``GET /account``: the signed-in person's details and the password form."""
    signed_in(request)
    return render(request, "account.html", error=None, notice=None)


async def change_password(request: Request) -> Response:
    """``POST /account/password``: every other session of this person ends."""
    login = signed_in(request)
    form = await request.form()
    try:
        result: SignedIn | Refused = await in_transaction(
            db_of(request),
            lambda session: accounts.change_password(
                session,
                login=login,
                current_password=str(form.get("current_password", "")),
                new_password=str(form.get("new_password", "")),
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent"),
                now=utc_now(),
                limits=_limits(request),
            ),
        )
    except ParleyError as exc:
        result = Refused(exc.message, exc.status_code)
    if isinstance(result, Refused):
        return render(
            request,
            "account.html",
            status_code=result.status_code,
            error=result.reason,
            notice=None,
        )
    request.state.login = result.login
    response = render(
        request,
        "account.html",
        error=None,
        notice="Password changed. Every other session has been signed out.",
    )
    set_session_cookie(request, response, result.token)
    return response


async def switch_store(request: Request) -> Response:
    """``POST /account/store``: for someone in several stores, a new session in the one
    they chose (the one they had ends); 404 for a store they are not a member of."""
    login = signed_in(request)
    form = await request.form()
    slug = str(form.get("store", ""))[:100]
    result: SignedIn = await in_transaction(
        db_of(request),
        lambda session: accounts.switch_workspace(
            session,
            login=login,
            slug=slug,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            now=utc_now(),
        ),
    )
    response = RedirectResponse("/inbox", status_code=303)
    set_session_cookie(request, response, result.token)
    return response


async def invite_page(request: Request) -> Response:
    """``GET /invite/{workspace}/{token}``: the form to join, if the invite is good *here*."""
    slug = request.path_params["workspace"]
    token = request.path_params["token"]

    def check(session: Session) -> tuple[str, str]:
        workspace = workspaces.get_workspace(session, slug=slug)
        invite = accounts.open_invite(
            session, workspace_id=workspace.id, token=token, now=utc_now()
        )
        return workspace.name, invite.email

    workspace_name, email = await in_transaction(db_of(request), check)
    ensure_csrf_cookie(request)
    response = render(
        request, "invite.html", workspace_name=workspace_name, email=email, error=None
    )
    set_csrf_cookie(request, response)
    return response


async def accept_invite(request: Request) -> Response:
    """``POST /invite/{workspace}/{token}``: join, and sign in with a new session."""
    slug = request.path_params["workspace"]
    token = request.path_params["token"]
    form = await request.form()

    def accept(session: Session) -> SignedIn | Refused:
        workspace = workspaces.get_workspace(session, slug=slug)
        return accounts.accept_invite(
            session,
            workspace_id=workspace.id,
            token=token,
            name=str(form.get("name", "")),
            password=str(form.get("password", "")),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            now=utc_now(),
            limits=_limits(request),
        )

    try:
        result = await in_transaction(db_of(request), accept)
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        result = Refused(exc.message, exc.status_code)
    if isinstance(result, Refused):
        ensure_csrf_cookie(request)
        response: Response = render(
            request,
            "invite.html",
            status_code=result.status_code,
            workspace_name=slug,
            email="",
            error=result.reason,
        )
        set_csrf_cookie(request, response)
        return response
    response = RedirectResponse("/inbox", status_code=303)
    set_session_cookie(request, response, result.token)
    return response


def auth_routes() -> list[Route]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/account", account_page, methods=["GET"]),
        Route("/account/password", change_password, methods=["POST"]),
        Route("/account/store", switch_store, methods=["POST"]),
        Route("/invite/{workspace}/{token}", invite_page, methods=["GET"]),
        Route("/invite/{workspace}/{token}", accept_invite, methods=["POST"]),
    ]
