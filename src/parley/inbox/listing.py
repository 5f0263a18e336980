"""The agents' conversation list: filters, search, unread counts, waiting-time order.

Every filter value is checked against an allow-list before it reaches SQL, and every
value that does reach SQL is a bound parameter; an unknown value is ignored, never
interpolated. The list is built for a workspace of many thousand conversations: one query
picks the page (ordered on ``ix_conversations_waiting``), then a handful of set-based
queries fetch the page's names, previews, labels and unread counts; nothing runs per row.

A conversation's *label* is what its latest assistant turn understood: the agent's
correction (``AssistantTurn.label``) when there is one, else the assistant's intent. It is
the label an agent triages by ("where is my order", "refund") and the one ``assistant
train`` learns from, so filtering by it and correcting it stay the same notion.

*Unread* counts the customer's messages that arrived after the agent's read marker
(``ConversationRead.read_at``); a conversation the agent never opened counts all of them.
Arrival, not the time the provider says a message was written: WhatsApp may deliver a
message written before the agent opened the conversation a minute after they did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from parley.accounts.service import Member, members
from parley.assistant.intents import Intent
from parley.channels.base import ChannelKind
from parley.commerce.models import Order
from parley.customers.identity import normalise_email, normalise_phone
from parley.customers.models import Customer, CustomerIdentity, IdentityKind
from parley.inbox.models import (
    AssistantTurn,
    Conversation,
    ConversationRead,
    ConversationStatus,
    Owner,
)
from parley.messaging.models import Direction, Message

PAGE_SIZE = 50
PREVIEW_CHARS = 120
MAX_QUERY_CHARS = 200

ACTIVE = "active"
ALL = "all"
STATUSES: dict[str, tuple[str, ...]] = {
    ACTIVE: (ConversationStatus.OPEN, ConversationStatus.PENDING),
    ConversationStatus.OPEN: (ConversationStatus.OPEN,),
    ConversationStatus.PENDING: (ConversationStatus.PENDING,),
    ConversationStatus.SNOOZED: (ConversationStatus.SNOOZED,),
    ConversationStatus.RESOLVED: (ConversationStatus.RESOLVED,),
    ALL: tuple(ConversationStatus),
}
STATUS_TITLES = {
    ACTIVE: "Open & pending",
    ConversationStatus.OPEN: "Open",
    ConversationStatus.PENDING: "Pending",
    ConversationStatus.SNOOZED: "Snoozed",
    ConversationStatus.RESOLVED: "Resolved",
    ALL: "All",
}
CHANNELS = tuple(str(kind) for kind in ChannelKind)
CHANNEL_TITLES = {
    "email": "Email",
    "sms": "SMS",
    "whatsapp": "WhatsApp",
    "instagram": "Instagram",
    "webchat": "Web chat",
}
OWNERS = tuple(str(owner) for owner in Owner)
LABELS = tuple(sorted(str(intent) for intent in Intent))
MINE = "mine"
UNASSIGNED = "unassigned"
ASSIGNEE_TABS = ("", MINE, UNASSIGNED)
CURSOR = re.compile(r"(-|\d{1,18})\.(\d{1,18})\.(\d{1,18})")
"""``after``: the last row seen, as its ``waiting_since`` ('-' for none), its
``last_message_at`` (both microseconds since the epoch) and its id."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """The sort key of the last row a page showed; the next page starts after it."""

    waiting_since: datetime | None
    last_message_at: datetime
    id: int

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """The cursor in ``text``; None for anything that is not one (it is dropped)."""
        found = CURSOR.fullmatch(text)
        if found is None:
            return None
        waiting, last, row_id = found.groups()
        try:
            return cls(
                waiting_since=None
                if waiting == "-"
                else EPOCH + timedelta(microseconds=int(waiting)),
                last_message_at=EPOCH + timedelta(microseconds=int(last)),
                id=int(row_id),
            )
        except OverflowError:
            return None

    @classmethod
    def of(cls, conversation: Conversation) -> str:
        """The ``after`` text that continues the list past ``conversation``."""

        def micros(moment: datetime) -> str:
            return str((moment - EPOCH) // timedelta(microseconds=1))

        waiting = conversation.waiting_since
        return ".".join(
            (
                "-" if waiting is None else micros(waiting),
                micros(conversation.last_message_at),
                str(conversation.id),
            )
        )


@dataclass(frozen=True)
class ListFilters:
    """What the agent asked the list for, every field already allow-listed."""

    status: str = ACTIVE
    channel: str = ""
    assignee: str = ""
    """'' (everyone), 'mine', 'unassigned' or a teammate's user id as text."""
    owner: str = ""
    label: str = ""
    q: str = ""
    page: int = 1
    """The page's number, as the pager shows it; where it starts is ``after``."""
    after: str = ""
    """A :class:`Cursor`'s text: the page starts after that row, '' at the top."""

    @classmethod
    def parse(cls, params: Mapping[str, str], *, teammate_ids: set[int]) -> ListFilters:
        """Filters from a query string; any value outside its allow-list is dropped."""
        status = params.get("status", ACTIVE)
        channel = params.get("channel", "")
        owner = params.get("owner", "")
        label = params.get("label", "")
        assignee = params.get("assignee", "")
        if assignee not in (MINE, UNASSIGNED):
            assignee = assignee if assignee.isdigit() and int(assignee) in teammate_ids else ""
        page = params.get("page", "1")
        after = params.get("after", "")
        return cls(
            status=status if status in STATUSES else ACTIVE,
            channel=channel if channel in CHANNELS else "",
            assignee=assignee,
            owner=owner if owner in OWNERS else "",
            label=label if label in LABELS else "",
            q=" ".join(params.get("q", "").split())[:MAX_QUERY_CHARS],
            page=min(int(page), 10_000) if page.isdigit() and int(page) >= 1 else 1,
            after=after if Cursor.parse(after) else "",
        )

    def query(self, **changes: Any) -> str:
        """This filter set as a query string (defaults left out), with ``changes`` applied.

        A change of filter returns to the top of page 1 unless the change is the page
        itself (which keeps its cursor unless given another).
        """
        top: dict[str, Any] = {} if "page" in changes else {"page": 1, "after": ""}
        changed = replace(self, **(top | changes))
        pairs = [
            (name, value)
            for name, value, default in (
                ("status", changed.status, ACTIVE),
                ("channel", changed.channel, ""),
                ("assignee", changed.assignee, ""),
                ("owner", changed.owner, ""),
                ("label", changed.label, ""),
                ("q", changed.q, ""),
                ("page", str(changed.page), "1"),
                ("after", changed.after, ""),
            )
            if value != default
        ]
        return urlencode(pairs)


@dataclass(frozen=True)
class ConversationRow:
    """One line of the list."""

    id: int
    customer_name: str
    channel: str | None
    status: str
    owner: str
    assignee_id: int | None
    assignee_name: str | None
    waiting_since: datetime | None
    last_message_at: datetime
    preview: str
    label: str | None
    unread: int


@dataclass(frozen=True)
class ConversationPage:
    """A page of the list with its tab counts."""

    filters: ListFilters
    rows: list[ConversationRow]
    next_after: str
    """The ``after`` of the next page; '' when this page is the last."""
    unread_by_tab: dict[str, int]
    """Conversations with unread messages under the current filters, per assignee tab
    ('' for everyone, 'mine', 'unassigned')."""
    teammates: list[Member]


def list_conversations(
    session: Session, *, workspace_id: int, user_id: int, params: Mapping[str, str]
) -> ConversationPage:
    """One page of the workspace's conversations under the filters in ``params`` (a query
    string's values, allow-listed by :meth:`ListFilters.parse`), for agent ``user_id``.

    Ordered by who has waited longest (``waiting_since`` ascending), then conversations
    nobody waits on, most recent first. A page starts after the last row of the one
    before (``after``), not at an offset: a customer who writes in while the agent reads
    page 1 sorts above its end, and an offset would show its last row again on page 2.
    """
    teammates = members(session, workspace_id=workspace_id)
    filters = ListFilters.parse(params, teammate_ids={member.user_id for member in teammates})
    conditions = _conditions(session, workspace_id=workspace_id, user_id=user_id, f=filters)
    nobody_waits = case((Conversation.waiting_since.is_(None), 1), else_=0)
    found = list(
        session.scalars(
            select(Conversation)
            .where(
                *conditions,
                _assignee_condition(filters.assignee, user_id),
                _after(Cursor.parse(filters.after)),
            )
            .order_by(
                nobody_waits,
                Conversation.waiting_since,
                Conversation.last_message_at.desc(),
                Conversation.id.desc(),
            )
            .limit(PAGE_SIZE + 1)
        )
    )
    page = found[:PAGE_SIZE]
    return ConversationPage(
        filters=filters,
        rows=_rows(session, workspace_id, user_id, page, teammates),
        next_after=Cursor.of(page[-1]) if len(found) > PAGE_SIZE else "",
        unread_by_tab=_unread_by_tab(session, conditions, user_id),
        teammates=teammates,
    )


def _conditions(
    session: Session, *, workspace_id: int, user_id: int, f: ListFilters
) -> list[ColumnElement[bool]]:
    """Every filter but the assignee's, which the tab counts vary."""
    conditions: list[ColumnElement[bool]] = [
        Conversation.workspace_id == workspace_id,
        Conversation.status.in_(STATUSES[f.status]),
        Conversation.merged_into_id.is_(None),
    ]
    if f.channel:
        conditions.append(Conversation.channel == f.channel)
    if f.owner:
        conditions.append(Conversation.owner == f.owner)
    if f.label:
        conditions.append(Conversation.id.in_(_labelled(workspace_id, f.label)))
    if f.q:
        conditions.append(Conversation.customer_id.in_(_matching_customers(workspace_id, f.q)))
    return conditions


def _assignee_condition(assignee: str, user_id: int) -> ColumnElement[bool]:
    if assignee == MINE:
        return Conversation.assignee_id == user_id
    if assignee == UNASSIGNED:
        return Conversation.assignee_id.is_(None)
    if assignee:
        return Conversation.assignee_id == int(assignee)
    return and_(True)


def _after(cursor: Cursor | None) -> ColumnElement[bool]:
    """The rows that sort after ``cursor`` in the list's order (see list_conversations)."""
    if cursor is None:
        return and_(True)
    later = or_(
        Conversation.last_message_at < cursor.last_message_at,
        and_(Conversation.last_message_at == cursor.last_message_at, Conversation.id < cursor.id),
    )
    if cursor.waiting_since is None:
        return and_(Conversation.waiting_since.is_(None), later)
    return or_(
        Conversation.waiting_since.is_(None),
        Conversation.waiting_since > cursor.waiting_since,
        and_(Conversation.waiting_since == cursor.waiting_since, later),
    )


def _latest_turns(workspace_id: int) -> Select[Any]:
    return (
        select(func.max(AssistantTurn.id))
        .where(AssistantTurn.workspace_id == workspace_id)
        .group_by(AssistantTurn.conversation_id)
    )


def _labelled(workspace_id: int, label: str) -> Select[Any]:
    """Conversations whose latest assistant turn carries ``label`` (see module doc)."""
    return select(AssistantTurn.conversation_id).where(
        AssistantTurn.id.in_(_latest_turns(workspace_id)),
        func.coalesce(AssistantTurn.label, AssistantTurn.intent) == label,
    )


def _matching_customers(workspace_id: int, q: str) -> Select[Any]:
    """Customers whose name, email, phone or order number matches the search text.

    Emails and phones are compared in the normal form identities are stored in, so
    ``+44 7911 123456`` finds ``+447911123456``; names match anywhere, case-insensitively.
    """
    pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    full_name = func.lower(
        func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, "")
    )
    matches: list[ColumnElement[bool]] = [full_name.like(pattern, escape="\\")]
    email = normalise_email(q)
    if email is not None:
        matches.append(func.lower(Customer.email) == email)
        matches.append(Customer.id.in_(_identity(workspace_id, (IdentityKind.EMAIL,), email)))
        matches.append(Customer.id.in_(_orders(workspace_id, Order.email == email)))
    phone = _phone(q)
    if phone is not None:
        kinds = (IdentityKind.PHONE, IdentityKind.WHATSAPP)
        matches.append(Customer.phone == phone)
        matches.append(Customer.id.in_(_identity(workspace_id, kinds, phone)))
    number = q.lstrip("#")
    if number:
        matches.append(
            Customer.id.in_(_orders(workspace_id, Order.number.in_((number, f"#{number}"))))
        )
    return select(Customer.id).where(Customer.workspace_id == workspace_id, or_(*matches))


def _phone(q: str) -> str | None:
    """The E.164 form of a searched phone; agents often leave out the ``+``."""
    digits = sum(ch.isdigit() for ch in q)
    if digits < 7 or not all(ch.isdigit() or ch in "+-() ." for ch in q):
        return None
    return normalise_phone(q) or normalise_phone("+" + q.lstrip("+"))


def _identity(workspace_id: int, kinds: tuple[str, ...], value: str) -> Select[Any]:
    return select(CustomerIdentity.customer_id).where(
        CustomerIdentity.workspace_id == workspace_id,
        CustomerIdentity.kind.in_(kinds),
        CustomerIdentity.value == value,
    )


def _orders(workspace_id: int, condition: ColumnElement[bool]) -> Select[Any]:
    return select(Order.customer_id).where(
        Order.workspace_id == workspace_id, Order.customer_id.is_not(None), condition
    )


def _read_marker(user_id: int) -> Any:
    return and_(
        ConversationRead.conversation_id == Conversation.id,
        ConversationRead.user_id == user_id,
    )


def _unread_by_tab(
    session: Session, conditions: list[ColumnElement[bool]], user_id: int
) -> dict[str, int]:
    """How many listed conversations hold unread messages, per assignee tab, in one query.

    A conversation has unread messages when the customer last wrote after the agent's
    read marker; ``last_inbound_at`` answers that without touching the messages.
    """
    has_unread = and_(
        Conversation.last_inbound_at.is_not(None),
        or_(
            ConversationRead.read_at.is_(None),
            Conversation.last_inbound_at > ConversationRead.read_at,
        ),
    )

    def tally(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((and_(has_unread, condition), 1), else_=0)), 0)

    everyone, mine, unassigned = session.execute(
        select(
            tally(and_(True)),
            tally(Conversation.assignee_id == user_id),
            tally(Conversation.assignee_id.is_(None)),
        )
        .select_from(Conversation)
        .outerjoin(ConversationRead, _read_marker(user_id))
        .where(*conditions)
    ).one()
    return {"": int(everyone), MINE: int(mine), UNASSIGNED: int(unassigned)}


def _rows(
    session: Session,
    workspace_id: int,
    user_id: int,
    page: list[Conversation],
    teammates: list[Member],
) -> list[ConversationRow]:
    """The page's rows: names, previews, labels and unread counts, four queries in all."""
    if not page:
        return []
    ids = [conversation.id for conversation in page]
    names: dict[int, str | None] = dict(
        session.execute(
            select(Customer.id, _display_name()).where(
                Customer.workspace_id == workspace_id,
                Customer.id.in_({conversation.customer_id for conversation in page}),
            )
        ).all()
    )
    previews = dict(
        session.execute(
            select(Message.conversation_id, Message.body).where(
                Message.workspace_id == workspace_id,
                Message.id.in_(
                    # ``ids`` are this workspace's already; left to the conversation index
                    # alone, the planner reads 50 short index ranges, not the workspace's
                    # messages.
                    select(func.max(Message.id))
                    .where(Message.conversation_id.in_(ids))
                    .group_by(Message.conversation_id)
                ),
            )
        ).all()
    )
    labels = dict(
        session.execute(
            select(
                AssistantTurn.conversation_id,
                func.coalesce(AssistantTurn.label, AssistantTurn.intent),
            ).where(
                AssistantTurn.id.in_(
                    select(func.max(AssistantTurn.id))
                    .where(
                        AssistantTurn.workspace_id == workspace_id,
                        AssistantTurn.conversation_id.in_(ids),
                    )
                    .group_by(AssistantTurn.conversation_id)
                )
            )
        ).all()
    )
    unread = unread_counts(session, workspace_id=workspace_id, user_id=user_id, ids=ids)
    teammate_names = {member.user_id: member.name for member in teammates}
    return [
        ConversationRow(
            id=conversation.id,
            customer_name=names.get(conversation.customer_id) or "Unknown customer",
            channel=conversation.channel,
            status=conversation.status,
            owner=conversation.owner,
            assignee_id=conversation.assignee_id,
            assignee_name=teammate_names.get(conversation.assignee_id or 0),
            waiting_since=conversation.waiting_since,
            last_message_at=conversation.last_message_at,
            preview=" ".join((previews.get(conversation.id) or "").split())[:PREVIEW_CHARS],
            label=labels.get(conversation.id),
            unread=unread.get(conversation.id, 0),
        )
        for conversation in page
    ]


def customer_name(session: Session, *, workspace_id: int, customer_id: int) -> str:
    """How the list and the conversation page name a customer."""
    name = session.scalar(
        select(_display_name()).where(
            Customer.workspace_id == workspace_id, Customer.id == customer_id
        )
    )
    return name or "Unknown customer"


def _display_name() -> Any:
    """'First Last', else the email, else the phone: what the agent recognises them by."""
    name = func.trim(
        func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, "")
    )
    return func.coalesce(func.nullif(name, ""), Customer.email, Customer.phone)


def unread_counts(
    session: Session, *, workspace_id: int, user_id: int, ids: list[int]
) -> dict[int, int]:
    """Customer messages that arrived after this agent's read marker, per conversation id.

    An inbound message's status is set once, as it arrives (``received``), so its
    ``status_updated_at`` is its arrival: the clock ``last_inbound_at`` and the read
    marker keep, and the tab counts (:func:`_unread_by_tab`) with them. Its
    ``created_at`` is the provider's date, which a late delivery puts before the marker.
    """
    if not ids:
        return {}
    found = session.execute(
        select(Message.conversation_id, func.count(Message.id))
        .select_from(Message)
        .outerjoin(
            ConversationRead,
            and_(
                ConversationRead.conversation_id == Message.conversation_id,
                ConversationRead.user_id == user_id,
            ),
        )
        .where(
            Message.conversation_id.in_(
                select(Conversation.id).where(
                    Conversation.workspace_id == workspace_id, Conversation.id.in_(ids)
                )
            ),
            Message.direction == Direction.INBOUND,
            or_(
                ConversationRead.read_at.is_(None),
                Message.status_updated_at > ConversationRead.read_at,
            ),
        )
        .group_by(Message.conversation_id)
    )
    return {conversation_id: int(n) for conversation_id, n in found if conversation_id is not None}
