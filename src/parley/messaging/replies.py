"""Replies inside a conversation: the assistant's, an agent's, and parley's keyword answers.

A reply goes out on the channel the customer last wrote on, to the address they wrote
from, within that channel's rules, checked when it is queued and again when it is sent:

- a customer who revoked consent on the channel (STOP) gets nothing more there, except
  the one confirmation of that STOP;
- WhatsApp allows free text only within 24 hours of the customer's last message;
- Instagram allows 24 hours, and up to 7 days for a reply a person wrote (the
  ``HUMAN_AGENT`` tag), never for the assistant's.

A refused reply is recorded ``skipped`` with the reason, never silently dropped. An
accepted one is ``queued`` with a ``messaging.deliver`` job in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers.models import CustomerIdentity, IdentityKind
from parley.inbox.models import Conversation
from parley.jobs import queue
from parley.messaging import service as outbox
from parley.messaging.models import Author, Direction, Message, MessageStatus
from parley.messaging.types import MessageType, Purpose
from parley.workspaces.models import Workspace

DELIVER = "messaging.deliver"
SESSION_WINDOWS: dict[ChannelKind, timedelta] = {
    ChannelKind.WHATSAPP: timedelta(hours=24),
    ChannelKind.INSTAGRAM: timedelta(hours=24),
}
INSTAGRAM_HUMAN_AGENT_WINDOW = timedelta(days=7)
INSTAGRAM_COMMENT_REPLY_WINDOW = timedelta(days=7)
COMMENT_ADDRESS = "comment:"
WINDOW_IDENTITY: dict[ChannelKind, IdentityKind] = {
    ChannelKind.WHATSAPP: IdentityKind.WHATSAPP,
    ChannelKind.INSTAGRAM: IdentityKind.INSTAGRAM,
}


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
) -> Message:
    """Queue a reply on the conversation's channel, or record why it may not go."""
    now = utc_now()
    channel = ChannelKind(str(conversation.channel))
    source = to_message or _last_inbound(session, conversation, channel)
    recipient = source.sender if source is not None else None
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
        "body": text,
        "reply_to": source.provider_message_id if source is not None else None,
    }
    if channel is ChannelKind.EMAIL and source is not None:
        row["subject"] = _reply_subject(source.subject, workspace.name)
        row["headers"] = _threading_headers(source)
    refusal = reply_refusal(
        session,
        workspace=workspace,
        conversation=conversation,
        channel=channel,
        recipient=recipient,
        author=author,
        now=now,
    )
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
            idempotency_key=f"deliver:{message_id}",
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
            idempotency_key=f"deliver:{message_id}",
        )
    message = session.scalar(
        select(Message).where(
            Message.workspace_id == workspace.id,
            Message.idempotency_key == row["idempotency_key"],
        )
    )
    assert message is not None
    return message


def reply_refusal(
    session: Session,
    *,
    workspace: Workspace,
    conversation: Conversation,
    channel: ChannelKind,
    recipient: str | None,
    author: Author,
    now: datetime,
) -> str | None:
    """Why this reply may not go out now, or None when it may."""
    if not workspace.is_active:
        return "the store has uninstalled parley"
    if not recipient:
        return f"no {channel} address to reply to: the customer has not written on {channel}"
    if author is not Author.SYSTEM:
        consent = customers.current_consent(
            session, workspace_id=workspace.id, customer_id=conversation.customer_id
        ).get((channel, Purpose.TRANSACTIONAL))
        if consent is not None and not consent.is_granted:
            return f"opted out of {channel} ({consent.source})"
    window = SESSION_WINDOWS.get(channel)
    if window is None or recipient.startswith(COMMENT_ADDRESS):
        # A private reply answers a comment, not a conversation: its 7 days were checked
        # when it was queued.
        return None
    last = _last_inbound_at(session, conversation, channel)
    if last is not None and now - last < window:
        return None
    if channel is ChannelKind.INSTAGRAM:
        if (
            author is Author.AGENT
            and last is not None
            and now - last < INSTAGRAM_HUMAN_AGENT_WINDOW
        ):
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


def _last_inbound_at(
    session: Session, conversation: Conversation, channel: ChannelKind
) -> datetime | None:
    """The customer's last message on the channel: the window runs from it."""
    return session.scalar(
        select(CustomerIdentity.last_inbound_at)
        .where(
            CustomerIdentity.workspace_id == conversation.workspace_id,
            CustomerIdentity.customer_id == conversation.customer_id,
            CustomerIdentity.kind == WINDOW_IDENTITY[channel],
            CustomerIdentity.last_inbound_at.is_not(None),
        )
        .order_by(CustomerIdentity.last_inbound_at.desc())
        .limit(1)
    )


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
    return {"sms": "SMS", "whatsapp": "WhatsApp", "instagram": "Instagram"}.get(channel, channel)
