"""Canned replies: saved answers with variables, written by admins, used by every agent.

A canned reply's body is store-editable text, so it is compiled and rendered only in the
message-template sandbox (``messaging/templates.py``), never a plain Jinja environment:
it is checked against a sample conversation when saved, and rendered for the open
conversation when an agent inserts it. Variables:

- ``customer``: ``first_name``, ``last_name``, ``email``, ``phone``
- ``order`` (the customer's latest): ``name`` (``"#1042"``), ``number``, ``total``,
  ``currency``, ``status_url``, ``tracking_url``, ``tracking_company``, ``tracking_number``
- ``store``: ``name``, ``url``, ``support_email``
- ``agent``: ``first_name``, ``name`` (whoever inserts it)
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parley.accounts.service import Login, require_admin
from parley.clock import utc_now
from parley.customers.models import Customer
from parley.errors import Conflict, Invalid, NotFound
from parley.inbox.models import CannedReply
from parley.inbox.service import get_conversation
from parley.messaging.context import template_context
from parley.messaging.replies import latest_order
from parley.messaging.templates import TemplateContent, TemplateError, TemplateRenderer
from parley.workspaces.models import Workspace

SHORTCUT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_BODY_CHARS = 5_000
# Small limits: a canned reply is a paragraph, and rendering runs in a web request.
_RENDERER = TemplateRenderer(max_output_chars=MAX_BODY_CHARS * 4, max_steps=10_000)

SAMPLE_CONTEXT: dict[str, Any] = {
    "customer": {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": "+447911123456",
    },
    "order": {
        "name": "#1042",
        "number": "#1042",
        "total": "86.50",
        "currency": "GBP",
        "status_url": "https://shop.example/orders/1042",
        "tracking_url": "https://track.example/1042",
        "tracking_company": "Royal Mail",
        "tracking_number": "RM123456789GB",
    },
    "store": {"name": "Your store", "url": "https://shop.example", "support_email": ""},
    "agent": {"first_name": "Sam", "name": "Sam Agent"},
}


def list_canned(session: Session, *, workspace_id: int) -> list[CannedReply]:
    """The workspace's canned replies by shortcut."""
    return list(
        session.scalars(
            select(CannedReply)
            .where(CannedReply.workspace_id == workspace_id)
            .order_by(CannedReply.shortcut)
        )
    )


def get_canned(session: Session, *, workspace_id: int, canned_id: int) -> CannedReply:
    """One canned reply of this workspace; NotFound for any other id."""
    canned = session.scalar(
        select(CannedReply).where(
            CannedReply.workspace_id == workspace_id, CannedReply.id == canned_id
        )
    )
    if canned is None:
        raise NotFound(f"canned reply {canned_id} not found")
    return canned


def save_canned(
    session: Session,
    *,
    login: Login,
    canned_id: int | None,
    shortcut: str,
    title: str,
    body: str,
) -> CannedReply:
    """Create (``canned_id`` None) or update a canned reply; admins only.

    The body must compile and render in the sandbox with sample data, so a reply that
    would fail (or reach for ``__class__``) is refused here, not in front of a customer.
    """
    require_admin(login)
    shortcut = shortcut.strip().lstrip("/").lower()
    title = title.strip()
    body = body.strip()
    if not SHORTCUT.fullmatch(shortcut):
        raise Invalid("the shortcut is 1-64 lowercase letters, digits, - or _")
    if not title or len(title) > 200:
        raise Invalid("the title is 1-200 characters")
    if not body or len(body) > MAX_BODY_CHARS:
        raise Invalid(f"the text is 1-{MAX_BODY_CHARS} characters")
    try:
        _RENDERER.validate(TemplateContent(text=body), sample_context=SAMPLE_CONTEXT)
    except TemplateError as exc:
        raise Invalid(f"the text cannot be used: {exc.reason}") from exc
    now = utc_now()
    if canned_id is None:
        canned = CannedReply(workspace_id=login.workspace_id, created_at=now)
        session.add(canned)
    else:
        canned = get_canned(session, workspace_id=login.workspace_id, canned_id=canned_id)
    canned.shortcut, canned.title, canned.body, canned.updated_at = shortcut, title, body, now
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"another canned reply already uses /{shortcut}") from exc
    return canned


def delete_canned(session: Session, *, login: Login, canned_id: int) -> None:
    """Remove a canned reply; admins only."""
    require_admin(login)
    session.delete(get_canned(session, workspace_id=login.workspace_id, canned_id=canned_id))


def render_canned(session: Session, *, login: Login, conversation_id: int, canned_id: int) -> str:
    """The canned reply filled in for this conversation's customer, latest order and the
    agent inserting it; both ids must belong to the agent's workspace."""
    conversation = get_conversation(
        session, workspace_id=login.workspace_id, conversation_id=conversation_id
    )
    canned = get_canned(session, workspace_id=login.workspace_id, canned_id=canned_id)
    workspace = session.get_one(Workspace, login.workspace_id)
    customer = session.get_one(Customer, conversation.customer_id)
    order, fulfillment = latest_order(
        session, workspace_id=login.workspace_id, customer_id=customer.id
    )
    base = template_context(
        workspace=workspace, customer=customer, order=order, fulfillment=fulfillment
    )
    shipment = base["fulfillment"] or {}
    context = {
        "customer": base["customer"],
        "store": base["store"],
        "order": {
            "name": order.number if order else "",
            "number": order.number if order else "",
            "total": (base["order"] or {}).get("total") or "",
            "currency": order.currency if order else "",
            "status_url": (order.status_url or "") if order else "",
            "tracking_url": shipment.get("tracking_url", ""),
            "tracking_company": shipment.get("tracking_company", ""),
            "tracking_number": shipment.get("tracking_number", ""),
        },
        "agent": {
            "first_name": login.name.split()[0] if login.name.split() else "",
            "name": login.name,
        },
    }
    try:
        return _RENDERER.render(TemplateContent(text=canned.body), context).text
    except TemplateError as exc:
        raise Invalid(f"canned reply /{canned.shortcut} cannot be filled in: {exc.reason}") from exc
