"""Pieces every admin handler shares: the notice after a redirect, the form, the address."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from parley.db.text import REASON, is_storable
from parley.errors import Invalid
from parley.http.web.pages import render

# Notices are chosen by key, never echoed from the query string.
NOTICES = {
    "general": "Store details saved.",
    "quiet_hours": "Quiet hours saved. Marketing texts due outside them wait for the morning.",
    "frequency_caps": "Frequency caps saved. Marketing past them is skipped, with the reason.",
    "marketing_pause": "Marketing switch saved: the banner above says where it stands.",
    "marketing_rate": "Marketing rate saved. Messages already waiting for it are re-planned "
    "at the new rate.",
    "connected": "Channel connected. Its secrets are stored encrypted and will not be shown again.",
    "replaced": "Secrets replaced. The new values will not be shown again.",
    "paused": "Channel paused: its webhooks are refused until you resume it.",
    "resumed": "Channel resumed.",
    "shopify": "Shopify secret saved. The previous one stays valid for an hour.",
    "email_sender": "Address saved. Publish the records below, then press Check now: email "
    "goes from it once they are in place.",
    "email_sender_checked": "Domain read: what it found is below.",
    "email_sender_removed": "Email goes from the deployment's address again.",
    "policies": "Policies and FAQ saved. The assistant quotes the new text from now on.",
    "journey": "Journey saved.",
    "template": "Template saved.",
    "role": "Role changed.",
    "removed": "Member removed. Their sessions in this workspace have ended, and any "
    "invitations they made are revoked.",
    "invite_revoked": "Invitation revoked: its link no longer works.",
    "retried": "Sent back to the queue: each goes out within seconds, unless the order or the "
    "conversation no longer calls for it (the reason is then kept on the message).",
    "arrived": "Marked sent.",
}

SECTIONS = (
    ("general", "/admin", "General"),
    ("channels", "/admin/channels", "Channels"),
    ("policies", "/admin/policies", "Store policies & FAQ"),
    ("journeys", "/admin/journeys", "Journeys"),
    ("failed", "/admin/failed", "Failed sends"),
    ("team", "/admin/team", "Team"),
    ("canned", "/admin/canned-replies", "Canned replies"),
    ("privacy", "/admin/privacy", "Privacy requests"),
    ("audit", "/admin/audit", "Audit log"),
)


def page(
    request: Request, template: str, *, section: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render an admin page inside the sub-navigation, with any notice the redirect named."""
    context.setdefault("error", None)
    return render(
        request,
        template,
        status_code=status_code,
        section=section,
        sections=SECTIONS,
        notice=NOTICES.get(request.query_params.get("done", "")),
        **context,
    )


def done(path: str, notice: str) -> RedirectResponse:
    """Post/redirect/get: the page reloads with a notice, and a refresh does not resubmit."""
    return RedirectResponse(f"{path}?done={notice}", status_code=303)


def text(form: FormData, name: str, limit: int = 20_000) -> str:
    """The form's ``name`` field cut to ``limit``, empty when absent (see :func:`storable`)."""
    value = form.get(name)
    return storable(name, value[:limit]) if isinstance(value, str) else ""


def texts(form: FormData, name: str, limit: int) -> list[str]:
    """Every value of the form's repeated ``name`` field, each cut to ``limit``."""
    return [storable(name, str(value)[:limit]) for value in form.getlist(name)]


def storable(name: str, value: str) -> str:
    """``value``, or Invalid (422) naming the field when it holds a NUL or half a surrogate
    pair: PostgreSQL refuses both in text and JSON, so the save would fail with a 500 (and
    SQLite would keep a NUL that cuts the text short wherever it is read as C)."""
    if not is_storable(value):
        raise Invalid(f"{name}: {REASON}")
    return value
