"""What the admin pages change, as functions of a session and the admin's :class:`Login`.

No HTTP here: each handler parses its form and calls one of these inside a transaction.
Every function checks the role itself and scopes every read and write by the login's
workspace, so an id from another store is a 404 whatever page sent it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley import held_messages
from parley.accounts.service import Login, audit_as, require_admin
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.customers.identity import normalise_email
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.errors import Conflict, Invalid, NotFound
from parley.jobs import queue
from parley.journeys import service as journeys
from parley.journeys.definitions import WAIT_BOUNDS_HOURS, SendStep, WaitStep
from parley.journeys.models import Journey
from parley.messaging import catalog, email_sender, marketing_controls, postal_address
from parley.messaging.context import store_site
from parley.messaging.frequency import MAX_HOURS, FrequencyCaps
from parley.messaging.marketing_controls import Actor
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.quiet_hours import QuietHours, WiderThanAllowed
from parley.messaging.templates import (
    RenderedContent,
    TemplateContent,
    TemplateError,
    TemplateRenderer,
)
from parley.messaging.types import MessageType
from parley.workspaces.models import Workspace
from parley.workspaces.service import check_time_zone

DEFAULT_RETURN_WINDOW_DAYS = 30
MAX_SECTIONS = 50
MAX_SECTION_CHARS = 20_000
# A wait without a bound of its own (the satisfaction check has one) stays within 60 days.
DEFAULT_WAIT_BOUNDS_HOURS = (0.25, 24 * 60)
MAX_EXPIRY_HOURS = 24 * 90
"""As far as a send step's ``expires_after_hours`` goes (the definition's own bound)."""
_RENDERER = TemplateRenderer()


# General


def update_general(
    session: Session,
    *,
    login: Login,
    name: str,
    store_url: str,
    support_email: str,
    postal: str,
    timezone: str,
    ip: str,
    review_url: str = "",
) -> None:
    """The store's name, site, review page, support address, postal address and time
    zone, as templates quote them."""
    require_admin(login)
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise Invalid("enter the store's name (up to 200 characters)")
    store_url = _web_address(store_url, "the store's address")
    review_url = _web_address(review_url, "the review page's address")
    email = normalise_email(support_email) if support_email.strip() else None
    if support_email.strip() and email is None:
        raise Invalid("enter a valid support email address")
    check_time_zone(timezone)
    try:
        address = postal_address.check(postal)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    workspace = _settings_of(session, login)
    workspace.name = name
    workspace.store_url = store_url or None
    workspace.support_email = email
    workspace.timezone = timezone
    workspace.settings = {
        **(workspace.settings or {}),
        "postal_address": address,
        "review_url": review_url or None,
    }
    audit_as(session, login, "settings_changed", now=utc_now(), ip=ip, detail={"page": "general"})


def _settings_of(session: Session, login: Login) -> Workspace:
    """The admin's workspace, its row locked until commit, to rewrite its settings JSON.

    Every save writes the whole JSON back: read without the lock, a save would put back
    whatever another admin's save (quiet hours, the kill switch, the From address...)
    changed after the read and committed before this one (PostgreSQL, read committed).
    SQLite runs one writer at a time already.
    """
    return session.get_one(
        Workspace, login.workspace_id, with_for_update=True, populate_existing=True
    )


def _web_address(value: str, what: str) -> str:
    """A web address the store typed, trimmed; empty when none. Templates put it in links,
    so nothing but http(s) passes (no ``javascript:``)."""
    value = value.strip()
    if value and not value.startswith(("https://", "http://")):
        raise Invalid(f"{what} must start with https://")
    if len(value) > 500:
        raise Invalid(f"{what} is too long")
    return value


def update_quiet_hours(
    session: Session,
    *,
    login: Login,
    opens: str,
    closes: str,
    sundays: bool,
    holidays: bool,
    ip: str,
) -> QuietHours:
    """When marketing texts may reach customers, in their own time zone: within 8:00 to
    21:00, the widest the law allows (a store may only narrow it), and whether on Sundays
    and on their country's public holidays."""
    require_admin(login)
    try:
        hours = QuietHours(opens=int(opens), closes=int(closes), sundays=sundays, holidays=holidays)
    except WiderThanAllowed as exc:
        raise Invalid(str(exc)) from None
    except ValueError:
        raise Invalid(
            "quiet hours: choose the hour marketing texts start and a later hour they stop"
        ) from None
    _save_setting(session, login, "quiet_hours", hours.as_settings(), page="quiet hours", ip=ip)
    return hours


def update_frequency_caps(
    session: Session, *, login: Login, hours: dict[str, str], ip: str
) -> FrequencyCaps:
    """How often marketing may reach one customer, per channel, in hours (0: no cap)."""
    require_admin(login)
    try:
        caps = FrequencyCaps({channel: float(value) for channel, value in hours.items()})
    except ValueError:
        raise Invalid(
            f"frequency caps: enter hours between 0 and {MAX_HOURS} for each channel"
        ) from None
    _save_setting(session, login, "frequency_caps", dict(caps.hours), page="frequency caps", ip=ip)
    return caps


def set_marketing_paused(session: Session, *, login: Login, paused: bool, ip: str) -> None:
    """Press the store's kill switch for marketing, or release it
    (:mod:`parley.messaging.marketing_pause`); audited as its own action."""
    require_admin(login)
    marketing_controls.set_paused(
        session,
        _settings_of(session, login),
        paused=paused,
        actor=_actor(login, ip),
        now=utc_now(),
    )


def set_marketing_rate(session: Session, *, login: Login, per_hour: str, ip: str) -> MarketingRate:
    """The store's own marketing rate, as typed (empty: no limit); the sends waiting for
    the old one are booked again (:mod:`parley.messaging.marketing_rate`)."""
    require_admin(login)
    rate = MarketingRate.parse(per_hour)
    marketing_controls.set_rate(
        session,
        _settings_of(session, login),
        rate,
        actor=_actor(login, ip),
        now=utc_now(),
    )
    return rate


def _actor(login: Login, ip: str) -> Actor:
    return Actor(email=login.email, user_id=login.user_id, ip=ip)


def _save_setting(
    session: Session, login: Login, key: str, value: dict[str, Any], *, page: str, ip: str
) -> None:
    """One of the store's marketing rules written to its settings, and audited with it."""
    workspace = _settings_of(session, login)
    workspace.settings = {**(workspace.settings or {}), key: value}
    audit_as(
        session, login, "settings_changed", now=utc_now(), ip=ip, detail={"page": page, **value}
    )


# The store's own email address


@dataclass(frozen=True)
class EmailSenderView:
    """What Settings → Channels shows of the store's own From address: what to publish,
    and what the last reading of its domain found (None: never read)."""

    sender: email_sender.EmailSender | None
    dkim_selector: str | None
    problems: list[str] | None
    checked_at: datetime | None

    @property
    def sends(self) -> bool:
        return self.problems == []


def email_sender_view(
    session: Session, *, workspace_id: int, deployment_selector: str | None
) -> EmailSenderView:
    workspace = session.get_one(Workspace, workspace_id)
    sender = email_sender.EmailSender.of(workspace.settings)
    if sender is None:
        return EmailSenderView(None, deployment_selector, None, None)
    reading = email_sender.readings(session, [sender.domain]).get(sender.domain)
    return EmailSenderView(
        sender,
        sender.dkim_selector or deployment_selector,
        email_sender.problems(sender, reading, now=utc_now()),
        reading.checked_at if reading is not None else None,
    )


def set_email_sender(
    session: Session,
    *,
    login: Login,
    address: str,
    dkim_selector: str,
    deployment_domain: str,
    ip: str,
) -> email_sender.EmailSender:
    """The address the store's email should go from; the store keeps its token, so
    records it published still count. Never on ``deployment_domain`` (see
    :func:`not_the_deployments`)."""
    require_admin(login)
    try:
        checked = email_sender.checked(address, dkim_selector, token=None)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    not_the_deployments(checked, deployment_domain)
    sender = email_sender.save(_settings_of(session, login), address, dkim_selector)
    _audit_email_sender(
        session, login, ip, {"address": sender.address, "dkim_selector": dkim_selector}
    )
    return sender


def remove_email_sender(session: Session, *, login: Login, ip: str) -> None:
    """Back to the deployment's address for the store's email."""
    require_admin(login)
    if email_sender.clear(_settings_of(session, login)):
        _audit_email_sender(session, login, ip, {"address": None})


def _audit_email_sender(session: Session, login: Login, ip: str, change: dict[str, Any]) -> None:
    audit_as(
        session,
        login,
        "settings_changed",
        now=utc_now(),
        ip=ip,
        detail={"page": "email sender", **change},
    )


def email_sender_to_read(
    session: Session, *, login: Login, deployment_domain: str
) -> email_sender.EmailSender:
    """The admin's store's own address, to read its domain now ("Check now")."""
    require_admin(login)
    sender = email_sender.EmailSender.of(session.get_one(Workspace, login.workspace_id).settings)
    if sender is None:
        raise Invalid("enter the address to send from first")
    not_the_deployments(sender, deployment_domain)
    return sender


def not_the_deployments(sender: email_sender.EmailSender, deployment_domain: str) -> None:
    """Invalid for a sender on the deployment's own From domain.

    Readings are kept by domain, and the deployment's holds back every store's marketing
    email while it falls short: a store reading it with a DKIM selector of its own
    choosing would stop them all until the next hourly check.
    """
    if sender.domain == deployment_domain.lower():
        raise Invalid(
            f"{sender.domain} is the deployment's own domain: your email goes from it already"
        )


# Store policies and FAQ


@dataclass(frozen=True)
class Section:
    title: str
    text: str


def knowledge_of(workspace: Workspace) -> tuple[list[Section], int]:
    """The policy sections the assistant quotes, and the return window in days."""
    settings = workspace.settings or {}
    sections = [
        Section(str(item.get("title") or ""), str(item.get("text") or ""))
        for item in settings.get("knowledge") or []
        if isinstance(item, dict)
    ]
    saved = settings.get("return_window_days")
    days = DEFAULT_RETURN_WINDOW_DAYS if saved is None else int(saved)  # 0: no returns
    return sections, days


def save_knowledge(
    session: Session,
    *,
    login: Login,
    sections: list[Section],
    return_window_days: str,
    ip: str,
) -> None:
    """Replace the policy sections; a section with neither title nor text is dropped."""
    require_admin(login)
    kept = [
        Section(" ".join(s.title.split()), s.text.replace("\r\n", "\n").strip())
        for s in sections
        if s.title.strip() or s.text.strip()
    ]
    if len(kept) > MAX_SECTIONS:
        raise Invalid(f"at most {MAX_SECTIONS} sections")
    for section in kept:
        if not section.title or not section.text:
            raise Invalid("every section needs a title and some text")
        if len(section.title) > 200 or len(section.text) > MAX_SECTION_CHARS:
            raise Invalid(f"section {section.title[:40]!r} is too long")
    try:
        days = int(return_window_days)
    except ValueError:
        raise Invalid("the return window is a number of days") from None
    if not 0 <= days <= 365:
        raise Invalid("the return window is between 0 and 365 days")
    workspace = _settings_of(session, login)
    # A new dict, so the JSON column sees the change.
    workspace.settings = {
        **(workspace.settings or {}),
        "knowledge": [{"title": s.title, "text": s.text} for s in kept],
        "return_window_days": days,
    }
    audit_as(
        session,
        login,
        "settings_changed",
        now=utc_now(),
        ip=ip,
        detail={"page": "policies", "sections": len(kept), "return_window_days": days},
    )


# Journeys


@dataclass(frozen=True)
class Wait:
    index: int
    hours: float
    low: float
    high: float


@dataclass(frozen=True)
class Expiry:
    """How long after it is due a send step's message still goes (hours)."""

    index: int
    message: MessageType
    hours: float


@dataclass(frozen=True)
class JourneyView:
    key: str
    name: str
    description: str
    is_enabled: bool
    version: int
    waits: tuple[Wait, ...]
    messages: tuple[MessageType, ...]
    expiries: tuple[Expiry, ...] = ()


def _view(journey: Journey) -> JourneyView:
    definition = journeys.definition_of(journey)
    low, high = WAIT_BOUNDS_HOURS.get(journey.key, DEFAULT_WAIT_BOUNDS_HOURS)
    waits = tuple(
        Wait(index, step.duration.total_seconds() / 3600, low, high)
        for index, step in enumerate(definition.steps)
        if isinstance(step, WaitStep)
    )
    messages = tuple(step.message for step in definition.steps if isinstance(step, SendStep))
    expiries = tuple(
        Expiry(index, step.message, step.expires_after.total_seconds() / 3600)
        for index, step in enumerate(definition.steps)
        if isinstance(step, SendStep) and step.expires_after is not None
    )
    return JourneyView(
        journey.key,
        journey.name,
        definition.description,
        journey.is_enabled,
        journey.version,
        waits,
        messages,
        expiries,
    )


def journey_views(session: Session, *, workspace_id: int) -> list[JourneyView]:
    return [_view(j) for j in journeys.list_journeys(session, workspace_id=workspace_id)]


def journey_view(session: Session, *, workspace_id: int, key: str) -> JourneyView:
    journey = session.scalar(
        select(Journey).where(Journey.workspace_id == workspace_id, Journey.key == key)
    )
    if journey is None:
        raise NotFound(f"journey {key!r} not found")
    return _view(journey)


def set_journey_enabled(
    session: Session, *, login: Login, key: str, is_enabled: bool, ip: str
) -> None:
    """Switch a journey on or off; runs already waiting re-check this before they send."""
    require_admin(login)
    journeys.update_journey(
        session, workspace_id=login.workspace_id, key=key, is_enabled=is_enabled
    )
    audit_as(
        session,
        login,
        "journey_changed",
        now=utc_now(),
        ip=ip,
        detail={"journey": key, "is_enabled": is_enabled},
    )


def set_journey_waits(
    session: Session,
    *,
    login: Login,
    key: str,
    hours: dict[int, str],
    ip: str,
    expiries: dict[int, str] | None = None,
) -> None:
    """Change a journey's waits (in hours) within the bounds the engine allows, and how
    long after it is due each message still goes (``expiries``, hours, up to 90 days)."""
    require_admin(login)
    journey = session.scalar(
        select(Journey).where(Journey.workspace_id == login.workspace_id, Journey.key == key)
    )
    if journey is None:
        raise NotFound(f"journey {key!r} not found")
    definition = dict(journey.definition)
    steps = [dict(step) for step in definition["steps"]]
    low, high = WAIT_BOUNDS_HOURS.get(key, DEFAULT_WAIT_BOUNDS_HOURS)
    for index, raw in hours.items():
        if not 0 <= index < len(steps) or steps[index].get("type") != "wait":
            raise Invalid(f"step {index} of {key!r} is not a wait")
        try:
            value = float(raw)
        except ValueError:
            raise Invalid("a wait is a number of hours") from None
        if not low <= value <= high:
            raise Invalid(f"this wait must be between {low:g} and {high:g} hours, not {value:g}")
        steps[index] = {"type": "wait", "hours": value}
    for index, raw in (expiries or {}).items():
        if not 0 <= index < len(steps) or steps[index].get("type") != "send":
            raise Invalid(f"step {index} of {key!r} is not a send")
        try:
            value = float(raw)
        except ValueError:
            raise Invalid("how long a message still goes is a number of hours") from None
        if not 0 < value <= MAX_EXPIRY_HOURS:
            raise Invalid(
                f"a message may go up to {MAX_EXPIRY_HOURS:g} hours after it is due, not {value:g}"
            )
        steps[index] = {**steps[index], "expires_after_hours": value}
    definition["steps"] = steps
    journeys.update_journey(
        session, workspace_id=login.workspace_id, key=key, definition=definition
    )
    audit_as(
        session,
        login,
        "journey_changed",
        now=utc_now(),
        ip=ip,
        detail={
            "journey": key,
            "waits_hours": {str(i): float(h) for i, h in hours.items()},
            **(
                {"expires_after_hours": {str(i): float(h) for i, h in expiries.items()}}
                if expiries
                else {}
            ),
        },
    )


# Message templates


def message_type_of(value: str) -> MessageType:
    try:
        return MessageType(value)
    except ValueError:
        raise NotFound(f"no message type {value!r}") from None


def channel_of(value: str) -> ChannelKind:
    try:
        return ChannelKind(value)
    except ValueError:
        raise NotFound(f"no channel {value!r}") from None


def journey_templates(
    session: Session, *, workspace_id: int, key: str, message_type: MessageType
) -> dict[ChannelKind, TemplateContent]:
    """The wording per channel of a message this journey sends (404 if it sends none)."""
    view = journey_view(session, workspace_id=workspace_id, key=key)
    if message_type not in view.messages:
        raise NotFound(f"journey {key!r} does not send {message_type}")
    return catalog.templates_for(session, workspace_id=workspace_id, message_type=message_type)


def edited_content(
    current: TemplateContent, *, subject: str | None, text: str, html: str | None
) -> TemplateContent:
    """The template with the admin's subject, text and HTML; WhatsApp fields kept."""
    return TemplateContent(
        text=text.replace("\r\n", "\n"),
        subject=subject if current.subject is not None else None,
        html=html.replace("\r\n", "\n") if current.html is not None and html is not None else None,
        whatsapp_template=current.whatsapp_template,
        whatsapp_language=current.whatsapp_language,
        whatsapp_parameters=current.whatsapp_parameters,
    )


def save_journey_template(
    session: Session,
    *,
    login: Login,
    key: str,
    message_type: MessageType,
    channel: ChannelKind,
    subject: str | None,
    text: str,
    html: str | None,
    ip: str,
) -> None:
    """Save a store's wording after it compiles and renders on the sample customer."""
    require_admin(login)
    found = journey_templates(
        session, workspace_id=login.workspace_id, key=key, message_type=message_type
    )
    if channel not in found:
        raise NotFound(f"{message_type} is not sent on {channel}")
    content = edited_content(found[channel], subject=subject, text=text, html=html)
    workspace = session.get_one(Workspace, login.workspace_id)
    try:
        _RENDERER.validate(content, sample_context=sample_context(workspace))
    except TemplateError as exc:
        raise Invalid(exc.reason) from exc
    catalog.save_template(
        session,
        workspace_id=login.workspace_id,
        message_type=message_type,
        channel=channel,
        content=content.to_dict(),
        renderer=_RENDERER,
    )
    audit_as(
        session,
        login,
        "template_changed",
        now=utc_now(),
        ip=ip,
        detail={"journey": key, "message": str(message_type), "channel": str(channel)},
    )


def sample_context(workspace: Workspace) -> dict[str, Any]:
    """A made-up customer and order in the store's own name, for previews: the same shape
    as ``messaging.context.template_context`` builds for a real message."""
    store_url = (store_site(workspace) or "https://shop.example").rstrip("/")
    return {
        "store": {
            "name": workspace.name,
            "url": store_site(workspace),
            "support_email": workspace.support_email or "",
            "postal_address": postal_address.of(workspace.settings),
        },
        "customer": {
            "first_name": "Maya",
            "last_name": "Patel",
            "email": "maya.patel@example.com",
            "phone": "+447700900123",
        },
        "order": {
            "number": "#1042",
            "total": "86.50",
            "currency": "GBP",
            "status_url": f"{store_url}/orders/1042",
            "items": [
                {
                    "title": "Merino Crew Jumper",
                    "quantity": 1,
                    "price": "68.00",
                    "variant_title": "Oat / M",
                },
                {
                    "title": "Organic Cotton Tee",
                    "quantity": 1,
                    "price": "18.50",
                    "variant_title": "White / M",
                },
            ],
            "item_count": 2,
        },
        "fulfillment": {
            "tracking_company": "Royal Mail",
            "tracking_number": "RM123456785GB",
            "tracking_url": "https://track.example/RM123456785GB",
            "shipment_status": "in_transit",
        },
        "unsubscribe_url": f"{store_url}/unsubscribe/sample",
        # Empty without a review page, as sent: the preview must not show a link (or the
        # ``{% if review_url %}`` paragraph around it) the customer will never get.
        "review_url": (workspace.settings or {}).get("review_url") or "",
        "body": "",
    }


def preview(workspace: Workspace, content: TemplateContent) -> RenderedContent:
    """Render unsaved wording on the sample customer; :class:`TemplateError` explains a
    syntax error, a sandbox refusal or an over-long output in words an owner can act on."""
    return _RENDERER.render(content, sample_context(workspace))


# Export


def _safe_cell(value: object) -> str:
    """Spreadsheet-safe: a cell that a spreadsheet would read as a formula gets a ``'``."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


EXPORT_COLUMNS = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "identities",
    "consent",
    "merged_into_id",
    "created_at",
)


def export_customers(session: Session, *, login: Login, ip: str) -> str:
    """This workspace's customers as CSV, with identities and latest consent; audited."""
    require_admin(login)
    workspace_id = login.workspace_id
    identities: dict[int, list[str]] = {}
    for identity in session.scalars(
        select(CustomerIdentity)
        .where(CustomerIdentity.workspace_id == workspace_id)
        .order_by(CustomerIdentity.id)
    ):
        identities.setdefault(identity.customer_id, []).append(f"{identity.kind}:{identity.value}")
    consent: dict[int, dict[tuple[str, str], ConsentRecord]] = {}
    for record in session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.workspace_id == workspace_id)
        .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
    ):
        consent.setdefault(record.customer_id, {})[(record.channel, record.purpose)] = record
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    rows = 0
    for customer in session.scalars(
        select(Customer).where(Customer.workspace_id == workspace_id).order_by(Customer.id)
    ):
        latest = consent.get(customer.id, {})
        writer.writerow(
            _safe_cell(value)
            for value in (
                customer.id,
                customer.first_name,
                customer.last_name,
                customer.email,
                customer.phone,
                "; ".join(identities.get(customer.id, [])),
                "; ".join(
                    f"{channel}/{purpose}={'granted' if r.is_granted else 'refused'} ({r.source})"
                    for (channel, purpose), r in sorted(latest.items())
                ),
                customer.merged_into_id,
                customer.created_at.isoformat(),
            )
        )
        rows += 1
    audit_as(
        session,
        login,
        "export",
        now=utc_now(),
        ip=ip,
        detail={"what": "customers", "rows": rows},
    )
    return out.getvalue()


# Failed sends (the dead letter)

AUDITED_JOB_IDS = 50
"""The first ids of a re-drive kept in its audit entry (after an outage, all may be
thousands: the count says how many)."""


def retry_failed_sends(
    session: Session, *, login: Login, job_ids: list[int] | None, ip: str
) -> int:
    """Send again what gave up: the named jobs of the store's dead letter, or all of it.

    A named job not in it is refused (404, 409) and nothing is re-driven; with ``None``,
    a job someone re-drove in the meantime is passed over. Audited with how many, and
    which.
    """
    require_admin(login)
    if job_ids is None:
        wanted = [
            job.id for job in queue.list_dead(session, workspace_id=login.workspace_id, limit=None)
        ]
        redriven = []
        for job_id in wanted:
            try:
                redriven.append(queue.redrive(session, job_id, workspace_id=login.workspace_id))
            except Conflict:
                continue
    else:
        redriven = [
            queue.redrive(session, job_id, workspace_id=login.workspace_id) for job_id in job_ids
        ]
    if redriven:
        ids = [job.id for job in redriven]
        detail: dict[str, Any] = {"count": len(ids), "jobs": ids[:AUDITED_JOB_IDS]}
        audit_as(session, login, "dead_letter_retried", now=utc_now(), ip=ip, detail=detail)
    return len(redriven)


# Messages held for review


def review_held_message(
    session: Session, *, login: Login, message_id: int, arrived: bool, ip: str
) -> None:
    """The admin's word on a held message: it arrived (marked sent) or it did not (sent
    again through the job that held it). Audited with the message and the decision."""
    require_admin(login)
    now = utc_now()
    if arrived:
        held_messages.mark_arrived(
            session, workspace_id=login.workspace_id, message_id=message_id, by=login.name, now=now
        )
    else:
        held_messages.send_again(
            session, workspace_id=login.workspace_id, message_id=message_id, by=login.name, now=now
        )
    detail = {"message": message_id, "arrived": arrived}
    audit_as(session, login, "held_message_reviewed", now=now, ip=ip, detail=detail)
