"""WhatsApp's and Instagram's customer-service windows, kept per number of the store.

Meta lets a business write free text to a customer only for 24 hours after the
customer's last message (on Instagram, 7 days for a reply a person writes), and it keeps
that window per business number: a customer who wrote to one of the store's numbers
opened that number's window, not another's. A store that sends from its own number and
still receives on the deployment's, or that has two numbers, must not take a message to
one as leave to write free text from the other: Meta refuses it (error 131047) and the
customer hears nothing.

So the window is read from the customer's messages themselves. Each keeps the store's
address it was written to (``messages.store_address``), and a message may go free-form
from a number only when the customer wrote to that number, from the address it goes to,
inside the window. An address the store only receives on (its webhooks' account for the
deployment's number) is answered from the deployment's number, so it opens that one's
window (:meth:`~parley.messaging.senders.StoreSenders.line`). A message recorded without
the address opens every number's, as before the address was kept. A comment on an
Instagram post opens none: Meta allows it one private reply, and a conversation only
once the customer writes a message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind, SendingAccount
from parley.db.scoped import in_workspaces
from parley.messaging.models import Direction, Message
from parley.messaging.senders import StoreSenders

WINDOWED = (ChannelKind.WHATSAPP, ChannelKind.INSTAGRAM)
"""The channels whose free text needs the customer to have written first."""
LONGEST_WINDOW = timedelta(days=7)
"""The longest window (Instagram's for a person's reply): older messages open none."""
COMMENT = "comment"
"""The kind of an inbound Instagram comment (``messages.headers["kind"]``)."""


@dataclass(frozen=True)
class Written:
    """When the customer last wrote on a windowed channel, from one of their addresses to
    one of the store's (None: not recorded)."""

    channel: str
    sender: str
    store_address: str | None
    at: datetime


@dataclass(frozen=True)
class SendingLine:
    """The number a message goes from: the store's own account, or the deployment's
    (``account`` None), with the store's accounts to tell what each address written to is
    answered from. ``senders`` None: the store's accounts are not known, and a message to
    any of its numbers counts."""

    account: SendingAccount | None
    senders: StoreSenders | None

    def opened_by(self, written: Written) -> bool:
        """Whether the customer's message opened this number's window."""
        if written.store_address is None or self.senders is None:
            return True
        line = self.senders.line(ChannelKind(written.channel), written.store_address)
        return line == (self.account.address if self.account is not None else None)


ANY_LINE = SendingLine(account=None, senders=None)


def last_written(
    written: Iterable[Written], *, channel: ChannelKind, recipient: str, line: SendingLine
) -> datetime | None:
    """When the customer last wrote from ``recipient`` to the number ``line`` goes from."""
    return max(
        (
            item.at
            for item in written
            if item.channel == channel and item.sender == recipient and line.opened_by(item)
        ),
        default=None,
    )


def recent_writing(
    session: Session, customers: Iterable[tuple[int, int]], *, now: datetime
) -> dict[int, list[Written]]:
    """Each customer's (``(workspace id, customer id)``) latest message on a windowed
    channel per address they wrote from and address of the store's they wrote to, within
    the longest window: one grouped read of the customers' recent messages."""
    wanted = list(customers)
    found: dict[int, list[Written]] = defaultdict(list)
    if not wanted:
        return found
    rows = session.execute(
        select(
            Message.customer_id,
            Message.channel,
            Message.sender,
            Message.store_address,
            func.max(Message.created_at),
        )
        .where(
            in_workspaces(session, Message.workspace_id, Message.customer_id, wanted),
            Message.created_at >= now - LONGEST_WINDOW,
            Message.direction == Direction.INBOUND,
            Message.channel.in_(WINDOWED),
            # A comment on a post opens no window: Instagram allows it one private reply.
            func.coalesce(Message.headers["kind"].as_string(), "") != COMMENT,
        )
        .group_by(Message.customer_id, Message.channel, Message.sender, Message.store_address)
    )
    for customer_id, channel, sender, store_address, at in rows:
        # Every row has them (its customer and channel were asked for; an inbound message
        # has its sender); the columns are nullable for outbound rows.
        if customer_id is not None and channel is not None and sender is not None:
            found[customer_id].append(Written(channel, sender, store_address, at))
    return found
