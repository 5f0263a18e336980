"""``/admin/team``: members and roles, invitations (made, pending, revoked), removals.
Roles are checked again in ``accounts.service`` for every change, whatever this page
offered."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from parley.accounts import service as accounts
from parley.accounts.models import Role
from parley.clock import utc_now
from parley.errors import ParleyError
from parley.http.web.admin.common import done, page, text
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of, path_int
from parley.http.web.security import client_ip


async def _page(
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    invite_link: str | None = None,
    invited: str | None = None,
) -> Response:
    login = admin(request)
    members, invites = await in_transaction(
        db_of(request),
        lambda s: (
            accounts.members(s, workspace_id=login.workspace_id),
            accounts.pending_invites(s, workspace_id=login.workspace_id, now=utc_now()),
        ),
    )
    return page(
        request,
        "admin/team.html",
        section="team",
        status_code=status_code,
        error=error,
        members=members,
        pending_invites=invites,
        roles=[role.value for role in Role],
        invite_link=invite_link,
        invited=invited,
    )


async def team_page(request: Request) -> Response:
    """``GET /admin/team``."""
    return await _page(request)


async def invite(request: Request) -> Response:
    """``POST /admin/team/invite``: the link is shown on this response only (its token is
    stored hashed, so it cannot be shown again)."""
    login = admin(request)
    form = await request.form()
    valid_for = timedelta(days=request.app.state.settings.invite_valid_days)
    try:
        invitation = await in_transaction(
            db_of(request),
            lambda s: accounts.invite(
                s,
                login=login,
                email=text(form, "email", 400),
                role=text(form, "role", 20),
                ip=client_ip(request),
                now=utc_now(),
                valid_for=valid_for,
            ),
        )
    except ParleyError as exc:
        return await _page(request, status_code=exc.status_code, error=exc.message)
    link = f"{request.base_url}invite/{login.workspace_slug}/{invitation.token}"
    return await _page(request, invite_link=link, invited=invitation.invite.email)


async def set_role(request: Request) -> Response:
    """``POST /admin/team/{user_id}/role``."""
    login = admin(request)
    user_id = path_int(request, "user_id")
    form = await request.form()
    try:
        await in_transaction(
            db_of(request),
            lambda s: accounts.set_role(
                s,
                login=login,
                user_id=user_id,
                role=text(form, "role", 20),
                ip=client_ip(request),
                now=utc_now(),
            ),
        )
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/team", "role")


async def remove(request: Request) -> Response:
    """``POST /admin/team/{user_id}/remove``."""
    login = admin(request)
    user_id = path_int(request, "user_id")
    try:
        await in_transaction(
            db_of(request),
            lambda s: accounts.remove_member(
                s, login=login, user_id=user_id, ip=client_ip(request), now=utc_now()
            ),
        )
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/team", "removed")


async def revoke_invite(request: Request) -> Response:
    """``POST /admin/team/invites/{invite_id}/revoke``: the link stops working at once."""
    login = admin(request)
    invite_id = path_int(request, "invite_id")
    await in_transaction(
        db_of(request),
        lambda s: accounts.revoke_invite(
            s, login=login, invite_id=invite_id, ip=client_ip(request), now=utc_now()
        ),
    )
    return done("/admin/team", "invite_revoked")
