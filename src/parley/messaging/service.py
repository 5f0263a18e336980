"""The outbox: plan a message (decide, render), record it ``sending``, then record the answer.

The provider is called between the two, outside any transaction. The message row is keyed
(``idempotency_key``, unique per workspace), so a retried job finds the row it made:

- ``sent`` / ``skipped`` / ``failed`` / ``held``: already decided, nothing to do;
- ``queued``: a transient failure earlier, so send again (a new attempt);
- ``sending``: a worker died after handing it over and before recording the answer. The
  provider may have accepted it, so it is *held* for review, never blindly re-sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from parley.channels.base import (
    AccountChannelError,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendingAccount,
    SendResult,
    StatusUpdate,
    TemplateRef,
    TransientChannelError,
)
from parley.clock import find_zone, utc_now, zone_of
from parley.commerce.models import Fulfillment, Order
from parley.customers import service as customers
from parley.customers.identity import country_for_phone, timezones_for_phone
from parley.customers.models import Customer
from parley.db.base import table_of
from parley.db.scoped import one_of
from parley.db.upsert import (
    batch_values,
    insert_batch,
    insert_batch_returning,
    insert_on,
    per_dialect,
    write_rows,
)
from parley.jobs.worker import Later
from parley.live.outbox import emit, emit_status, emit_statuses
from parley.messaging import frequency, postal_address, sending_domain, unsubscribe
from parley.messaging.context import template_context
from parley.messaging.frequency import FrequencyCaps
from parley.messaging.lookup import OutboxLookup
from parley.messaging.marketing_pause import MarketingPause
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.models import (
    AttemptOutcome,
    Author,
    DeliveryAttempt,
    Direction,
    Message,
    MessageStatus,
)
from parley.messaging.pace import Pacer, Sender, Want
from parley.messaging.policy import SESSION_WINDOW, Decision, Reach, consent_allows, decide
from parley.messaging.quiet_hours import QUIET_CHANNELS, NoSharedWindow, QuietHours
from parley.messaging.senders import StoreSenders, note_answers
from parley.messaging.templates import (
    RenderedContent,
    TemplateContent,
    TemplateError,
    TemplateRenderer,
)
from parley.messaging.types import (
    DEFAULT_CHANNEL_PREFERENCES,
    MessageType,
    Purpose,
    WaitingFor,
)
from parley.messaging.windows import WINDOWED, SendingLine
from parley.workspaces.models import Workspace

MESSAGES = table_of(Message)
NO_SENDERS = Pacer()
"""No provider's sender paced: only a store's own marketing rate is."""
ATTEMPTS = table_of(DeliveryAttempt)
OPTED_OUT_CODES: dict[tuple[str, str], tuple[Purpose, ...]] = {
    # Twilio: the number replied STOP to the sending number, and carriers block every
    # further message from it until START.
    ("sms", "21610"): (Purpose.TRANSACTIONAL, Purpose.MARKETING),
    # WhatsApp: the person stopped the business's marketing messages inside WhatsApp;
    # order updates still reach them. Reported on the failed status receipt.
    ("whatsapp", "131050"): (Purpose.MARKETING,),
}
"""Provider refusals that are the recipient's own opt-out, and what they revoke."""


@dataclass(frozen=True)
class OutboxSettings:
    """Deployment facts the outbox needs (from ``Settings``)."""

    public_url: str
    secret_key: str
    sending_domain: str | None = None
    """The From address's domain, when its SPF, DKIM and DMARC are checked
    (:mod:`parley.messaging.sending_domain`)."""


@dataclass(frozen=True)
class PreparedSend:
    """A message handed to the worker to send, outside the transaction."""

    message_id: int
    workspace_id: int
    customer_id: int | None
    channel: ChannelKind
    attempt_number: int
    started_at: datetime
    outbound: OutboundMessage


@dataclass(frozen=True)
class UnrecordedSend:
    """A message decided and rendered whose ``sending`` row is not written yet.

    A worker plans every job of its batch first, then writes their rows together
    (:func:`record_sends`): one statement on PostgreSQL instead of one each.
    """

    row: dict[str, Any]
    sender_name: str
    status_callback_url: str | None
    store_pace: Sender | None = None
    """The store's marketing rate, for a marketing send of a store that set one."""
    account: SendingAccount | None = None
    """The store's own account it goes from; None: the deployment's."""
    reply_address: str | None = None
    """An email's ``Reply-To``: the store's own inbound address."""


@dataclass(frozen=True)
class QueuedSend:
    """A ``queued`` message to send: a reply, or a retry after a transient failure. Its
    attempt starts when the batch is recorded (:func:`record_sends`), if its sender has
    room then."""

    message: Message
    sender_name: str
    status_callback_url: str | None
    is_human_agent: bool = False
    """An Instagram reply by a person past the 24-hour window, decided at send time."""
    store_pace: Sender | None = None
    """The store's marketing rate, for a marketing send of a store that set one."""
    account: SendingAccount | None = None
    """The store's own account it goes from; None: the deployment's."""
    reply_address: str | None = None
    """An email's ``Reply-To``: the store's own inbound address."""


@dataclass(frozen=True)
class Withdrawn:
    """A message that waited for a retry and may no longer go on its channel: skipped
    with ``reason``. The journey tries the message's next channel, as after a provider's
    permanent refusal (``channel``; None: no channel, the store uninstalled parley)."""

    channel: ChannelKind | None
    reason: str


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_result` concluded, for the job to act on."""

    result: Result
    reason: str = ""
    retry_after: float | None = None
    channel: ChannelKind | None = None
    is_exhausted: bool = False
    """A transient failure on the last allowed attempt: the job goes to the dead letter."""


def plan_message(
    session: Session,
    *,
    lookup: OutboxLookup,
    workspace: Workspace,
    customer: Customer,
    message_type: MessageType,
    purpose: Purpose,
    idempotency_key: str,
    order: Order | None,
    fulfillment: Fulfillment | None,
    renderer: TemplateRenderer,
    outbox: OutboxSettings,
    journey_run_id: int | None = None,
    step_index: int | None = None,
    exclude_channels: tuple[str, ...] = (),
) -> UnrecordedSend | QueuedSend | Later | Withdrawn | None:
    """Decide and render a message; or record why it is not sent.

    Returns the send to record (:func:`record_sends`) and perform: a new message, or the
    key's message waiting for a retry; :class:`Later` when it is marketing the store has
    paused, or a marketing text due in the customer's quiet hours, nothing recorded;
    :class:`Withdrawn` when the key's message waiting for a retry may no longer go on its
    channel, now skipped; or None when there is nothing to send (skipped, or the key's
    message was already decided, or it is held after an interrupted send).
    """
    now = utc_now()
    existing = lookup.message(workspace.id, idempotency_key)
    if existing is not None:
        return _again(session, lookup, workspace, customer, existing, outbox, now)
    row = {
        **blank_row(workspace_id=workspace.id, now=now),
        "customer_id": customer.id,
        "conversation_id": lookup.open_conversation_id(customer),
        "journey_run_id": journey_run_id,
        "step_index": step_index,
        "idempotency_key": idempotency_key,
        "message_type": message_type,
        "purpose": purpose,
    }
    if not workspace.is_active:
        _announce_new(
            session,
            row,
            insert_message(session, {**row, "status_reason": "the store has uninstalled parley"}),
        )
        return None
    paused = _paused(workspace, purpose, now)
    if paused is not None:
        return paused
    templates = lookup.templates(workspace.id, message_type)
    decision = _decide(
        lookup,
        workspace,
        customer,
        message_type,
        purpose,
        exclude_channels,
        templates,
        now,
        outbox.sending_domain,
    )
    row["decision"] = decision.trail
    if decision.channel is None:
        _announce_new(
            session, row, insert_message(session, {**row, "status_reason": decision.skip_reason})
        )
        return None
    wait = _quiet(workspace, customer, purpose, decision.channel, decision.recipient, now)
    if wait is not None:
        return wait
    row.update(channel=decision.channel, recipient=decision.recipient)
    links = _links(outbox, workspace=workspace, customer=customer, purpose=purpose)
    context = template_context(
        workspace=workspace, customer=customer, order=order, fulfillment=fulfillment, extra=links
    )
    try:
        rendered = renderer.render(templates[decision.channel], context)
    except TemplateError as exc:
        # A store's wording that saved (it compiles, and renders on the sample order) can
        # still fail on a real order's data: that is this send's answer, not a retry's.
        reason = f"the store's {decision.channel} template could not be filled in: {exc.reason}"
        _announce_new(session, row, insert_message(session, {**row, "status_reason": reason}))
        return None
    capped = _capped(session, workspace, customer, purpose, decision.channel, idempotency_key, now)
    if capped is not None:
        _announce_new(session, row, insert_message(session, {**row, "status_reason": capped}))
        return None
    # Sent elsewhere: the channel the customer left still shows the send it skipped.
    for channel, address in decision.opted_out:
        insert_message(
            session,
            {
                **row,
                "idempotency_key": f"{idempotency_key}:opted-out:{channel}",
                "channel": channel,
                "recipient": address,
                "status_reason": f"opted out: not sent on {channel}",
            },
        )
    if decision.channel is ChannelKind.EMAIL and purpose is Purpose.MARKETING:
        rendered = postal_address.with_address(rendered, postal_address.of(workspace.settings))
    row.update(
        subject=rendered.subject,
        body=rendered.text,
        html=rendered.html,
        template=_template_json(rendered, use_template=decision.use_template),
        status=MessageStatus.SENDING,
        attempts=1,
    )
    if decision.channel is ChannelKind.EMAIL and purpose is Purpose.MARKETING:
        row["headers"] = {
            "List-Unsubscribe": f"<{links['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    account = lookup.sending_account(workspace.id, decision.channel)
    row["store_address"] = account.address if account is not None else None
    return UnrecordedSend(
        row=row,
        sender_name=workspace.name,
        status_callback_url=status_callback_url(outbox, workspace, decision.channel),
        store_pace=_store_pace(workspace, purpose),
        account=account,
        reply_address=_reply_address(lookup, workspace, decision.channel),
    )


def _again(
    session: Session,
    lookup: OutboxLookup,
    workspace: Workspace,
    customer: Customer,
    existing: Message,
    outbox: OutboxSettings,
    now: datetime,
) -> QueuedSend | Later | Withdrawn | None:
    """:func:`plan_message` for a key whose message is recorded: one waiting for a retry
    is asked again whether it may go (:func:`_withdrawn`) and when (the store's pause,
    the customer's quiet hours), then resumed."""
    if existing.status == MessageStatus.QUEUED:
        withdrawn = _withdrawn(lookup, workspace, customer, existing, now)
        if withdrawn is not None:
            skip_pending(
                session,
                lookup=lookup,
                workspace_id=workspace.id,
                idempotency_key=existing.idempotency_key,
                reason=withdrawn.reason,
            )
            return withdrawn
        wait = _paused(workspace, str(existing.purpose), now) or _quiet(
            workspace,
            customer,
            str(existing.purpose),
            existing.channel,
            existing.recipient,
            now,
        )
        if wait is not None:
            return wait
    return _resume(
        session,
        existing,
        now=now,
        sender_name=workspace.name,
        status_callback_url=status_callback_url(outbox, workspace, existing.channel),
        store_pace=_store_pace(workspace, str(existing.purpose)),
        account=(
            lookup.sending_account(workspace.id, existing.channel) if existing.channel else None
        ),
        reply_address=_reply_address(lookup, workspace, existing.channel),
    )


def _withdrawn(
    lookup: OutboxLookup,
    workspace: Workspace,
    customer: Customer,
    message: Message,
    now: datetime,
) -> Withdrawn | None:
    """Why a message waiting for its retry may no longer go where it was decided to go.

    A retry can come an hour after the first attempt, and the customer may have opted out
    on that channel meanwhile (a STOP, an unsubscribe), the store uninstalled parley, or
    the WhatsApp or Instagram window free text was decided in closed: the retry asks
    again, as a reply does at send time, rather than sending what was decided before.
    """
    if not workspace.is_active:
        return Withdrawn(None, "not sent: the store uninstalled parley before its retry")
    if message.channel is None:
        return None
    channel = ChannelKind(message.channel)
    reach = lookup.reach(customer)
    allowed, why = consent_allows(reach.consent, channel, Purpose(message.purpose))
    if not allowed:
        return Withdrawn(channel, f"not sent: {why} on {channel} before its retry")
    if _window_closed(reach, lookup.senders(workspace.id), channel, message, now):
        return Withdrawn(
            channel, f"not sent: {WINDOW_NAMES[channel]}'s 24-hour window closed before its retry"
        )
    return None


WINDOW_NAMES = {ChannelKind.WHATSAPP: "WhatsApp", ChannelKind.INSTAGRAM: "Instagram"}


def _window_closed(
    reach: Reach, senders: StoreSenders, channel: ChannelKind, message: Message, now: datetime
) -> bool:
    """Whether free text decided inside the window the customer's last message opened
    would now go outside it (a template may go outside WhatsApp's)."""
    if channel not in WINDOWED or message.template is not None or not message.recipient:
        return False
    line = SendingLine(senders.get(channel), senders)
    opened = reach.window_opened(channel, message.recipient, line)
    return opened is None or now - opened >= SESSION_WINDOW


def _reply_address(lookup: OutboxLookup, workspace: Workspace, channel: str | None) -> str | None:
    """Where a customer's answer to an email goes: the store's own inbound address."""
    if channel != ChannelKind.EMAIL:
        return None
    return lookup.reply_address(workspace.id)


def _store_pace(workspace: Workspace, purpose: str) -> Sender | None:
    """The store's marketing rate for a marketing send, if it set one
    (:mod:`parley.messaging.marketing_rate`)."""
    if purpose != Purpose.MARKETING:
        return None
    return MarketingRate.of(workspace.settings).sender(workspace.id)


def _paused(workspace: Workspace, purpose: str, now: datetime) -> Later | None:
    """A marketing send waits while the store has paused marketing, nothing recorded
    (:mod:`parley.messaging.marketing_pause`)."""
    if purpose != Purpose.MARKETING:
        return None
    return MarketingPause.of(workspace.settings).hold(now)


def _quiet(
    workspace: Workspace,
    customer: Customer,
    purpose: str,
    channel: str | None,
    recipient: str | None,
    now: datetime,
) -> Later | None:
    """A marketing text due in the customer's quiet hours waits for them to end, nothing
    recorded (:mod:`parley.messaging.quiet_hours`)."""
    if purpose != Purpose.MARKETING or channel not in QUIET_CHANNELS:
        return None
    hours = QuietHours.of(workspace.settings)
    zones = _zones(workspace, customer, recipient)
    country = country_for_phone(recipient)
    try:
        opens = hours.next_opening_everywhere(now, zones, country)
    except NoSharedWindow:
        zones = [zone_of(workspace.timezone)]
        opens = hours.next_opening(now, zones[0], country)
    if opens is None:
        return None
    return Later(
        opens,
        f"quiet hours: marketing on {channel} waits until "
        + ", ".join(f"{opens.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}" for zone in zones),
        WaitingFor.QUIET_HOURS,
    )


def _zones(workspace: Workspace, customer: Customer, recipient: str | None) -> list[ZoneInfo]:
    """Where the customer may be when the text rings.

    Their own zone, when it is one, narrows down a number that spans several. But it may
    be stale (Shopify sends none, so it was worked out from the first number they gave)
    or name a place the number does not ring in: then the number's zones are added to it,
    and the text waits until it is allowed in every one. The store's zone only when
    neither says anything.
    """
    own = find_zone(customer.timezone)
    rings = [zone for zone in map(find_zone, timezones_for_phone(recipient)) if zone is not None]
    if own is not None and (not rings or own.key in {zone.key for zone in rings}):
        return [own]
    zones = ([own] if own is not None else []) + rings
    return zones or [zone_of(workspace.timezone)]


def _capped(
    session: Session,
    workspace: Workspace,
    customer: Customer,
    purpose: str,
    channel: str,
    idempotency_key: str,
    now: datetime,
) -> str | None:
    """Why the frequency cap stops this marketing message, or None when it may go (its
    slot is then taken, in this transaction: :mod:`parley.messaging.frequency`)."""
    if purpose != Purpose.MARKETING:
        return None
    window = FrequencyCaps.of(workspace.settings).window(channel)
    if window is None:
        return None
    last = frequency.take_slot(
        session,
        workspace_id=workspace.id,
        customer_id=customer.id,
        channel=channel,
        idempotency_key=idempotency_key,
        now=now,
        window=window,
    )
    if last is None:
        return None
    return (
        f"frequency cap: marketing by {channel} at most once every "
        f"{window.total_seconds() / 3600:g} h; the last went {last:%Y-%m-%d %H:%M} UTC"
    )


def has_other_channel(
    lookup: OutboxLookup,
    *,
    workspace: Workspace,
    customer: Customer,
    message_type: MessageType,
    purpose: Purpose,
    exclude_channels: tuple[str, ...],
    sending_domain: str | None = None,
) -> bool:
    """Whether the policy would send this message on a channel outside ``exclude_channels``
    now; nothing is recorded. Asked when a provider refuses the store's account: the
    message falls back when another channel would take it, and is kept for retrying when
    none would."""
    if not workspace.is_active:
        return False
    templates = lookup.templates(workspace.id, message_type)
    decision = _decide(
        lookup,
        workspace,
        customer,
        message_type,
        purpose,
        exclude_channels,
        templates,
        utc_now(),
        sending_domain,
    )
    return decision.channel is not None


def _decide(
    lookup: OutboxLookup,
    workspace: Workspace,
    customer: Customer,
    message_type: MessageType,
    purpose: Purpose,
    exclude_channels: tuple[str, ...],
    templates: Mapping[ChannelKind, TemplateContent],
    now: datetime,
    sending_domain: str | None,
) -> Decision:
    """The policy's decision for this customer with the store's channel preferences."""
    return decide(
        lookup.reach(customer),
        message_type=message_type,
        purpose=purpose,
        now=now,
        templates=templates,
        exclude=exclude_channels,
        preferences=channel_preferences(workspace, message_type),
        whatsapp_templates=lookup.whatsapp_templates(workspace.id),
        unavailable=_unavailable(lookup, workspace, purpose, sending_domain),
        senders=lookup.senders(workspace.id),
    )


def _unavailable(
    lookup: OutboxLookup, workspace: Workspace, purpose: str, domain: str | None
) -> dict[ChannelKind, str]:
    """Channels ruled out for this message: by the store's own settings (its postal
    address), or by the deployment's sending domain's set-up (marketing email; a store
    sending from its own address sends only while its domain is set up)."""
    refused = postal_address.refusal(workspace.settings, purpose)
    if (
        refused is None
        and domain is not None
        and purpose == Purpose.MARKETING
        and lookup.sending_account(workspace.id, ChannelKind.EMAIL) is None
    ):
        refused = sending_domain.refusal(domain, lookup.sending_domain_problems(domain))
    return {ChannelKind.EMAIL: refused} if refused else {}


def record_sends(
    session: Session,
    sends: Sequence[UnrecordedSend | QueuedSend],
    *,
    pacer: Pacer | None = None,
) -> list[PreparedSend | Later | None]:
    """Record each send ``sending`` (new messages all in one go), where its sender has
    room (``pacer``) and, for marketing, the store's own rate does: for each, the send to
    perform; :class:`Later` when either has none now, with nothing written for it; or
    None where a new message's key exists
    already (a racing worker recorded it, or the same key came twice in the list: only
    the first is recorded), or where a queued message is no longer ``queued`` (a receipt
    settled it since it was read: :func:`start_attempt`)."""
    now = utc_now()
    waits = (pacer or NO_SENDERS).take(session, [_want(send) for send in sends], now=now)
    _release_slots_held_back(session, sends, waits)
    results: list[PreparedSend | Later | None] = list(waits)
    new = [
        (index, send)
        for index, send in enumerate(sends)
        if isinstance(send, UnrecordedSend) and waits[index] is None
    ]
    # A send's attempt starts when it goes ``sending``, now: after its sender's room.
    rows = [{**send.row, "status_updated_at": now} for _, send in new]
    message_ids = insert_batch_returning(session, _insert_message(session), rows, keys=_MESSAGE_KEY)
    for (index, send), row, message_id in zip(new, rows, message_ids, strict=True):
        if message_id is None:
            continue
        _announce_new(session, row, message_id)
        results[index] = PreparedSend(
            message_id=message_id,
            workspace_id=row["workspace_id"],
            customer_id=row["customer_id"],
            channel=row["channel"],
            attempt_number=1,
            started_at=now,
            outbound=_outbound(
                {
                    **row,
                    "sender_name": send.sender_name,
                    "status_callback_url": send.status_callback_url,
                    "account": send.account,
                    "reply_address": send.reply_address,
                },
                message_id=message_id,
            ),
        )
    for index, queued in enumerate(sends):
        if isinstance(queued, QueuedSend) and waits[index] is None:
            results[index] = start_attempt(
                session,
                queued.message,
                now=now,
                sender_name=queued.sender_name,
                status_callback_url=queued.status_callback_url,
                is_human_agent=queued.is_human_agent,
                account=queued.account,
                reply_address=queued.reply_address,
            )
    return results


def _release_slots_held_back(
    session: Session, sends: Sequence[UnrecordedSend | QueuedSend], waits: Sequence[Later | None]
) -> None:
    """New marketing messages the rate or pace holds back give back the frequency-cap
    slot they took when they were planned (:func:`frequency.release_slots`)."""
    held: dict[int, dict[str, int]] = {}
    for send, wait in zip(sends, waits, strict=True):
        if wait is None or not isinstance(send, UnrecordedSend):
            continue
        row = send.row
        if row["purpose"] == Purpose.MARKETING:
            held.setdefault(row["workspace_id"], {})[row["idempotency_key"]] = row["customer_id"]
    for workspace_id, keys in held.items():
        frequency.release_slots(session, workspace_id=workspace_id, keys=keys)


def _want(send: UnrecordedSend | QueuedSend) -> Want:
    # Paced on its own: a store's own provider account. Its address on the deployment's
    # (its email From on the shared relay) takes the deployment's pace.
    account = send.account
    address = account.address if account is not None and not account.is_address_only else None
    if isinstance(send, QueuedSend):
        message = send.message
        return Want(
            str(message.channel), str(message.purpose), message.body or "", send.store_pace, address
        )
    row = send.row
    return Want(
        str(row["channel"]), str(row["purpose"]), row["body"] or "", send.store_pace, address
    )


def record_skipped(
    session: Session,
    *,
    lookup: OutboxLookup,
    workspace_id: int,
    customer: Customer | None,
    journey_run_id: int,
    step_index: int,
    idempotency_key: str,
    message_type: str,
    purpose: Purpose,
    reason: str,
    now: datetime,
) -> None:
    """A journey message decided against before the policy ran (an agent cancelled it, a
    re-send no longer called for), recorded with why where the customer's open
    conversation shows it. A key recorded already is left as it is."""
    row = {
        **blank_row(workspace_id=workspace_id, now=now),
        "customer_id": customer.id if customer else None,
        "conversation_id": lookup.open_conversation_id(customer) if customer else None,
        "journey_run_id": journey_run_id,
        "step_index": step_index,
        "idempotency_key": idempotency_key,
        "message_type": message_type,
        "purpose": purpose,
        "status_reason": reason,
    }
    insert_message(session, row)


def blank_row(*, workspace_id: int, now: datetime) -> dict[str, Any]:
    """Every column of a message row at its starting value (a skipped journey message)."""
    return {
        "workspace_id": workspace_id,
        "customer_id": None,
        "journey_run_id": None,
        "step_index": None,
        "conversation_id": None,
        "direction": Direction.OUTBOUND,
        "author": Author.JOURNEY,
        "sender": None,
        "store_address": None,
        "attachments": None,
        "reply_to": None,
        "idempotency_key": None,
        "message_type": None,
        "purpose": Purpose.TRANSACTIONAL,
        "channel": None,
        "recipient": None,
        "subject": None,
        "body": None,
        "html": None,
        "template": None,
        "headers": {},
        "status": MessageStatus.SKIPPED,
        "status_reason": None,
        "decision": [],
        "provider": None,
        "provider_message_id": None,
        "attempts": 0,
        "created_at": now,
        "sent_at": None,
        "status_updated_at": now,
    }


def _announce_new(session: Session, row: dict[str, Any], message_id: int | None) -> None:
    """A journey message (sent or skipped) joined an open conversation: show it live."""
    if message_id is not None and row["conversation_id"] is not None:
        emit(
            session,
            workspace_id=row["workspace_id"],
            kind="message",
            conversation_id=row["conversation_id"],
            data={"message_id": message_id, "status": str(row["status"])},
        )


def insert_message(session: Session, row: dict[str, Any]) -> int | None:
    """Insert a message; None if a message with its key exists (a racing worker or a
    provider's retried delivery committed it first)."""
    found: list[int | None] = insert_batch_returning(
        session, _insert_message(session), [row], keys=_MESSAGE_KEY
    )
    return found[0]


_MESSAGE_KEY = ("workspace_id", "idempotency_key")


@per_dialect
def _insert_message(dialect: str) -> Any:
    """Planned messages in one statement (:func:`insert_batch_returning`); a key already
    recorded is skipped."""
    return (
        insert_batch(dialect, MESSAGES)
        .on_conflict_do_nothing(index_elements=list(_MESSAGE_KEY))
        .returning(MESSAGES.c.id, *(MESSAGES.c[key] for key in _MESSAGE_KEY))
    )


def _template_json(rendered: RenderedContent, *, use_template: bool) -> dict[str, Any] | None:
    if not use_template or rendered.template is None:
        return None
    return {
        "name": rendered.template.name,
        "language": rendered.template.language,
        "parameters": list(rendered.template.body_parameters),
    }


def channel_preferences(
    workspace: Workspace, message_type: MessageType
) -> dict[MessageType, tuple[ChannelKind, ...]]:
    """The channel-matching table with the store's own changes on top."""
    custom = (workspace.settings or {}).get("channel_preferences", {}).get(message_type)
    if not custom:
        return DEFAULT_CHANNEL_PREFERENCES
    return {**DEFAULT_CHANNEL_PREFERENCES, message_type: tuple(ChannelKind(c) for c in custom)}


def _links(
    outbox: OutboxSettings, *, workspace: Workspace, customer: Customer, purpose: Purpose
) -> dict[str, str]:
    if purpose is not Purpose.MARKETING:
        return {}
    token = unsubscribe.make_token(
        secret_key=outbox.secret_key,
        workspace_id=workspace.id,
        customer_id=customer.id,
        channel=ChannelKind.EMAIL,
    )
    return {"unsubscribe_url": f"{outbox.public_url}/unsubscribe/{token}"}


def status_callback_url(
    outbox: OutboxSettings, workspace: Workspace, channel: str | None
) -> str | None:
    """Where a provider that asks (Twilio) should post this message's delivery receipts."""
    if channel != ChannelKind.SMS:
        return None
    return f"{outbox.public_url}/webhooks/twilio/{workspace.slug}"


def _resume(
    session: Session,
    message: Message,
    *,
    now: datetime,
    sender_name: str,
    status_callback_url: str | None,
    store_pace: Sender | None,
    account: SendingAccount | None,
    reply_address: str | None,
) -> QueuedSend | None:
    """The send a keyed message still owes: a ``queued`` one is sent (once recorded);
    one left ``sending`` is held for review; any other is decided already."""
    if message.status == MessageStatus.QUEUED:
        return QueuedSend(
            message,
            sender_name=sender_name,
            status_callback_url=status_callback_url,
            store_pace=store_pace,
            account=account,
            reply_address=reply_address,
        )
    if message.status == MessageStatus.SENDING:
        hold_interrupted(session, message, now=now)
    return None


def close_pending(
    session: Session, *, lookup: OutboxLookup, workspace_id: int, idempotency_key: str, reason: str
) -> None:
    """The journey ended before this message went out: settle whatever it left behind.

    A message in flight (``sending``) may have reached the provider, so it is held for
    review; one waiting for a retry (``queued``) is skipped with the reason.
    """
    skip_pending(
        session,
        lookup=lookup,
        workspace_id=workspace_id,
        idempotency_key=idempotency_key,
        reason=f"not sent: the journey ended ({reason})",
    )


def skip_pending(
    session: Session, *, lookup: OutboxLookup, workspace_id: int, idempotency_key: str, reason: str
) -> None:
    """This message will not go after all: one waiting for a retry is skipped with
    ``reason``; one in flight may have reached the provider, so it is held for review."""
    message = lookup.message(workspace_id, idempotency_key)
    if message is None:
        return
    now = utc_now()
    if message.status == MessageStatus.SENDING:
        hold_interrupted(session, message, now=now)
    elif message.status == MessageStatus.QUEUED:
        message.status = MessageStatus.SKIPPED
        message.status_reason = reason
        message.status_updated_at = now
        announce_status(session, message)


def announce_status(session: Session, message: Message) -> None:
    """The message's badge changed: tell the agents' screens at commit."""
    emit_status(
        session,
        workspace_id=message.workspace_id,
        conversation_id=message.conversation_id,
        message_id=message.id,
        status=message.status,
    )


def hold_interrupted(session: Session, message: Message, *, now: datetime) -> None:
    """A message left ``sending`` by a worker that stopped after handing it over: held for
    a person's review, never re-sent blindly; or sent, when a receipt already named it."""
    session.connection().execute(
        _record_attempts(session),
        {
            "workspace_id": message.workspace_id,
            "message_id": message.id,
            "number": message.attempts,
            "channel": message.channel,
            "outcome": AttemptOutcome.INTERRUPTED,
            "error": "worker stopped before the provider's answer was recorded",
            "provider_code": None,
            # The message went to ``sending`` when this attempt started.
            "started_at": message.status_updated_at,
            "finished_at": now,
        },
    )
    if message.provider_message_id is not None:
        # A receipt named it while it was sending (settle_held): the provider has it.
        message.status = MessageStatus.SENT
        message.status_reason = (
            "the send was interrupted after it was handed to the provider, whose receipt"
            " shows it arrived"
        )
        message.sent_at = message.status_updated_at
    else:
        message.status = MessageStatus.HELD
        message.status_reason = (
            "held for review: the send was interrupted after it was handed to the provider, "
            "so it may have been delivered; not re-sent automatically"
        )
    message.status_updated_at = now
    announce_status(session, message)


def message_reference(workspace_id: int, message_id: int) -> str:
    """What parley hands a provider with a message, the same on every attempt: providers
    that deduplicate get it, email carries it in its ``Message-ID``, and the receipts of
    Twilio and WhatsApp bring it back (``StatusUpdate.reference``)."""
    return f"parley-{workspace_id}-{message_id}"


_REFERENCE = re.compile(r"parley-(\d+)-(\d+)")


def referenced_message(reference: str | None, *, workspace_id: int) -> int | None:
    """The id of the store's message a receipt's ``reference`` names, if it names one."""
    found = _REFERENCE.fullmatch(reference or "")
    if found is None or int(found[1]) != workspace_id:
        return None
    return int(found[2])


@dataclass(frozen=True)
class NamedByReceipt:
    """What a receipt naming its message found: the held messages it settled, as (id,
    conversation id, customer id), or a message still ``sending``."""

    settled: list[tuple[int, int | None, int | None]]
    still_sending: bool = False


def settle_held(session: Session, *, workspace_id: int, status: StatusUpdate) -> NamedByReceipt:
    """A receipt that names its message (``reference``) before parley recorded the
    provider's answer. The provider has the message, so, in one statement:

    - one held after an interrupted send is settled by the receipt, with the provider's
      id and as sent when it was handed over, instead of waiting for a person; and so is
      one waiting for a retry after an answer that never came (a timeout: the provider
      took it after all), instead of being sent again (both returned, for the caller to
      announce as it does any receipt's change);
    - one still ``sending`` keeps the provider's id: its worker records the answer as
      usual, and if that worker died, :func:`hold_interrupted` finds the message arrived
      instead of holding it (the receipt itself is applied once the answer is in).

    Only a message of this workspace on the receipt's channel is touched, and only in one
    of those states, so of two receipts at once one settles it and the other is applied
    after, by the provider's id.
    """
    message_id = referenced_message(status.reference, workspace_id=workspace_id)
    if message_id is None:
        return NamedByReceipt([])
    held = Message.status == MessageStatus.HELD
    settled = Message.status.in_((MessageStatus.HELD, MessageStatus.QUEUED))
    before = case(
        (held, "held for review, then"),
        else_="its answer lost, waiting to be sent again, then",
    )
    now = utc_now()
    if status.status == MessageStatus.FAILED:
        said = f"the provider's receipt said it failed ({status.error_code or 'no code'})" + (
            f": {status.error_reason}" if status.error_reason else ""
        )
        sent_at: Any = Message.sent_at
    else:
        said = "settled by the provider's receipt: it reached the provider"
        handed_over = (
            select(DeliveryAttempt.started_at)
            .where(
                DeliveryAttempt.workspace_id == Message.workspace_id,
                DeliveryAttempt.message_id == Message.id,
            )
            .order_by(DeliveryAttempt.number.desc())
            .limit(1)
            .scalar_subquery()
        )
        sent_at = case((settled, func.coalesce(handed_over, now)), else_=Message.sent_at)
    rows = session.execute(
        update(Message)
        .where(
            Message.workspace_id == workspace_id,
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND,
            Message.channel == str(status.channel),
            or_(
                settled,
                and_(
                    Message.status == MessageStatus.SENDING,
                    Message.provider_message_id.is_(None),
                ),
            ),
        )
        .values(
            provider=str(status.channel),
            provider_message_id=status.provider_message_id,
            status=case((settled, status.status), else_=Message.status),
            status_reason=case((settled, before + " " + said), else_=Message.status_reason),
            status_updated_at=case((settled, now), else_=Message.status_updated_at),
            sent_at=sent_at,
        )
        .returning(Message.id, Message.conversation_id, Message.customer_id, Message.status)
        .execution_options(synchronize_session=False)
    ).all()
    return NamedByReceipt(
        settled=[(row[0], row[1], row[2]) for row in rows if row[3] != MessageStatus.SENDING],
        still_sending=any(row[3] == MessageStatus.SENDING for row in rows),
    )


def start_attempt(
    session: Session,
    message: Message,
    *,
    now: datetime,
    sender_name: str,
    status_callback_url: str | None = None,
    is_human_agent: bool = False,
    account: SendingAccount | None = None,
    reply_address: str | None = None,
) -> PreparedSend | None:
    """An attempt for a ``queued`` message: a reply, or a retry after a transient failure.

    ``is_human_agent``: an Instagram reply by a person past the 24-hour window, decided at
    send time by the caller. ``account``: the store's own account it goes from, as the
    store has it now (None: the deployment's); ``reply_address``: an email's
    ``Reply-To``, likewise.

    The message goes ``sending`` only if it is still ``queued`` (one conditional update):
    a receipt naming it may have settled it since it was read (:func:`settle_held`, the
    provider took it after all), and it is then not handed over again: None.
    """
    store_address = account.address if account is not None else None
    attempts = session.scalar(
        update(Message)
        .where(Message.id == message.id, Message.status == MessageStatus.QUEUED)
        .values(
            attempts=Message.attempts + 1,
            status=MessageStatus.SENDING,
            status_updated_at=now,
            store_address=store_address,
        )
        .returning(Message.attempts)
        .execution_options(synchronize_session=False)
    )
    if attempts is None:
        session.expire(message)
        return None
    for name, value in (
        ("attempts", attempts),
        ("status", MessageStatus.SENDING),
        ("status_updated_at", now),
        ("store_address", store_address),
    ):
        set_committed_value(message, name, value)
    announce_status(session, message)
    return PreparedSend(
        message_id=message.id,
        workspace_id=message.workspace_id,
        customer_id=message.customer_id,
        channel=ChannelKind(str(message.channel)),
        attempt_number=message.attempts,
        started_at=now,
        outbound=_outbound(
            {
                "workspace_id": message.workspace_id,
                "recipient": message.recipient,
                "body": message.body,
                "subject": message.subject,
                "html": message.html,
                "template": message.template,
                "headers": message.headers,
                "sender_name": sender_name,
                "status_callback_url": status_callback_url,
                "reply_to": message.reply_to,
                "is_human_agent": is_human_agent,
                "account": account,
                "reply_address": reply_address,
            },
            message_id=message.id,
        ),
    )


def _outbound(row: dict[str, Any], *, message_id: int) -> OutboundMessage:
    template = row["template"]
    return OutboundMessage(
        idempotency_key=message_reference(row["workspace_id"], message_id),
        to=row["recipient"] or "",
        text=row["body"] or "",
        subject=row["subject"],
        html=row["html"],
        template=(
            TemplateRef(
                name=template["name"],
                language=template["language"],
                body_parameters=tuple(template["parameters"]),
            )
            if template
            else None
        ),
        headers=dict(row["headers"] or {}),
        sender_name=row.get("sender_name"),
        status_callback_url=row.get("status_callback_url"),
        in_reply_to=row.get("reply_to"),
        is_human_agent=bool(row.get("is_human_agent")),
        account=row.get("account"),
        reply_address=row.get("reply_address"),
    )


@dataclass(frozen=True)
class _Outcome:
    recorded: Recorded
    attempt: dict[str, Any]
    message: dict[str, Any]


def record_results(
    session: Session,
    answers: list[tuple[PreparedSend, SendResult | BaseException, bool]],
) -> list[Recorded]:
    """Store what the provider said for each ``(send, result, is_last_attempt)``.

    Two statements for the whole batch, whatever its size (on SQLite, two run for each
    row): the attempts go in with their outcomes, then the messages are updated; the
    answer per send tells its job whether to retry.
    """
    now = utc_now()
    answers = _answered_by_receipt(session, answers)
    outcomes = [_outcome(send, result, now, is_last) for send, result, is_last in answers]
    if outcomes:
        write_rows(session, _record_attempt_batch(session), [o.attempt for o in outcomes])
        write_rows(session, _update_messages(session), [o.message for o in outcomes])
        _announce_results(session, outcomes)
    # What a store's own account's sends say of the account: it works, or it is refused.
    store_accounts = [
        (send.workspace_id, account, why)
        for send, result, _ in answers
        if (account := send.outbound.account) is not None
        and not account.is_address_only
        and ((why := _account_refusal(result)) is not None or isinstance(result, SendResult))
    ]
    if store_accounts:
        note_answers(session, store_accounts, now=now)
    refused = [
        (send, result) for send, result, _ in answers if isinstance(result, PermanentChannelError)
    ]
    for send, refusal in refused:
        record_provider_opt_out(
            session,
            workspace_id=send.workspace_id,
            customer_id=send.customer_id,
            channel=str(send.channel),
            code=refusal.provider_code,
        )
    if refused:
        _release_slots_of_refused(session, [send.message_id for send, _ in refused])
    return [outcome.recorded for outcome in outcomes]


@dataclass(frozen=True)
class _ReceiptNamedIt(SendResult):
    """A send whose answer was lost (a timeout, an outage's error) after the provider's
    own receipt had named the message (:func:`settle_held` kept its id): it reached the
    provider."""

    lost_answer: str = ""


def _answered_by_receipt(
    session: Session, answers: list[tuple[PreparedSend, SendResult | BaseException, bool]]
) -> list[tuple[PreparedSend, SendResult | BaseException, bool]]:
    """The answers, with each lost one whose message a receipt already named taken as sent.

    Recorded ``queued`` for a retry, such a message would be handed over again a few
    seconds later, before the deferred receipt is applied: the customer would get it twice.
    A provider's refusal is an answer, and is kept.
    """
    lost = [
        send.message_id
        for send, result, _ in answers
        if not isinstance(result, SendResult | PermanentChannelError)
    ]
    if not lost:
        return answers
    named = {
        message_id: provider_message_id
        for message_id, provider_message_id in session.execute(
            select(Message.id, Message.provider_message_id).where(one_of(session, Message.id, lost))
        )
        if provider_message_id is not None
    }
    return [
        (
            send,
            _ReceiptNamedIt(provider_message_id=named[send.message_id], lost_answer=_reason(result))
            if send.message_id in named
            else result,
            is_last,
        )
        for send, result, is_last in answers
    ]


def _reason(result: SendResult | BaseException) -> str:
    """What a failed attempt's error says, for the store."""
    return result.reason if isinstance(result, TransientChannelError) else repr(result)


def _release_slots_of_refused(session: Session, message_ids: list[int]) -> None:
    """Marketing messages the provider refused for good give back their frequency-cap
    slot: a refusal is an answer that nothing went, so the customer's next marketing
    message is not capped by one that never reached them. A message dead-lettered after
    timeouts and outages keeps its slot: any of those attempts may have reached them."""
    held: dict[int, dict[str, int]] = {}
    for workspace_id, customer_id, key in session.execute(
        select(Message.workspace_id, Message.customer_id, Message.idempotency_key).where(
            one_of(session, Message.id, message_ids), Message.purpose == Purpose.MARKETING
        )
    ):
        if customer_id is not None:
            held.setdefault(workspace_id, {})[key] = customer_id
    for workspace_id, keys in held.items():
        frequency.release_slots(session, workspace_id=workspace_id, keys=keys)


def _account_refusal(result: SendResult | BaseException) -> str | None:
    """Why the provider refused the account itself (not the message), or None."""
    if isinstance(result, AccountChannelError) or (
        isinstance(result, TransientChannelError) and result.refuses_account
    ):
        return result.reason
    return None


def _outcome(
    send: PreparedSend, result: SendResult | BaseException, now: datetime, is_last: bool
) -> _Outcome:
    attempt: dict[str, Any] = {
        "workspace_id": send.workspace_id,
        "message_id": send.message_id,
        "number": send.attempt_number,
        "channel": send.channel,
        "error": None,
        "provider_code": getattr(result, "provider_code", None),
        "started_at": send.started_at,
        "finished_at": now,
    }
    message: dict[str, Any] = {
        "message": send.message_id,
        "status_updated_at": now,
        "provider": None,
        "provider_message_id": None,
        "sent_at": None,
    }
    if isinstance(result, SendResult):
        attempt["outcome"] = AttemptOutcome.SENT
        message.update(
            status=MessageStatus.SENT,
            status_reason=None,
            provider=str(send.channel),
            provider_message_id=result.provider_message_id,
            sent_at=now,
        )
        if isinstance(result, _ReceiptNamedIt):
            attempt["error"] = result.lost_answer
            message.update(
                status_reason=(
                    f"the provider's answer was lost ({result.lost_answer}), but its receipt"
                    " shows it took the message"
                ),
                sent_at=send.started_at,
            )
        return _Outcome(Recorded(Result.SENT, channel=send.channel), attempt, message)
    refuses_account = _account_refusal(result) is not None
    if isinstance(result, PermanentChannelError):
        attempt.update(
            outcome=AttemptOutcome.ACCOUNT_REFUSED
            if refuses_account
            else AttemptOutcome.PERMANENT_ERROR,
            error=result.reason,
        )
        message.update(status=MessageStatus.FAILED, status_reason=result.reason)
        recorded = Recorded(Result.FAILED, reason=result.reason, channel=send.channel)
        return _Outcome(recorded, attempt, message)
    reason = _reason(result)
    attempt.update(
        outcome=AttemptOutcome.ACCOUNT_REFUSED
        if refuses_account
        else AttemptOutcome.TRANSIENT_ERROR,
        error=reason,
    )
    if is_last:
        message.update(
            status=MessageStatus.FAILED,
            status_reason=f"dead letter after {send.attempt_number} attempts: {reason}",
        )
        recorded = Recorded(Result.FAILED, reason=reason, channel=send.channel, is_exhausted=True)
        return _Outcome(recorded, attempt, message)
    message.update(
        status=MessageStatus.QUEUED,
        status_reason=f"retrying after attempt {send.attempt_number}: {reason}",
    )
    retry_after = result.retry_after if isinstance(result, TransientChannelError) else None
    recorded = Recorded(Result.RETRY, reason=reason, retry_after=retry_after, channel=send.channel)
    return _Outcome(recorded, attempt, message)


def _announce_results(session: Session, outcomes: list[_Outcome]) -> None:
    """One read of the batch's conversations, one multi-row insert of their live events."""
    status_of = {o.message["message"]: str(o.message["status"]) for o in outcomes}
    found = session.execute(
        select(Message.id, Message.workspace_id, Message.conversation_id).where(
            one_of(session, Message.id, status_of), Message.conversation_id.is_not(None)
        )
    )
    emit_statuses(
        session,
        [
            (workspace_id, conversation_id, message_id, status_of[message_id])
            for message_id, workspace_id, conversation_id in found
        ],
    )


_ATTEMPT_KEYS = (
    "workspace_id",
    "message_id",
    "number",
    "channel",
    "outcome",
    "error",
    "provider_code",
    "started_at",
    "finished_at",
)


@per_dialect
def _record_attempts(dialect: str) -> Any:
    """An attempt is written once, when its outcome is known: until then the message's
    ``sending`` status and attempt count say it is in flight. A row an earlier version
    wrote at the start (outcome ``started``) is completed in place."""
    return _completing_attempts(insert_on(dialect, ATTEMPTS))


@per_dialect
def _record_attempt_batch(dialect: str) -> Any:
    """:func:`_record_attempts` for a batch (:func:`write_rows`)."""
    return _completing_attempts(insert_batch(dialect, ATTEMPTS, _ATTEMPT_KEYS))


def _completing_attempts(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=["message_id", "number"],
        set_={
            name: statement.excluded[name]
            for name in ("outcome", "error", "provider_code", "finished_at")
        },
    )


@per_dialect
def _update_messages(dialect: str) -> Any:
    """Each message of a batch to its provider's answer (:func:`write_rows`); a provider
    and id already known are kept when the answer has none."""
    columns = MESSAGES.c
    answer = batch_values(
        dialect,
        {
            "message": columns.id,
            "status": columns.status,
            "status_reason": columns.status_reason,
            "status_updated_at": columns.status_updated_at,
            "provider": columns.provider,
            "provider_message_id": columns.provider_message_id,
            "sent_at": columns.sent_at,
        },
    )
    return (
        update(MESSAGES)
        .where(columns.id == answer["message"])
        .values(
            status=answer["status"],
            status_reason=answer["status_reason"],
            status_updated_at=answer["status_updated_at"],
            provider=func.coalesce(answer["provider"], columns.provider),
            provider_message_id=func.coalesce(
                answer["provider_message_id"], columns.provider_message_id
            ),
            sent_at=func.coalesce(answer["sent_at"], columns.sent_at),
        )
    )


def record_provider_opt_out(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int | None,
    channel: str,
    code: str | None,
) -> bool:
    """A provider's refusal that says the recipient opted out (:data:`OPTED_OUT_CODES`),
    recorded as the revocation of their address on that channel: on them, and on the
    profile holding the address if another does (:func:`customers.record_refusal`); True
    when it was one."""
    purposes = OPTED_OUT_CODES.get((channel, code or ""))
    if customer_id is None or purposes is None:
        return False
    customers.record_refusal(
        session,
        workspace_id=workspace_id,
        customer=customers.get_customer(
            session, workspace_id=workspace_id, customer_id=customer_id
        ),
        channel=channel,
        purposes=purposes,
        source=f"provider error {code}",
    )
    return True
