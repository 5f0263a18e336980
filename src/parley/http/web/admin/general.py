"""``/admin`` (the store's details) and ``/admin/policies`` (what the assistant quotes)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from parley.accounts.service import Login
from parley.errors import Invalid
from parley.http.web.admin import store
from parley.http.web.admin.common import done, page, text, texts
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of
from parley.http.web.security import client_ip
from parley.messaging import postal_address
from parley.messaging.frequency import DEFAULT_HOURS, FrequencyCaps
from parley.messaging.marketing_controls import MarketingControls, controls_of
from parley.messaging.quiet_hours import QuietHours
from parley.workspaces.models import Workspace


@lru_cache(maxsize=1)
def _timezones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


async def general_page(request: Request) -> Response:
    """``GET /admin``: the store's details, and its marketing rules and controls (quiet
    hours, frequency caps, the kill switch, its rate, and what waits)."""
    return await _general(request, admin(request))


async def _general(
    request: Request, login: Login, *, error: str | None = None, status_code: int = 200
) -> Response:
    def read(session: Session) -> tuple[Workspace, MarketingControls]:
        workspace = session.get_one(Workspace, login.workspace_id)
        return workspace, controls_of(session, workspace)

    workspace, controls = await in_transaction(db_of(request), read)
    return page(
        request,
        "admin/general.html",
        section="general",
        status_code=status_code,
        error=error,
        workspace=workspace,
        timezones=_timezones(),
        quiet=QuietHours.of(workspace.settings),
        caps=FrequencyCaps.of(workspace.settings).hours,
        pause=controls.pause,
        rate=controls.rate,
        waiting=controls.waiting,
        postal=postal_address.of(workspace.settings),
    )


async def _saved(
    request: Request, login: Login, save: Callable[[Session], None], notice: str
) -> Response:
    """Post/redirect/get on success; the page again with the reason (422) on a refusal."""
    try:
        await in_transaction(db_of(request), save)
    except Invalid as exc:
        return await _general(request, login, error=exc.message, status_code=exc.status_code)
    return done("/admin", notice)


async def save_general(request: Request) -> Response:
    """``POST /admin/general``."""
    login = admin(request)
    form = await request.form()

    def save(session: Session) -> None:
        store.update_general(
            session,
            login=login,
            name=text(form, "name", 300),
            store_url=text(form, "store_url", 600),
            review_url=text(form, "review_url", 600),
            support_email=text(form, "support_email", 400),
            timezone=text(form, "timezone", 64),
            postal=text(form, "postal_address", 2_000),
            ip=client_ip(request),
        )

    return await _saved(request, login, save, "general")


async def save_quiet_hours(request: Request) -> Response:
    """``POST /admin/quiet-hours``."""
    login = admin(request)
    form = await request.form()

    def save(session: Session) -> None:
        store.update_quiet_hours(
            session,
            login=login,
            opens=text(form, "opens", 4),
            closes=text(form, "closes", 4),
            sundays=text(form, "sundays", 4) == "on",
            holidays=text(form, "holidays", 4) == "on",
            ip=client_ip(request),
        )

    return await _saved(request, login, save, "quiet_hours")


async def policies_page(request: Request) -> Response:
    """``GET /admin/policies``: the sections the assistant quotes, and the return window."""
    login = admin(request)

    def read(session: Session) -> tuple[list[store.Section], int]:
        return store.knowledge_of(session.get_one(Workspace, login.workspace_id))

    sections, days = await in_transaction(db_of(request), read)
    return page(
        request,
        "admin/policies.html",
        section="policies",
        policy_sections=sections,
        return_days=days,
    )


async def save_policies(request: Request) -> Response:
    """``POST /admin/policies``: the whole list at once; ticked sections are removed."""
    login = admin(request)
    form = await request.form()
    titles = texts(form, "title", 300)
    bodies = texts(form, "text", 30_000)
    removed = {str(v) for v in form.getlist("remove")}
    sections = [
        store.Section(title, body)
        for index, (title, body) in enumerate(zip(titles, bodies, strict=False))
        if str(index) not in removed
    ]
    days = text(form, "return_window_days", 10)
    try:
        await in_transaction(
            db_of(request),
            lambda s: store.save_knowledge(
                s, login=login, sections=sections, return_window_days=days, ip=client_ip(request)
            ),
        )
    except Invalid as exc:
        return page(
            request,
            "admin/policies.html",
            section="policies",
            status_code=exc.status_code,
            error=exc.message,
            policy_sections=sections,
            return_days=days,
        )
    return done("/admin/policies", "policies")


async def save_frequency_caps(request: Request) -> Response:
    """``POST /admin/frequency-caps``."""
    login = admin(request)
    form = await request.form()

    def save(session: Session) -> None:
        store.update_frequency_caps(
            session,
            login=login,
            hours={channel: text(form, channel, 12) for channel in DEFAULT_HOURS},
            ip=client_ip(request),
        )

    return await _saved(request, login, save, "frequency_caps")


async def save_marketing_pause(request: Request) -> Response:
    """``POST /admin/marketing-pause`` with ``paused=on`` to pause, anything else to resume."""
    login = admin(request)
    form = await request.form()

    def save(session: Session) -> None:
        store.set_marketing_paused(
            session, login=login, paused=text(form, "paused", 4) == "on", ip=client_ip(request)
        )

    return await _saved(request, login, save, "marketing_pause")


async def save_marketing_rate(request: Request) -> Response:
    """``POST /admin/marketing-rate``: messages an hour, empty for no limit."""
    login = admin(request)
    form = await request.form()

    def save(session: Session) -> None:
        store.set_marketing_rate(
            session, login=login, per_hour=text(form, "per_hour", 20), ip=client_ip(request)
        )

    return await _saved(request, login, save, "marketing_rate")
