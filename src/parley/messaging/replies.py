"""Replies inside a conversation: the assistant's, an agent's, and parley's keyword answers.

A reply to a customer's message goes back on that message's channel, to the address it
came from; an agent's reply goes on the channel they pick, to the address the customer
last wrote from there (on web chat, only while one visitor writes in the conversation).
Each is within its channel's rules, checked when it is queued and again when it is sent:

- a customer who revoked consent on the channel (STOP) gets nothing more there, except
  the one confirmation of that STOP;
- WhatsApp allows free text only within 24 hours of the customer's last message to the
  number the reply goes from (:mod:`parley.messaging.windows`);
- Instagram allows 24 hours, and up to 7 days for a reply a person wrote (the
  ``HUMAN_AGENT`` tag), never for the assistant's.

A refused reply is recorded ``skipped`` with the reason, never silently dropped. An
accepted one is ``queued`` with a ``messaging.deliver`` job in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.channels.registry import ADAPTERS
from parley.clock import utc_now
from parley.commerce.models import Fulfillment, Order
from parley.customers import service as customers
from parley.customers.models import Customer, CustomerIdentity
from parley.errors import Conflict, Invalid
from parley.inbox.models import Conversation
from parley.jobs import queue
from parley.messaging import service as outbox
from parley.messaging.context import template_context
from parley.messaging.default_templates import default_template
from parley.messaging.models import Author, Direction, Message, MessageStatus, MessageTemplate
from parley.messaging.policy import Reach, consent_allows, template_refusal
from parley.messaging.senders import StoreSenders, sending_accounts
from parley.messaging.templates import TemplateContent, TemplateError, TemplateRenderer
from parley.messaging.types import MessageType, Purpose
from parley.messaging.whatsapp_templates import registry_for
from parley.messaging.windows import SendingLine, last_written, recent_writing
from parley.workspaces.models import Workspace

DELIVER = "messaging.deliver"
SESSION_WINDOWS: dict[ChannelKind, timedelta] = {
    ChannelKind.WHATSAPP: timedelta(hours=24),
    ChannelKind.INSTAGRAM: timedelta(hours=24),
}
INSTAGRAM_HUMAN_AGENT_WINDOW = timedelta(days=7)
INSTAGRAM_COMMENT_REPLY_WINDOW = timedelta(days=7)
COMMENT_ADDRESS = "comment:"


def queue_reply(
    session: Session,
    *,
    workspace: Workspace,
    conversation: Conversation,
    text: str,
    author: Author,
    idempotency_key: str,
    to_message: Message | None = None,
    message_type: MessageType = MessageType.REPLY,
    channel: ChannelKind | None = None,
    sender: str | None = None,
    template: dict[str, Any] | None = None,
) -> Message:
    """Queue a reply, or record why it may not go.

    A reply ``to_message`` goes back on that message's channel, to its sender: the
    conversation's channel is only the one the customer wrote on last, perhaps since
    (an email answered as a text to the email address). Without one, the reply goes on
    ``channel`` (an agent's choice), else the conversation's, to the address the customer
    last wrote from there. ``template`` (``{"name", "language", "parameters"}``) sends an
    approved WhatsApp template, the one thing WhatsApp allows outside its 24-hour window.
    """
    now = utc_now()
    if to_message is not None:
        channel = ChannelKind(str(to_message.channel))
        source: Message | None = to_message
    else:
        channel = channel or ChannelKind(str(conversation.channel))
        source = _last_inbound(session, conversation, channel)
    recipient = (
        source.sender if source is not None else _identity_address(session, conversation, channel)
    )
    row = {
        **outbox.blank_row(workspace_id=workspace.id, now=now),
        "customer_id": conversation.customer_id,
        "conversation_id": conversation.id,
        "author": author,
        "idempotency_key": idempotency_key,
        "message_type": message_type,
        "purpose": Purpose.TRANSACTIONAL,
        "channel": channel,
        "recipient": recipient,
        "sender": sender,
        "body": text,
        "template": template,
        "reply_to": source.provider_message_id if source is not None else None,
        # The address the customer wrote to: the reply goes from it where the store can
        # send from it (DeliverMessage), and keeps the address it did go from.
        "store_address": source.store_address if source is not None else None,
    }
    if channel is ChannelKind.EMAIL:
        row["subject"] = _reply_subject(source.subject if source else None, workspace.name)
        row["headers"] = _threading_headers(source) if source is not None else {}
    refusal = reply_refusal(
        session,
        workspace=workspace,
        conversation=conversation,
        channel=channel,
        recipient=recipient,
        author=author,
        now=now,
        line=reply_line(
            session,
            workspace_id=workspace.id,
            channel=channel,
            written_to=row["store_address"],
        ),
        is_template=template is not None,
    )
    if refusal is None and to_message is None:
        refusal = _unclear_visitor(session, conversation, channel)
    if refusal is None:
        row["status"] = MessageStatus.QUEUED
    else:
        row["status_reason"] = refusal
    message_id = outbox.insert_message(session, row)
    if message_id is None:
        existing = session.scalar(
            select(Message).where(
                Message.workspace_id == workspace.id, Message.idempotency_key == idempotency_key
            )
        )
        assert existing is not None
        return existing
    if refusal is None:
        queue.enqueue(
            session,
            kind=DELIVER,
            payload={"message_id": message_id},
            workspace_id=workspace.id,
            idempotency_key=delivery_key(message_id),
        )
        if author is not Author.SYSTEM:
            conversation.waiting_since = None
        conversation.last_message_at = now
        conversation.updated_at = now
    message = session.get(Message, message_id)
    assert message is not None
    return message


def queue_system_reply(
    session: Session,
    *,
    workspace: Workspace,
    conversation: Conversation,
    to_message: Message,
    text: str,
) -> Message:
    """parley's own answer to a keyword: it goes even to a customer who just opted out."""
    return queue_reply(
        session,
        workspace=workspace,
        conversation=conversation,
        text=text,
        author=Author.SYSTEM,
        idempotency_key=f"keyword:{to_message.id}",
        to_message=to_message,
        message_type=MessageType.KEYWORD_REPLY,
    )


def queue_comment_reply(
    session: Session,
    *,
    workspace: Workspace,
    conversation: Conversation,
    comment: Message,
    text: str,
) -> Message:
    """The store's automatic private reply to an Instagram comment.

    Meta allows one private reply per comment, within 7 days of it: the comment id is the
    reply's key (a second one is the first one), and an older comment is recorded as
    skipped. It is the store's automatic message, so it never carries ``HUMAN_AGENT``.
    """
    now = utc_now()
    comment_id = comment.reply_to
    row = {
        **outbox.blank_row(workspace_id=workspace.id, now=now),
        "customer_id": conversation.customer_id,
        "conversation_id": conversation.id,
        "author": Author.SYSTEM,
        "idempotency_key": f"comment-reply:{comment_id}",
        "message_type": MessageType.COMMENT_REPLY,
        "channel": ChannelKind.INSTAGRAM,
        "recipient": f"{COMMENT_ADDRESS}{comment_id}",
        "body": text,
        "reply_to": comment_id,
        "status": MessageStatus.QUEUED,
    }
    if now - comment.created_at > INSTAGRAM_COMMENT_REPLY_WINDOW:
        row["status"] = MessageStatus.SKIPPED
        row["status_reason"] = "the comment is more than 7 days old: no private reply allowed"
    message_id = outbox.insert_message(session, row)
    if message_id is not None and row["status"] == MessageStatus.QUEUED:
        queue.enqueue(
            session,
            kind=DELIVER,
            payload={"message_id": message_id},
            workspace_id=workspace.id,
            idempotency_key=delivery_key(message_id),
        )
    message = session.scalar(
        select(Message).where(
            Message.workspace_id == workspace.id,
            Message.idempotency_key == row["idempotency_key"],
        )
    )
    assert message is not None
    return message


def delivery_key(message_id: int) -> str:
    """The key of the ``messaging.deliver`` job that sends a queued reply."""
    return f"deliver:{message_id}"


def reply_refusal(
    session: Session,
    *,
    workspace: Workspace,
    conversation: Conversation,
    channel: ChannelKind,
    recipient: str | None,
    author: Author,
    now: datetime,
    line: SendingLine,
    is_template: bool = False,
) -> str | None:
    """Why this reply may not go out now, or None when it may.

    ``line`` is the number it goes from (:func:`reply_line`): its window is the one that
    counts. ``is_template``: an approved WhatsApp template, which may go outside it.
    """
    if not workspace.is_active:
        return "the store has uninstalled parley"
    if not recipient:
        return f"no {channel} address to reply to: the customer has not written on {channel}"
    if author is not Author.SYSTEM:
        consent = customers.consent_at_address(
            session,
            workspace_id=workspace.id,
            customer_id=conversation.customer_id,
            channel=channel,
            address=recipient,
        ).get((channel, Purpose.TRANSACTIONAL))
        if consent is not None and not consent.is_granted:
            return f"opted out of {channel} ({consent.source})"
    window = SESSION_WINDOWS.get(channel)
    if window is None or recipient.startswith(COMMENT_ADDRESS):
        # A private reply answers a comment, not a conversation: its 7 days were checked
        # when it was queued.
        return None
    if is_template and channel is ChannelKind.WHATSAPP:
        return None
    last = _window_opened(session, conversation, channel, recipient, line, now)
    if last is not None and now - last < window:
        return None
    if channel is ChannelKind.INSTAGRAM:
        if last is None:
            return (
                "outside Instagram's messaging window: the customer has not written a direct "
                "message in the last 7 days (a comment on a post opens no window)"
            )
        if author is Author.AGENT and now - last < INSTAGRAM_HUMAN_AGENT_WINDOW:
            return None
        return "outside Instagram's messaging window: the customer last wrote more than " + (
            "7 days ago"
            if author is Author.AGENT
            else "24 hours ago (a person may reply up to 7 days)"
        )
    return (
        "outside WhatsApp's 24-hour window: only an approved template may be sent until the "
        "customer writes again"
    )


def is_human_agent_reply(
    session: Session,
    *,
    conversation: Conversation,
    channel: ChannelKind,
    recipient: str | None,
    author: Author,
    now: datetime,
    line: SendingLine,
) -> bool:
    """Whether a reply goes with Instagram's ``HUMAN_AGENT`` tag: a person's reply past the
    24-hour window (up to 7 days, which :func:`reply_refusal` enforces). Inside the window
    a reply is a standard response, and a private reply to a comment is never tagged."""
    if channel is not ChannelKind.INSTAGRAM or author is not Author.AGENT:
        return False
    if not recipient or recipient.startswith(COMMENT_ADDRESS):
        return False
    last = _window_opened(session, conversation, channel, recipient, line, now)
    return last is not None and now - last >= SESSION_WINDOWS[channel]


def reply_line(
    session: Session,
    *,
    workspace_id: int,
    channel: ChannelKind,
    written_to: str | None,
    senders: StoreSenders | None = None,
) -> SendingLine:
    """The number a reply to a message written to ``written_to`` goes from
    (:meth:`StoreSenders.for_reply`), with the store's accounts (read here if not given)."""
    if senders is None:
        senders = sending_accounts(session, [workspace_id])[workspace_id]
    return SendingLine(senders.for_reply(channel, written_to), senders)


def _last_inbound(
    session: Session, conversation: Conversation, channel: ChannelKind
) -> Message | None:
    return session.scalar(
        select(Message)
        .where(
            Message.workspace_id == conversation.workspace_id,
            Message.conversation_id == conversation.id,
            Message.direction == Direction.INBOUND,
            Message.channel == channel,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


def _unclear_visitor(
    session: Session, conversation: Conversation, channel: ChannelKind
) -> str | None:
    """Why a web-chat reply that answers no message in particular has nobody to go to.

    A visitor joins a customer's conversation by typing the customer's email into the
    widget, which proves nothing; two visitors in one conversation may be the customer
    and a stranger who knows her email, and nothing tells which. The last one to write is
    no answer: an agent's reply to the customer's question would reach the stranger. A
    reply to a given message (the assistant's) goes to that message's visitor.
    """
    if channel is not ChannelKind.WEBCHAT:
        return None
    visitors = session.scalar(
        select(func.count(distinct(Message.sender))).where(
            Message.workspace_id == conversation.workspace_id,
            Message.conversation_id == conversation.id,
            Message.direction == Direction.INBOUND,
            Message.channel == ChannelKind.WEBCHAT,
        )
    )
    if (visitors or 0) < 2:
        return None
    return (
        f"{visitors} web-chat visitors wrote in this conversation, and web chat proves none "
        "of them is the customer: a reply here could reach the wrong one"
    )


def _window_opened(
    session: Session,
    conversation: Conversation,
    channel: ChannelKind,
    recipient: str,
    line: SendingLine,
    now: datetime,
) -> datetime | None:
    """The customer's last message from ``recipient`` to the number the reply goes from:
    the window runs from it (:mod:`parley.messaging.windows`)."""
    key = (conversation.workspace_id, conversation.customer_id)
    written = recent_writing(session, [key], now=now).get(conversation.customer_id, [])
    return last_written(written, channel=channel, recipient=recipient, line=line)


def _reach(session: Session, conversation: Conversation) -> Reach:
    customer = session.get_one(Customer, conversation.customer_id)
    identities = session.scalars(
        select(CustomerIdentity).where(
            CustomerIdentity.workspace_id == conversation.workspace_id,
            CustomerIdentity.customer_id == conversation.customer_id,
        )
    )
    consent = customers.current_consent(
        session, workspace_id=conversation.workspace_id, customer_id=conversation.customer_id
    )
    return Reach(customer=customer, identities=list(identities), consent=consent)


def _identity_address(
    session: Session, conversation: Conversation, channel: ChannelKind
) -> str | None:
    """Where to reach the customer on a channel they have not written on here: the
    address journeys would use (their email, their phone, their Instagram id)."""
    return _reach(session, conversation).address(channel)


def _reply_subject(subject: str | None, store_name: str) -> str:
    if not subject:
        return f"Your message to {store_name}"
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def _threading_headers(source: Message) -> dict[str, str]:
    """``In-Reply-To`` and ``References`` so the customer's mail app threads the answer."""
    message_id = source.provider_message_id
    if not message_id:
        return {}
    return {"In-Reply-To": message_id, "References": message_id}


def stop_confirmation(workspace: Workspace, channel: ChannelKind) -> str:
    """The one message a STOP gets back."""
    return (
        f"{workspace.name}: you are unsubscribed and will get no more messages on "
        f"{_channel_name(channel)}. Reply START to subscribe again."
    )


def start_confirmation(workspace: Workspace, channel: ChannelKind) -> str:
    return (
        f"{workspace.name}: you are subscribed again to messages on {_channel_name(channel)}. "
        "Reply HELP for help, STOP to unsubscribe."
    )


def help_text(workspace: Workspace, channel: ChannelKind) -> str:
    """HELP: who is writing, how often, what it costs, how to stop, where to get help."""
    contact = workspace.support_email or workspace.store_url or "our website"
    costs = " Msg&data rates may apply." if channel is ChannelKind.SMS else ""
    return (
        f"{workspace.name}: order updates and customer support. Message frequency varies."
        f"{costs} Reply STOP to unsubscribe. Help: {contact}"
    )


def _channel_name(channel: ChannelKind) -> str:
    return {
        "sms": "SMS",
        "whatsapp": "WhatsApp",
        "instagram": "Instagram",
        "email": "email",
        "webchat": "web chat",
    }.get(channel, channel)


_RENDERER = TemplateRenderer()


@dataclass(frozen=True)
class ReplyChannel:
    """One channel an agent could answer on, and what its rules allow right now."""

    channel: ChannelKind
    recipient: str | None
    refusal: str | None
    """Why free text may not go now; None when it may."""
    needs_template: bool = False
    """WhatsApp outside its 24-hour window: an approved template may still go."""
    is_human_agent: bool = False
    """Instagram 24 hours to 7 days after the customer wrote: sent with ``HUMAN_AGENT``."""

    @property
    def is_available(self) -> bool:
        return self.refusal is None or self.needs_template


@dataclass(frozen=True)
class ApprovedTemplate:
    """A WhatsApp template Meta approved, as the store words it (or parley's default)."""

    name: str
    language: str
    message_type: MessageType
    content: TemplateContent
    is_marketing: bool = False
    """Meta classes it as marketing: only customers with marketing consent may get it."""


def reply_channels(
    session: Session, *, workspace: Workspace, conversation: Conversation, now: datetime
) -> list[ReplyChannel]:
    """Every channel, the conversation's own first, each with whether an agent may use it.

    A channel the customer has not written on in this conversation is business-initiated
    there, so SMS and WhatsApp also need their consent, as a journey's message would.
    """
    reach = _reach(session, conversation)
    senders = sending_accounts(session, [workspace.id])[workspace.id]
    current = ChannelKind(str(conversation.channel)) if conversation.channel else None
    ordered = sorted(ChannelKind, key=lambda channel: channel != current)
    options: list[ReplyChannel] = []
    for channel in ordered:
        source = _last_inbound(session, conversation, channel)
        recipient = source.sender if source is not None else reach.address(channel)
        line = reply_line(
            session,
            workspace_id=workspace.id,
            channel=channel,
            written_to=source.store_address if source is not None else None,
            senders=senders,
        )
        if not recipient:
            options.append(
                ReplyChannel(channel, None, f"no {_channel_name(channel)} address for them")
            )
            continue
        unclear = _unclear_visitor(session, conversation, channel)
        if unclear is not None:
            options.append(ReplyChannel(channel, recipient, unclear))
            continue
        if source is None and channel in (ChannelKind.SMS, ChannelKind.WHATSAPP):
            allowed, why = consent_allows(reach.consent, channel, Purpose.TRANSACTIONAL)
            if not allowed:
                options.append(ReplyChannel(channel, recipient, f"{why} for {channel}"))
                continue
        refusal = reply_refusal(
            session,
            workspace=workspace,
            conversation=conversation,
            channel=channel,
            recipient=recipient,
            author=Author.AGENT,
            now=now,
            line=line,
        )
        # Asked again as a template only where free text was refused on WhatsApp: the
        # only channel whose templates may go outside its window.
        needs_template = (
            refusal is not None
            and channel is ChannelKind.WHATSAPP
            and reply_refusal(
                session,
                workspace=workspace,
                conversation=conversation,
                channel=channel,
                recipient=recipient,
                author=Author.AGENT,
                now=now,
                line=line,
                is_template=True,
            )
            is None
        )
        is_human_agent = refusal is None and is_human_agent_reply(
            session,
            conversation=conversation,
            channel=channel,
            recipient=recipient,
            author=Author.AGENT,
            now=now,
            line=line,
        )
        options.append(ReplyChannel(channel, recipient, refusal, needs_template, is_human_agent))
    return options


def approved_templates(session: Session, *, workspace_id: int) -> list[ApprovedTemplate]:
    """The WhatsApp templates this store can send outside the window, by name: those it
    words (or parley's defaults) that Meta would take now
    (:mod:`parley.messaging.whatsapp_templates`)."""
    registry = registry_for(session, workspace_id=workspace_id)
    found: dict[MessageType, TemplateContent] = {}
    for message_type in MessageType:
        content = default_template(message_type, ChannelKind.WHATSAPP)
        if content is not None:
            found[message_type] = content
    stored = session.scalars(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id,
            MessageTemplate.channel == ChannelKind.WHATSAPP,
        )
    )
    for row in stored:
        found[MessageType(row.message_type)] = TemplateContent.from_dict(row.content)
    named: dict[str, ApprovedTemplate] = {}
    for message_type, content in found.items():
        name, language = content.whatsapp_template, content.whatsapp_language
        if name and name not in named and registry.refusal(name, language) is None:
            named[name] = ApprovedTemplate(
                name,
                language,
                message_type,
                content,
                is_marketing=registry.is_marketing(name, language),
            )
    return sorted(named.values(), key=lambda template: template.name)


def latest_order(
    session: Session, *, workspace_id: int, customer_id: int
) -> tuple[Order | None, Fulfillment | None]:
    """The customer's most recent order and its latest shipment: what "your order" means
    in an agent's reply."""
    order = session.scalar(
        select(Order)
        .where(Order.workspace_id == workspace_id, Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc().nulls_last(), Order.id.desc())
        .limit(1)
    )
    if order is None:
        return None, None
    fulfillment = session.scalar(
        select(Fulfillment)
        .where(
            Fulfillment.workspace_id == workspace_id,
            Fulfillment.order_external_id == order.external_id,
        )
        .order_by(Fulfillment.created_at.desc(), Fulfillment.id.desc())
        .limit(1)
    )
    return order, fulfillment


def render_approved_template(
    session: Session, *, workspace: Workspace, conversation: Conversation, name: str
) -> tuple[str, dict[str, Any]]:
    """The text and the ``template`` column for sending template ``name`` in this
    conversation, filled in from the customer's latest order as a journey would."""
    template = next(
        (t for t in approved_templates(session, workspace_id=workspace.id) if t.name == name),
        None,
    )
    if template is None:
        raise Invalid(f"no approved WhatsApp template named {name!r}")
    if template.is_marketing:
        refused = template_refusal(
            registry_for(session, workspace_id=workspace.id),
            _reach(session, conversation).consent,
            template.name,
            template.language,
            Purpose.TRANSACTIONAL,
        )
        if refused is not None:
            raise Invalid(refused)
    order, fulfillment = latest_order(
        session, workspace_id=workspace.id, customer_id=conversation.customer_id
    )
    customer = session.get_one(Customer, conversation.customer_id)
    context = template_context(
        workspace=workspace, customer=customer, order=order, fulfillment=fulfillment
    )
    try:
        rendered = _RENDERER.render(template.content, context)
    except TemplateError as exc:
        raise Invalid(f"template {name} cannot be filled in: {exc.reason}") from exc
    assert rendered.template is not None
    if not all(parameter.strip() for parameter in rendered.template.body_parameters):
        # WhatsApp rejects an empty parameter: say so now rather than fail at the provider.
        raise Invalid(f"template {name} needs an order this customer does not have")
    return rendered.text, {
        "name": rendered.template.name,
        "language": rendered.template.language,
        "parameters": list(rendered.template.body_parameters),
    }


def queue_agent_reply(
    session: Session,
    *,
    workspace: Workspace,
    conversation: Conversation,
    agent_name: str,
    channel: ChannelKind,
    text: str,
    template_name: str | None,
    idempotency_key: str,
) -> Message:
    """An agent's reply from the composer: refused with the reason (Conflict) when the
    channel's rules forbid it, rather than recorded as skipped, so the agent keeps the
    draft and can pick a template or another channel."""
    option = next(
        o
        for o in reply_channels(
            session, workspace=workspace, conversation=conversation, now=utc_now()
        )
        if o.channel is channel
    )
    template: dict[str, Any] | None = None
    if template_name:
        if channel is not ChannelKind.WHATSAPP:
            raise Invalid("approved templates are for WhatsApp only")
        if not option.is_available:
            raise Conflict(f"cannot reply on {_channel_name(channel)}: {option.refusal}")
        text, template = render_approved_template(
            session, workspace=workspace, conversation=conversation, name=template_name
        )
    elif not text.strip():
        raise Invalid("the reply is empty")
    elif len(text.strip()) > (most := ADAPTERS[channel].capabilities.max_text_len):
        # The provider would refuse it for good once the agent had moved on; refused now,
        # the draft stays in the composer to shorten.
        raise Invalid(
            f"{_channel_name(channel)} takes at most {most:,} characters in a message; "
            f"this reply has {len(text.strip()):,}"
        )
    elif option.refusal is not None:
        raise Conflict(f"cannot reply on {_channel_name(channel)}: {option.refusal}")
    return queue_reply(
        session,
        workspace=workspace,
        conversation=conversation,
        text=text.strip() if template is None else text,
        author=Author.AGENT,
        idempotency_key=idempotency_key,
        channel=channel,
        sender=agent_name,
        template=template,
    )
