"""Taking in what customers write, and the verbs agents and the assistant act with.

``record_inbound`` runs inside the webhook's transaction: it finds (or creates) the
customer from the channel identity, finds their open conversation (or opens one, pulling in
the journey messages they were sent lately, so a reply to a shipping update sits beside
it), stores the message once per provider id, applies STOP / START / HELP, and schedules
the assistant. ``apply_status`` moves an outbound message's status up the lattice only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parley.accounts.models import Membership
from parley.assistant.intents import Intent
from parley.channels.base import (
    DELETED,
    EDITED,
    ChannelKind,
    InboundMessage,
    MarketingPreference,
    StatusUpdate,
)
from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers import suppression
from parley.customers.identity import normalise_email, whatsapp_phone
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, IdentityKind
from parley.customers.service import Contact
from parley.errors import Conflict, Invalid, NotFound, TryAgain
from parley.inbox.keywords import Keyword, is_revocation, keyword_of
from parley.inbox.models import (
    AssistantTurn,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Owner,
)
from parley.jobs import queue
from parley.live.outbox import emit, emit_status
from parley.messaging import replies
from parley.messaging import service as outbox
from parley.messaging.models import Author, Direction, Message, MessageStatus
from parley.messaging.types import MessageType, Purpose
from parley.workspaces.models import Workspace

log = logging.getLogger(__name__)

RESPOND = "assistant.respond"
RETRY_STATUS = "inbox.apply_status"
# Journey messages sent this recently join the conversation a customer's reply opens.
RECENT_OUTBOUND = timedelta(days=30)
KEYWORD_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP})

# An outbound message's status only ever moves up: read never goes back to delivered.
# ``failed`` ranks above ``sent`` and below ``delivered``: a later delivery receipt proves
# the message arrived after all. ``held`` (an interrupted send) is below everything: any
# receipt settles it.
STATUS_RANK: dict[str, int] = {
    MessageStatus.HELD: 0,
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.FAILED: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
}

CHANNEL_IDENTITY: dict[ChannelKind, IdentityKind] = {
    ChannelKind.SMS: IdentityKind.PHONE,
    ChannelKind.WHATSAPP: IdentityKind.WHATSAPP,
    ChannelKind.EMAIL: IdentityKind.EMAIL,
    ChannelKind.INSTAGRAM: IdentityKind.INSTAGRAM,
    ChannelKind.WEBCHAT: IdentityKind.WEBCHAT,
}


class DuplicateMessage(Exception):
    """A concurrent delivery of the same message won the race: roll back, answer 200."""


@dataclass(frozen=True)
class Received:
    """What became of one inbound message."""

    message_id: int | None
    conversation_id: int | None
    customer_id: int | None
    is_duplicate: bool = False
    keyword: Keyword | None = None
    assistant_scheduled: bool = False


def contact_for(inbound: InboundMessage) -> Contact:
    """The identities an inbound message proves: its channel address, and for WhatsApp
    (whose ids are phone numbers) the phone it belongs to, so it finds the store's
    customer (in Mexico and Brazil an older id is not quite the number: see
    :func:`~parley.customers.identity.whatsapp_phone`)."""
    channel = inbound.channel
    if channel is ChannelKind.EMAIL:
        return Contact(external_id=None, email=normalise_email(inbound.sender), phone=None)
    if channel is ChannelKind.SMS:
        return Contact(external_id=None, email=None, phone=inbound.sender)
    if channel is ChannelKind.WHATSAPP:
        return whatsapp_contact(inbound.sender)
    return Contact(
        external_id=None,
        email=None,
        phone=None,
        channel_ids=((CHANNEL_IDENTITY[channel], inbound.sender),),
    )


def whatsapp_contact(sender: str) -> Contact:
    """A WhatsApp id (``+`` and digits), and the phone it belongs to."""
    return Contact(
        external_id=None,
        email=None,
        phone=whatsapp_phone(sender),
        channel_ids=((IdentityKind.WHATSAPP, sender),),
    )


def record_inbound(session: Session, *, workspace: Workspace, inbound: InboundMessage) -> Received:
    """Store one customer message in its conversation and act on it (see module doc)."""
    key = f"inbound:{inbound.channel}:{inbound.provider_message_id}"
    existing = _message_by_key(session, workspace.id, key)
    if inbound.kind in (DELETED, EDITED):
        return _changed(session, workspace.id, existing, inbound)
    if existing is not None:
        return Received(None, None, None, is_duplicate=True)
    now = utc_now()
    customer_id = customers.resolve_customer_id(
        session,
        workspace_id=workspace.id,
        contact=contact_for(inbound),
        consent_source=f"{inbound.channel} message",
    )
    if customer_id is None:
        raise NotFound(f"cannot identify a customer from {inbound.channel} {inbound.sender!r}")
    customer = _lock_customer(session, workspace.id, customer_id)
    customer_id = customer.id
    if inbound.sender_name and not customer.first_name:
        customer.first_name = inbound.sender_name[:200]
    _touch_identity(session, workspace.id, customer_id, inbound, now)
    conversation = _conversation_for(session, workspace, customer, inbound, now)
    message_id = outbox.insert_message(
        session,
        {
            **outbox.blank_row(workspace_id=workspace.id, now=now),
            "customer_id": customer_id,
            "conversation_id": conversation.id,
            "direction": Direction.INBOUND,
            "author": Author.CUSTOMER,
            "sender": inbound.sender,
            "store_address": inbound.account,
            "idempotency_key": key,
            "message_type": MessageType.INBOUND,
            "channel": inbound.channel,
            "subject": inbound.subject,
            "body": inbound.text,
            "attachments": [vars(a) for a in inbound.attachments] or None,
            "reply_to": inbound.reply_to or inbound.comment_id,
            "headers": {"kind": inbound.kind} if inbound.kind != "text" else {},
            "status": MessageStatus.RECEIVED,
            "provider": str(inbound.channel),
            "provider_message_id": inbound.provider_message_id,
            "created_at": inbound.sent_at or now,
        },
    )
    if message_id is None:
        # A concurrent delivery of this message committed first: undo this one's work.
        raise DuplicateMessage(key)
    message = session.get(Message, message_id)
    assert message is not None
    emit(
        session,
        workspace_id=workspace.id,
        kind="message",
        conversation_id=conversation.id,
        data={"message_id": message.id, "direction": "inbound"},
    )
    keyword = _apply_keywords(session, workspace, customer, conversation, message)
    auto_reply = (workspace.settings or {}).get("instagram_comment_reply")
    if inbound.kind == "comment" and inbound.comment_id and auto_reply:
        replies.queue_comment_reply(
            session,
            workspace=workspace,
            conversation=conversation,
            comment=message,
            text=str(auto_reply),
        )
    scheduled = False
    if (
        keyword is None
        and conversation.owner == Owner.ASSISTANT
        and inbound.kind != "comment"
        and not inbound.is_automated
        and (inbound.text.strip() or inbound.attachments)
    ):
        queue.enqueue(
            session,
            kind=RESPOND,
            payload={"message_id": message.id},
            workspace_id=workspace.id,
            idempotency_key=f"assistant:{message.id}",
        )
        scheduled = True
    return Received(
        message_id=message.id,
        conversation_id=conversation.id,
        customer_id=customer_id,
        keyword=keyword,
        assistant_scheduled=scheduled,
    )


def _changed(
    session: Session, workspace_id: int, message_id: int | None, inbound: InboundMessage
) -> Received:
    """A message its sender took back or edited (Instagram, under the message's own id):
    it keeps its place in the conversation with its words gone, or as they now read, and
    the screens showing it are told. Nothing is recorded for a change to a message parley
    never received (or the store's own), nor for one already applied."""
    message = session.get(Message, message_id) if message_id is not None else None
    if message is None or message.workspace_id != workspace_id:
        return Received(None, None, None, is_duplicate=True)
    headers = message.headers or {}
    if message.sender != inbound.sender or headers.get("kind") == DELETED:
        return Received(None, None, None, is_duplicate=True)
    if inbound.kind == DELETED:
        message.body = ""
        message.attachments = None
        message.headers = {"kind": DELETED}
    elif message.body == inbound.text:
        return Received(None, None, None, is_duplicate=True)
    else:
        message.body = inbound.text
        message.headers = {**headers, "edited": True}
    emit(
        session,
        workspace_id=workspace_id,
        kind="message",
        conversation_id=message.conversation_id,
        data={"message_id": message.id, "change": inbound.kind},
    )
    return Received(message.id, message.conversation_id, message.customer_id)


def _message_by_key(session: Session, workspace_id: int, key: str) -> int | None:
    return session.scalar(
        select(Message.id).where(
            Message.workspace_id == workspace_id, Message.idempotency_key == key
        )
    )


def _lock_customer(session: Session, workspace_id: int, customer_id: int) -> Customer:
    """Serialise a customer's messages: two arriving at once must find one conversation.

    On PostgreSQL this takes the customer's row lock; SQLite has one writer anyway. A
    profile gone by the time the lock is granted was erased meanwhile (the erasure locks
    it first): nothing is kept, and the provider's retry finds the customer anew. One
    merged away meanwhile (the merge locks it too) is now the profile it went into, with
    its identities: the message goes there, as it would have a moment later.
    """
    while True:
        customer = session.scalar(
            select(Customer)
            .where(Customer.workspace_id == workspace_id, Customer.id == customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if customer is None:
            raise TryAgain("the customer was erased while this message was being stored")
        if customer.merged_into_id is None:
            return customer
        customer_id = customer.merged_into_id


def _touch_identity(
    session: Session, workspace_id: int, customer_id: int, inbound: InboundMessage, now: datetime
) -> None:
    """Stamp the identity the customer wrote from: the address they last wrote from, and
    whether they wrote lately enough for a channel's window to be open with any number
    (which number, their messages tell: :mod:`parley.messaging.windows`)."""
    kind = CHANNEL_IDENTITY[inbound.channel]
    value = normalise_email(inbound.sender) if kind is IdentityKind.EMAIL else inbound.sender
    session.execute(
        update(CustomerIdentity)
        .where(
            CustomerIdentity.workspace_id == workspace_id,
            CustomerIdentity.customer_id == customer_id,
            CustomerIdentity.kind == kind,
            CustomerIdentity.value == value,
        )
        .values(last_inbound_at=now)
    )


def find_open_conversation(
    session: Session, *, workspace_id: int, customer_id: int
) -> Conversation | None:
    """The customer's one unresolved conversation, if they have one."""
    return session.scalar(
        select(Conversation)
        .where(
            Conversation.workspace_id == workspace_id,
            Conversation.customer_id == customer_id,
            Conversation.status != ConversationStatus.RESOLVED,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )


def _conversation_for(
    session: Session,
    workspace: Workspace,
    customer: Customer,
    inbound: InboundMessage,
    now: datetime,
) -> Conversation:
    conversation = find_open_conversation(
        session, workspace_id=workspace.id, customer_id=customer.id
    ) or _threaded_conversation(session, workspace, customer, inbound, now)
    if conversation is None:
        conversation = _open(session, workspace, customer, inbound, now)
    elif conversation.status in (ConversationStatus.SNOOZED, ConversationStatus.PENDING):
        _record_event(
            session,
            conversation,
            EventKind.STATUS_CHANGED,
            actor="customer",
            detail={"from": conversation.status, "to": ConversationStatus.OPEN},
            now=now,
        )
        conversation.status = ConversationStatus.OPEN
        conversation.snoozed_until = None
    conversation.channel = inbound.channel
    conversation.last_inbound_at = now
    conversation.last_message_at = max(conversation.last_message_at, now)
    conversation.waiting_since = conversation.waiting_since or now
    conversation.updated_at = now
    return conversation


def _threaded_conversation(
    session: Session,
    workspace: Workspace,
    customer: Customer,
    inbound: InboundMessage,
    now: datetime,
) -> Conversation | None:
    """An email reply to a message of a resolved conversation reopens that conversation."""
    referenced = [ref for ref in (inbound.reply_to, *inbound.references) if ref]
    if not referenced:
        return None
    conversation_id = session.scalar(
        select(Message.conversation_id)
        .where(
            Message.workspace_id == workspace.id,
            Message.customer_id == customer.id,
            Message.provider_message_id.in_(referenced),
            Message.conversation_id.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if conversation_id is None:
        return None
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.merged_into_id is not None:
        return None
    _record_event(
        session,
        conversation,
        EventKind.STATUS_CHANGED,
        actor="customer",
        detail={"from": conversation.status, "to": ConversationStatus.OPEN, "why": "reply"},
        now=now,
    )
    conversation.status = ConversationStatus.OPEN
    conversation.resolved_at = None
    return conversation


def _open(
    session: Session,
    workspace: Workspace,
    customer: Customer,
    inbound: InboundMessage,
    now: datetime,
) -> Conversation:
    conversation = Conversation(
        workspace_id=workspace.id,
        customer_id=customer.id,
        status=ConversationStatus.OPEN,
        owner=Owner.ASSISTANT,
        channel=inbound.channel,
        low_confidence_count=0,
        has_assistant_replied=False,
        last_message_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    session.flush()
    _record_event(
        session,
        conversation,
        EventKind.OPENED,
        actor="customer",
        detail={"channel": inbound.channel},
        now=now,
    )
    session.execute(
        update(Message)
        .where(
            Message.workspace_id == workspace.id,
            Message.customer_id == customer.id,
            Message.conversation_id.is_(None),
            Message.direction == Direction.OUTBOUND,
            Message.created_at >= now - RECENT_OUTBOUND,
        )
        .values(conversation_id=conversation.id)
    )
    return conversation


def _record_event(
    session: Session,
    conversation: Conversation,
    kind: EventKind,
    *,
    actor: str,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    session.add(
        ConversationEvent(
            workspace_id=conversation.workspace_id,
            conversation_id=conversation.id,
            kind=kind,
            actor=actor,
            detail=detail,
            created_at=now,
        )
    )


def _apply_keywords(
    session: Session,
    workspace: Workspace,
    customer: Customer,
    conversation: Conversation,
    message: Message,
) -> Keyword | None:
    """STOP / START / HELP (and plain-language revocations) on SMS and WhatsApp.

    The ledger is written before anything else can be sent, in this same transaction, so
    no later send can miss it; exactly one confirmation goes out per change of state.
    """
    channel = ChannelKind(str(message.channel))
    if channel not in KEYWORD_CHANNELS:
        return None
    text = message.body or ""
    consent = customers.current_consent(session, workspace_id=workspace.id, customer_id=customer.id)
    # Only a refusal of order updates stops the channel (a STOP, or the carrier's word of
    # one): a plain "yes" from someone who merely declined marketing answers something else.
    updates = consent.get((channel, Purpose.TRANSACTIONAL))
    keyword = keyword_of(text, is_opted_out=updates is not None and not updates.is_granted)
    if keyword is None and is_revocation(text):
        keyword = Keyword.STOP
    if keyword is None:
        return None
    if keyword is Keyword.HELP:
        answer = replies.help_text(workspace, channel)
    else:
        is_stop = keyword is Keyword.STOP
        source = f"{channel} reply {text.strip()[:80]!r}"
        if not _set_consent(
            session, workspace, customer, channel, granted=not is_stop, source=source
        ):
            return keyword
        _record_event(
            session,
            conversation,
            EventKind.OPTED_OUT if is_stop else EventKind.OPTED_IN,
            actor="customer",
            detail={"channel": channel, "text": text[:200]},
            now=utc_now(),
        )
        confirm = replies.stop_confirmation if is_stop else replies.start_confirmation
        answer = confirm(workspace, channel)
    replies.queue_system_reply(
        session, workspace=workspace, conversation=conversation, to_message=message, text=answer
    )
    return keyword


def _set_consent(
    session: Session,
    workspace: Workspace,
    customer: Customer,
    channel: ChannelKind,
    *,
    granted: bool,
    source: str,
) -> bool:
    """Revoke (STOP) every purpose on the channel, or restore (START) it.

    START restores conversational messages, and marketing only where the revocation START
    undoes is what refused it (:func:`_stop_refused_marketing`): a keyword is not express
    consent. What it restores lifts the same refusals kept through an erasure, so they do
    not come back with the number (:mod:`parley.customers.suppression`).
    """
    changed = False
    restored: list[str] = []
    history = customers.consent_history(
        session, workspace_id=workspace.id, customer_id=customer.id, channel=channel
    )
    for purpose in Purpose:
        records = [r for r in history if r.purpose == purpose]
        current = records[-1] if records else None
        if not granted:
            if current is not None and not current.is_granted:
                continue
        elif purpose is Purpose.TRANSACTIONAL:
            if current is not None and current.is_granted:
                continue
        elif not _stop_refused_marketing(history):
            continue
        customers.record_consent(
            session,
            workspace_id=workspace.id,
            customer_id=customer.id,
            channel=channel,
            purpose=purpose,
            is_granted=granted,
            source=source,
        )
        changed = True
        if granted:
            restored.append(purpose)
    if restored:
        suppression.lift(
            session,
            workspace_id=workspace.id,
            customer_id=customer.id,
            channel=channel,
            purposes=restored,
        )
    return changed


def _stop_refused_marketing(history: list[ConsentRecord]) -> bool:
    """Whether the channel's standing refusal of order updates (the STOP a START undoes)
    also refused marketing the customer had granted until then.

    A STOP writes its refusal of order updates, then of marketing unless marketing was
    refused already: so the marketing refusal is the STOP's only if it is the one record
    after it. A "no" to marketing given before the STOP (at the store, in WhatsApp's menu)
    stands through START.
    """
    stops = [i for i, r in enumerate(history) if r.purpose == Purpose.TRANSACTIONAL]
    if not stops or history[stops[-1]].is_granted:
        return False
    before = [r for r in history[: stops[-1]] if r.purpose == Purpose.MARKETING]
    after = history[stops[-1] + 1 :]
    return (
        bool(before)
        and before[-1].is_granted
        and len(after) == 1
        and after[0].purpose == Purpose.MARKETING
        and not after[0].is_granted
    )


def apply_marketing_preference(
    session: Session, *, workspace: Workspace, preference: MarketingPreference
) -> bool:
    """A customer's stop or resume of marketing, chosen in the messaging app's own menu,
    on their consent ledger before anything else can be sent; whether it changed it.

    A stop is a refusal like STOP, for marketing only: order updates still go. A resume
    (or a sign-up) is the customer's own request for the store's marketing there, so it
    also lifts a marketing refusal kept through an erasure. An unknown number gets a
    profile, so a stop holds when the store later imports them.
    """
    channel = preference.channel
    customer_id = customers.resolve_customer_id(
        session,
        workspace_id=workspace.id,
        contact=whatsapp_contact(preference.sender),
        consent_source=f"{channel} marketing preference",
    )
    if customer_id is None:
        return False
    record = customers.record_consent(
        session,
        workspace_id=workspace.id,
        customer_id=customer_id,
        channel=channel,
        purpose=Purpose.MARKETING,
        is_granted=preference.wants_marketing,
        source=f"{channel}: {preference.detail[:160]}",
        only_if_changed=True,
    )
    if record is not None and preference.wants_marketing:
        suppression.lift(
            session,
            workspace_id=workspace.id,
            customer_id=customer_id,
            channel=channel,
            purposes=[Purpose.MARKETING],
        )
    return record is not None


def apply_status(session: Session, *, workspace_id: int, status: StatusUpdate) -> bool:
    """Move a message we sent to a later status; True when the message is known.

    One conditional UPDATE: the row changes only if its current status ranks lower, so
    receipts applied in any order, any number of times, end at the highest one. A message
    whose send is still being recorded (``sending``) is left to its worker: the receipt
    counts as not found yet, and is applied again later. A receipt that names its message
    (``reference``) and matches no provider id may be the first word on a message held
    after an interrupted send: it settles it (:func:`parley.messaging.service.settle_held`).
    """
    rank = STATUS_RANK.get(status.status)
    if rank is None:
        return True
    lower = [
        name
        for name, value in STATUS_RANK.items()
        if value < rank and name != MessageStatus.SENDING
    ]
    values: dict[str, Any] = {"status": status.status, "status_updated_at": utc_now()}
    if status.status == MessageStatus.FAILED:
        values["status_reason"] = _failure_reason(status)
    elif status.status in (MessageStatus.DELIVERED, MessageStatus.READ):
        values["status_reason"] = None
    condition = (
        Message.workspace_id == workspace_id,
        Message.provider == str(status.channel),
        Message.provider_message_id == status.provider_message_id,
        Message.direction == Direction.OUTBOUND,
    )
    statement = (
        update(Message)
        .where(*condition, Message.status.in_(lower))
        .values(**values)
        .returning(Message.id, Message.conversation_id, Message.customer_id)
    )
    changed: list[Any] = list(session.execute(statement).all())
    if not changed and status.reference:
        named = outbox.settle_held(session, workspace_id=workspace_id, status=status)
        if named.still_sending:
            return False
        # Or settled a moment ago by another receipt, which gave it its provider id.
        changed = named.settled or list(session.execute(statement).all())
    for message_id, conversation_id, customer_id in changed:
        emit_status(
            session,
            workspace_id=workspace_id,
            conversation_id=conversation_id,
            message_id=message_id,
            status=status.status,
        )
        if status.status == MessageStatus.FAILED:
            outbox.record_provider_opt_out(
                session,
                workspace_id=workspace_id,
                customer_id=customer_id,
                channel=str(status.channel),
                code=status.error_code,
            )
    if changed:
        return True
    known = select(Message.id).where(*condition, Message.status != MessageStatus.SENDING)
    return session.scalar(known) is not None or _erased(session, workspace_id, status)


def _erased(session: Session, workspace_id: int, status: StatusUpdate) -> bool:
    """The receipt names a message that is gone: erased with its customer
    (:mod:`parley.privacy`; nothing else deletes messages, and a message's reference is
    handed to the provider only once its row is committed). There is nothing to apply,
    and nothing to wait for."""
    message_id = outbox.referenced_message(status.reference, workspace_id=workspace_id)
    if message_id is None:
        return False
    found = select(Message.id).where(Message.workspace_id == workspace_id, Message.id == message_id)
    return session.scalar(found) is None


def _failure_reason(status: StatusUpdate) -> str:
    reason = f"the provider reported the message failed ({status.error_code or 'no code'})"
    if status.error_reason:
        reason += f": {status.error_reason}"
    return reason


def hand_off(
    session: Session, *, workspace_id: int, conversation_id: int, reason: str, actor: str
) -> Conversation:
    """A human takes over: the assistant stays silent until it is handed back."""
    conversation = get_conversation(
        session, workspace_id=workspace_id, conversation_id=conversation_id
    )
    if conversation.owner == Owner.HUMAN:
        return conversation
    now = utc_now()
    conversation.owner = Owner.HUMAN
    conversation.handoff_reason = reason
    conversation.updated_at = now
    _record_event(
        session, conversation, EventKind.HANDED_OFF, actor=actor, detail={"reason": reason}, now=now
    )
    _announce(session, conversation, {"change": "handed_off"})
    return conversation


def hand_back(
    session: Session, *, workspace_id: int, conversation_id: int, actor: str
) -> Conversation:
    """An agent returns the conversation to the assistant."""
    conversation = get_conversation(
        session, workspace_id=workspace_id, conversation_id=conversation_id
    )
    if conversation.owner == Owner.ASSISTANT:
        raise Conflict("the assistant already answers this conversation")
    now = utc_now()
    conversation.owner = Owner.ASSISTANT
    conversation.handoff_reason = None
    conversation.low_confidence_count = 0
    conversation.updated_at = now
    _record_event(session, conversation, EventKind.HANDED_BACK, actor=actor, detail={}, now=now)
    _announce(session, conversation, {"change": "handed_back"})
    return conversation


def assign(
    session: Session,
    *,
    workspace_id: int,
    conversation_id: int,
    assignee_id: int | None,
    actor: str,
) -> Conversation:
    """Give the conversation to a teammate (None: unassigned); recorded on the timeline.

    Only a member of this workspace can be given it: another store's user id is refused.
    """
    conversation = get_conversation(
        session, workspace_id=workspace_id, conversation_id=conversation_id
    )
    if assignee_id is not None and not session.scalar(
        select(Membership.id).where(
            Membership.workspace_id == workspace_id, Membership.user_id == assignee_id
        )
    ):
        raise Invalid("only a member of this workspace can be assigned a conversation")
    if conversation.assignee_id == assignee_id:
        return conversation
    now = utc_now()
    _record_event(
        session,
        conversation,
        EventKind.ASSIGNED,
        actor=actor,
        detail={"from": conversation.assignee_id, "to": assignee_id},
        now=now,
    )
    conversation.assignee_id = assignee_id
    conversation.updated_at = now
    _announce(session, conversation, {"change": "assigned", "assignee_id": assignee_id})
    return conversation


def set_status(
    session: Session,
    *,
    workspace_id: int,
    conversation_id: int,
    status: ConversationStatus,
    actor: str,
    snoozed_until: datetime | None = None,
) -> Conversation:
    """Open, pend, snooze (until a time) or resolve a conversation."""
    conversation = get_conversation(
        session, workspace_id=workspace_id, conversation_id=conversation_id
    )
    now = utc_now()
    if status is ConversationStatus.SNOOZED and (snoozed_until is None or snoozed_until <= now):
        raise Conflict("a snooze needs a time in the future")
    if (
        status is not ConversationStatus.RESOLVED
        and conversation.status == ConversationStatus.RESOLVED
    ):
        other = find_open_conversation(
            session, workspace_id=workspace_id, customer_id=conversation.customer_id
        )
        if other is not None and other.id != conversation.id:
            raise Conflict(f"the customer has another open conversation ({other.id})")
    _record_event(
        session,
        conversation,
        EventKind.STATUS_CHANGED,
        actor=actor,
        detail={"from": conversation.status, "to": status},
        now=now,
    )
    conversation.status = status
    conversation.snoozed_until = snoozed_until if status is ConversationStatus.SNOOZED else None
    conversation.resolved_at = now if status is ConversationStatus.RESOLVED else None
    if status is ConversationStatus.RESOLVED:
        conversation.waiting_since = None
    conversation.updated_at = now
    _announce(session, conversation, {"change": "status", "status": str(status)})
    return conversation


def _announce(session: Session, conversation: Conversation, data: dict[str, Any]) -> None:
    """Tell the agents' screens, at commit, that this conversation changed (``data`` says how)."""
    emit(
        session,
        workspace_id=conversation.workspace_id,
        kind="conversation",
        conversation_id=conversation.id,
        data=data,
    )


def send_reply(
    session: Session,
    *,
    workspace_id: int,
    conversation_id: int,
    user_id: int,
    agent_name: str,
    channel: ChannelKind,
    text: str,
    template_name: str | None,
    draft_key: str,
) -> Message:
    """An agent's reply from the composer (see :func:`replies.queue_agent_reply`).

    Replying takes the conversation over from the assistant: a person now speaks for the
    store, and the assistant answering alongside would contradict them. A conversation
    nobody has is assigned to whoever replied, so teammates see it is being handled.
    ``draft_key`` names the draft: the same draft sent twice (a double click, a resent
    form) is one message.
    """
    conversation = get_conversation(
        session, workspace_id=workspace_id, conversation_id=conversation_id
    )
    workspace = session.get_one(Workspace, workspace_id)
    message = replies.queue_agent_reply(
        session,
        workspace=workspace,
        conversation=conversation,
        agent_name=agent_name,
        channel=channel,
        text=text,
        template_name=template_name,
        idempotency_key=f"agent-reply:{conversation.id}:{user_id}:{draft_key[:64]}",
    )
    if conversation.owner == Owner.ASSISTANT:
        hand_off(
            session,
            workspace_id=workspace_id,
            conversation_id=conversation_id,
            reason=f"{agent_name} replied",
            actor=agent_name,
        )
    if conversation.assignee_id is None:
        assign(
            session,
            workspace_id=workspace_id,
            conversation_id=conversation_id,
            assignee_id=user_id,
            actor=agent_name,
        )
    emit(
        session,
        workspace_id=workspace_id,
        kind="message",
        conversation_id=conversation_id,
        data={"message_id": message.id},
    )
    return message


def get_conversation(session: Session, *, workspace_id: int, conversation_id: int) -> Conversation:
    """A conversation of this workspace; NotFound for any other id."""
    conversation = session.scalar(
        select(Conversation).where(
            Conversation.workspace_id == workspace_id, Conversation.id == conversation_id
        )
    )
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


def timeline(session: Session, *, workspace_id: int, conversation_id: int) -> list[Message]:
    """The conversation's messages, every channel and direction, oldest first."""
    get_conversation(session, workspace_id=workspace_id, conversation_id=conversation_id)
    return list(
        session.scalars(
            select(Message)
            .where(Message.workspace_id == workspace_id, Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        )
    )


def status_payload(status: StatusUpdate) -> dict[str, Any]:
    """A receipt as a job payload, to apply again once its message is recorded."""
    return {
        "channel": str(status.channel),
        "provider_message_id": status.provider_message_id,
        "status": status.status,
        "error_code": status.error_code,
        "error_reason": status.error_reason,
        "reference": status.reference,
    }


def status_from_payload(payload: dict[str, Any]) -> StatusUpdate:
    return StatusUpdate(
        channel=ChannelKind(payload["channel"]),
        provider_message_id=payload["provider_message_id"],
        status=payload["status"],
        error_code=payload.get("error_code"),
        error_reason=payload.get("error_reason"),
        reference=payload.get("reference"),
    )


def identify_visitor(
    session: Session, *, workspace_id: int, visitor_id: str, email: str
) -> int | None:
    """A web-chat visitor gave their email: one profile holds both from now on.

    The visitor's profile and the email's (if the store knows it) are merged by the usual
    rules, so the chat joins the customer's orders and their other conversations; a
    malformed address changes nothing and returns None.
    """
    address = normalise_email(email)
    if address is None:
        return None
    return customers.resolve_customer_id(
        session,
        workspace_id=workspace_id,
        contact=Contact(
            external_id=None,
            email=address,
            phone=None,
            channel_ids=((IdentityKind.WEBCHAT, visitor_id),),
        ),
        consent_source="web chat",
    )


def label_turn(session: Session, *, workspace_id: int, turn_id: int, intent: str) -> AssistantTurn:
    """An agent corrects what the assistant understood; ``assistant train`` learns from it."""
    turn = session.scalar(
        select(AssistantTurn).where(
            AssistantTurn.workspace_id == workspace_id, AssistantTurn.id == turn_id
        )
    )
    if turn is None:
        raise NotFound(f"assistant turn {turn_id} not found")
    if intent not in set(Intent):
        raise Invalid(f"unknown intent {intent!r}")
    turn.label = intent
    return turn


def labelled_messages(session: Session, *, workspace_id: int) -> list[tuple[str, str]]:
    """(customer message, intent an agent gave it), oldest first: a store's training data."""
    found = session.execute(
        select(Message.body, AssistantTurn.label)
        .join(Message, Message.id == AssistantTurn.message_id)
        .where(
            AssistantTurn.workspace_id == workspace_id,
            AssistantTurn.label.is_not(None),
            Message.body.is_not(None),
        )
        .order_by(AssistantTurn.id)
    )
    return [(str(body), str(label)) for body, label in found if str(body).strip()]
