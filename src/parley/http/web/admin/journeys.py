"""``/admin/journeys``: on/off, waits, and each message's wording per channel with a live
preview on a sample customer.

The email preview is a real rendering of the store's HTML, so it is shown in a sandboxed
iframe (no scripts, an opaque origin) loaded from :func:`email_preview`, which answers with
a policy of its own: inline styles, no scripts, no connections, framable only by us.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from parley.channels.base import ChannelKind
from parley.errors import Invalid, NotFound
from parley.http.web.admin import store
from parley.http.web.admin.common import done, page, storable, text
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of
from parley.http.web.security import DEFAULT_CSP, client_ip
from parley.messaging import catalog, whatsapp_templates
from parley.messaging.templates import RenderedContent, TemplateContent, TemplateError
from parley.messaging.types import MessageType
from parley.workspaces.models import Workspace

EDITOR_CSP = DEFAULT_CSP.replace("frame-src 'none'", "frame-src 'self'")
EMAIL_PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)
MAX_TEMPLATE_CHARS = 65_536
MAX_SUBJECT_CHARS = 2_000


async def journeys_page(request: Request) -> Response:
    """``GET /admin/journeys``: every journey with its switch and waits."""
    login = admin(request)
    views = await in_transaction(
        db_of(request), lambda s: store.journey_views(s, workspace_id=login.workspace_id)
    )
    return page(request, "admin/journeys.html", section="journeys", journeys=views)


async def set_enabled(request: Request) -> Response:
    """``POST /admin/journeys/{key}/enabled``."""
    login = admin(request)
    key = request.path_params["key"]
    form = await request.form()
    is_enabled = text(form, "is_enabled", 5) == "true"
    await in_transaction(
        db_of(request),
        lambda s: store.set_journey_enabled(
            s, login=login, key=key, is_enabled=is_enabled, ip=client_ip(request)
        ),
    )
    return done("/admin/journeys", "journey")


async def set_waits(request: Request) -> Response:
    """``POST /admin/journeys/{key}/timing``: fields ``wait_<step index>`` and
    ``expiry_<step index>``, in hours."""
    login = admin(request)
    key = request.path_params["key"]
    form = await request.form()
    hours, expiries = _indexed(form, "wait_"), _indexed(form, "expiry_")
    try:
        await in_transaction(
            db_of(request),
            lambda s: store.set_journey_waits(
                s, login=login, key=key, hours=hours, expiries=expiries, ip=client_ip(request)
            ),
        )
    except Invalid as exc:
        views = await in_transaction(
            db_of(request), lambda s: store.journey_views(s, workspace_id=login.workspace_id)
        )
        return page(
            request,
            "admin/journeys.html",
            section="journeys",
            status_code=exc.status_code,
            error=exc.message,
            journeys=views,
        )
    return done("/admin/journeys", "journey")


def _indexed(form: FormData, prefix: str) -> dict[int, str]:
    """The form's ``<prefix><step index>`` fields, by step index."""
    return {
        int(name[len(prefix) :]): str(value)[:20]
        for name, value in form.multi_items()
        if name.startswith(prefix) and name[len(prefix) :].isdigit() and len(name) < 20
    }


def _editor(
    session: Session, workspace_id: int, key: str, message: str | None, channel: str | None
) -> dict[str, Any]:
    view = store.journey_view(session, workspace_id=workspace_id, key=key)
    if not view.messages:
        return {"journey": view, "templates": {}, "message": None, "channel": None}
    message_type = store.message_type_of(message) if message else view.messages[0]
    templates = store.journey_templates(
        session, workspace_id=workspace_id, key=key, message_type=message_type
    )
    chosen = store.channel_of(channel) if channel else next(iter(templates))
    if chosen not in templates:
        raise NotFound(f"{message_type} is not sent on {chosen}")
    content = templates[chosen]
    registry = whatsapp_templates.registry_for(session, workspace_id=workspace_id)
    return {
        "journey": view,
        "templates": templates,
        "message": message_type,
        "channel": chosen,
        "content": content,
        "at_meta": registry.get(content.whatsapp_template, content.whatsapp_language)
        if content.whatsapp_template
        else None,
        "meta_read": registry.is_synced,
    }


def _editor_page(
    request: Request, context: dict[str, Any], *, status_code: int = 200, error: str | None = None
) -> Response:
    response = page(
        request,
        "admin/journey.html",
        section="journeys",
        status_code=status_code,
        error=error,
        **context,
    )
    response.headers["content-security-policy"] = EDITOR_CSP
    return response


async def journey_page(request: Request) -> Response:
    """``GET /admin/journeys/{key}``: the editor on the journey's first message."""
    login = admin(request)
    key = request.path_params["key"]
    context = await in_transaction(
        db_of(request), lambda s: _editor(s, login.workspace_id, key, None, None)
    )
    return _editor_page(request, context)


def _edited(form: FormData) -> tuple[str | None, str, str | None]:
    subject = form.get("subject")
    html = form.get("html")
    if isinstance(subject, str) and len(subject) > MAX_SUBJECT_CHARS:
        raise Invalid(f"subject: at most {MAX_SUBJECT_CHARS:,} characters")
    return (
        storable("subject", subject) if isinstance(subject, str) else None,
        text(form, "text", MAX_TEMPLATE_CHARS + 1),
        storable("html", html[: MAX_TEMPLATE_CHARS + 1]) if isinstance(html, str) else None,
    )


async def save_template(request: Request) -> Response:
    """``POST /admin/journeys/{key}/templates/{message}/{channel}``."""
    login = admin(request)
    key = request.path_params["key"]
    message_type = store.message_type_of(request.path_params["message"])
    channel = store.channel_of(request.path_params["channel"])
    subject, body, html = _edited(await request.form())
    try:
        await in_transaction(
            db_of(request),
            lambda s: store.save_journey_template(
                s,
                login=login,
                key=key,
                message_type=message_type,
                channel=channel,
                subject=subject,
                text=body,
                html=html,
                ip=client_ip(request),
            ),
        )
    except Invalid as exc:
        context = await in_transaction(
            db_of(request), lambda s: _editor(s, login.workspace_id, key, message_type, channel)
        )
        context["content"] = store.edited_content(
            context["content"], subject=subject, text=body, html=html
        )
        return _editor_page(request, context, status_code=exc.status_code, error=exc.message)
    return done(f"/admin/journeys/{key}/templates/{message_type}/{channel}", "template")


async def template_page(request: Request) -> Response:
    """``GET /admin/journeys/{key}/templates/{message}/{channel}``: the editor, bookmarkable."""
    login = admin(request)
    key = request.path_params["key"]
    message = request.path_params["message"]
    channel = request.path_params["channel"]
    context = await in_transaction(
        db_of(request), lambda s: _editor(s, login.workspace_id, key, message, channel)
    )
    return _editor_page(request, context)


async def _render_preview(
    request: Request, form: FormData
) -> tuple[RenderedContent | None, str | None]:
    """The edited wording rendered on the sample customer, or the reason it cannot be."""
    login = admin(request)
    message_type: MessageType = store.message_type_of(text(form, "message", 40))
    channel: ChannelKind = store.channel_of(text(form, "channel", 20))
    try:
        subject, body, html = _edited(form)
    except Invalid as exc:
        return None, exc.message

    def current(session: Session) -> tuple[Workspace, TemplateContent]:
        workspace = session.get_one(Workspace, login.workspace_id)
        templates = catalog.templates_for(
            session, workspace_id=login.workspace_id, message_type=message_type
        )
        if channel not in templates:
            raise NotFound(f"{message_type} is not sent on {channel}")
        return workspace, templates[channel]

    workspace, content = await in_transaction(db_of(request), current)
    edited = store.edited_content(content, subject=subject, text=body, html=html)
    try:
        return store.preview(workspace, edited), None
    except TemplateError as exc:
        return None, exc.reason


async def preview(request: Request) -> Response:
    """``POST /admin/journeys/preview``: JSON for the editor's live preview.

    A template that fails answers 200 with ``error`` set: a half-typed template is the
    normal state of an editor, not a failed request.
    """
    rendered, error = await _render_preview(request, await request.form())
    if rendered is None:
        return JSONResponse({"ok": False, "error": error})
    return JSONResponse(
        {
            "ok": True,
            "subject": rendered.subject,
            "text": rendered.text,
            "has_html": rendered.html is not None,
            "whatsapp": (
                {
                    "template": rendered.template.name,
                    "parameters": list(rendered.template.body_parameters),
                }
                if rendered.template
                else None
            ),
        }
    )


async def email_preview(request: Request) -> Response:
    """``POST /admin/journeys/preview/email``: the rendered email HTML, for the sandboxed
    preview frame only (its own CSP: no script runs, nothing is fetched but images)."""
    rendered, error = await _render_preview(request, await request.form())
    if rendered is None or rendered.html is None:
        body = "<!doctype html><title>Preview</title><p>" + (
            "This template cannot be rendered: see the message beside the editor."
            if error
            else "This channel has no HTML part."
        )
    else:
        body = rendered.html
    return HTMLResponse(
        body,
        headers={
            "content-security-policy": EMAIL_PREVIEW_CSP,
            "x-frame-options": "SAMEORIGIN",
            "cache-control": "no-store",
        },
    )
