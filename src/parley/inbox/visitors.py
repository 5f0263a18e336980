"""A web-chat visitor's own transcript: what the chat widget shows them.

Only web-chat messages to and from this visitor id, never the rest of the customer's
profile (a visitor's email is unverified, so the profile may hold someone's other
conversations). Each read runs in its caller's transaction.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.channels.webchat.protocol import Entry
from parley.customers.models import CustomerIdentity, IdentityKind
from parley.messaging.models import Direction, Message, MessageStatus

HISTORY_LIMIT: Final = 50
CATCH_UP_LIMIT: Final = 200

# What a socket shows: the visitor's messages, and replies from the moment delivery hands
# them to the channel. For web chat the stored row is the delivery, and ``sending`` is
# committed before the adapter rings; ``held`` (a send cut short by a crash) has most
# likely been read already. A queued reply may still be refused when it is sent, and
# failed or skipped ones never went.
SHOWN_STATUSES: Final = (
    MessageStatus.RECEIVED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.HELD,
)
PENDING_STATUSES: Final = (MessageStatus.QUEUED,)


def _visitor_messages(workspace_id: int, visitor_id: str) -> Select[Message]:
    """Web-chat messages from and to this visitor, through the customer index.

    The visitor's identity row names their customer (merges move it, and their messages,
    together); the sender/recipient test keeps out the rest of that customer's messages.
    """
    customer_id = (
        select(CustomerIdentity.customer_id)
        .where(
            CustomerIdentity.workspace_id == workspace_id,
            CustomerIdentity.kind == IdentityKind.WEBCHAT,
            CustomerIdentity.value == visitor_id,
        )
        .scalar_subquery()
    )
    return select(Message).where(
        Message.workspace_id == workspace_id,
        Message.customer_id == customer_id,
        Message.channel == ChannelKind.WEBCHAT,
        or_(
            and_(Message.direction == Direction.INBOUND, Message.sender == visitor_id),
            and_(Message.direction == Direction.OUTBOUND, Message.recipient == visitor_id),
        ),
    )


def visitor_history(
    session: Session, *, workspace_id: int, visitor_id: str, limit: int = HISTORY_LIMIT
) -> list[Entry]:
    """The visitor's last ``limit`` shown messages, oldest first."""
    newest = session.scalars(
        _visitor_messages(workspace_id, visitor_id)
        .where(Message.status.in_(SHOWN_STATUSES))
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return [_entry(message, visitor_id) for message in reversed(list(newest))]


def visitor_messages_after(
    session: Session, *, workspace_id: int, visitor_id: str, after_id: int
) -> list[Entry]:
    """The visitor's shown and still-pending messages numbered above ``after_id``."""
    rows = session.scalars(
        _visitor_messages(workspace_id, visitor_id)
        .where(
            Message.id > after_id,
            Message.status.in_(SHOWN_STATUSES + PENDING_STATUSES),
        )
        .order_by(Message.id)
        .limit(CATCH_UP_LIMIT)
    )
    return [_entry(message, visitor_id) for message in rows]


def _entry(message: Message, visitor_id: str) -> Entry:
    prefix = f"{visitor_id}:"
    provider_id = message.provider_message_id or ""
    is_inbound = message.direction == Direction.INBOUND
    return Entry(
        id=message.id,
        direction=message.direction,
        author=message.author,
        text=message.body or "",
        created_at=message.created_at,
        client_id=provider_id.removeprefix(prefix)
        if is_inbound and provider_id.startswith(prefix)
        else None,
        is_pending=message.status in PENDING_STATUSES,
    )
