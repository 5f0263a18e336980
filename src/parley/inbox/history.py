"""A customer's whole history as one column: what the conversation page shows.

Messages of every channel and direction (journey sends with the journey and step that
made them, skipped sends with their reason), the assistant's turns, notes, assignments,
status changes, hand-offs, opt-outs and merges, from this conversation and the customer's
earlier ones, oldest first. Built in a fixed number of queries whatever its length; the
newest ``LIMIT`` items are kept, so a customer of ten years still opens quickly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from parley.accounts.service import members
from parley.dead_letter import jobs_to_send_again
from parley.inbox.media import is_held
from parley.inbox.models import AssistantTurn, Conversation, ConversationEvent, EventKind
from parley.journeys.models import Journey, JourneyRun
from parley.messaging.models import Direction, Message

LIMIT = 300
RASTER_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
GEO = re.compile(r"geo:(-?\d{1,3}(?:\.\d{1,12})?),(-?\d{1,3}(?:\.\d{1,12})?)(?:;.*)?")
"""A location shared without a URL of its own: RFC 5870 ``geo:lat,lon`` (the channels'
form for a bare pin)."""


@dataclass(frozen=True)
class Attachment:
    """A media reference as the timeline shows it: an image, or a link to download."""

    kind: str
    url: str | None
    filename: str | None
    caption: str | None
    is_image: bool
    """Raster image with a URL: shown inline through the proxy. Everything else (SVG,
    HTML, documents) is only ever offered as a download."""
    coordinates: tuple[str, str] | None = None
    """Latitude and longitude of a shared location, as the customer's phone gave them:
    often all a pin carries, so the agent sees them and a map link built from them."""
    held_at: str | None = None
    """Where parley fetches a file its provider keeps behind the account's credentials
    (:mod:`parley.inbox.media`); None for a URL anyone may fetch (through the proxy)."""


@dataclass(frozen=True)
class Item:
    """One entry of the timeline. ``kind`` is message, note, event or turn."""

    kind: str
    at: datetime
    id: int
    message: Message | None = None
    event: ConversationEvent | None = None
    turn: AssistantTurn | None = None
    journey: str | None = None
    """The journey that sent a message, and its step: 'Shipping updates, step 2'."""
    can_send_again: bool = False
    """A reply that gave up after every retry: the agent may send it again."""
    attachments: list[Attachment] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    """For events: names resolved (assignee from/to), for the template to print."""


@dataclass(frozen=True)
class History:
    items: list[Item]
    is_truncated: bool


def customer_history(session: Session, *, conversation: Conversation) -> History:
    """The timeline for ``conversation`` (already checked to be in the agent's workspace)."""
    workspace_id = conversation.workspace_id
    conversation_ids = set(
        session.scalars(
            select(Conversation.id).where(
                Conversation.workspace_id == workspace_id,
                Conversation.customer_id == conversation.customer_id,
            )
        )
    ) | {conversation.id}
    messages = list(
        session.scalars(
            select(Message)
            .where(
                Message.workspace_id == workspace_id,
                or_(
                    Message.conversation_id.in_(conversation_ids),
                    Message.customer_id == conversation.customer_id,
                ),
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(LIMIT + 1)
        )
    )
    events = list(
        session.scalars(
            select(ConversationEvent)
            .where(
                ConversationEvent.workspace_id == workspace_id,
                ConversationEvent.conversation_id.in_(conversation_ids),
            )
            .order_by(ConversationEvent.id.desc())
            .limit(LIMIT + 1)
        )
    )
    turns = list(
        session.scalars(
            select(AssistantTurn)
            .where(
                AssistantTurn.workspace_id == workspace_id,
                AssistantTurn.conversation_id.in_(conversation_ids),
            )
            .order_by(AssistantTurn.id.desc())
            .limit(LIMIT + 1)
        )
    )
    journeys = _journey_steps(session, workspace_id, messages)
    to_send_again = jobs_to_send_again(session, workspace_id=workspace_id, messages=messages)
    names = {member.user_id: member.name for member in members(session, workspace_id=workspace_id)}
    items = [
        Item(
            kind="message",
            at=message.created_at,
            id=message.id,
            message=message,
            journey=journeys.get(message.id),
            can_send_again=message.id in to_send_again,
            attachments=[
                _attachment(raw, message, index)
                for index, raw in enumerate(message.attachments or [])
            ],
        )
        for message in messages
    ]
    items += [_event_item(event, names) for event in events]
    items += [Item(kind="turn", at=turn.created_at, id=turn.id, turn=turn) for turn in turns]
    # A turn follows the message it read; at equal times messages come first, then turns,
    # then events (a hand-off event is written after the turn that decided it).
    order = {"message": 0, "turn": 1, "note": 2, "event": 2}
    items.sort(key=lambda item: (item.at, order[item.kind], item.id))
    is_truncated = max(len(items), len(messages), len(events), len(turns)) > LIMIT
    return History(items=items[-LIMIT:], is_truncated=is_truncated)


def _journey_steps(session: Session, workspace_id: int, messages: list[Message]) -> dict[int, str]:
    """'Journey name, step N' for each journey message, in one query."""
    run_ids = {m.journey_run_id for m in messages if m.journey_run_id is not None}
    if not run_ids:
        return {}
    journey_of_run = dict(
        session.execute(
            select(JourneyRun.id, Journey.name)
            .join(Journey, Journey.id == JourneyRun.journey_id)
            .where(JourneyRun.workspace_id == workspace_id, JourneyRun.id.in_(run_ids))
        ).all()
    )
    steps: dict[int, str] = {}
    for message in messages:
        name = journey_of_run.get(message.journey_run_id or 0)
        if name is None:
            continue
        step = "" if message.step_index is None else f", step {message.step_index + 1}"
        steps[message.id] = f"{name}{step}"
    return steps


def _attachment(raw: Any, message: Message, index: int) -> Attachment:
    data = raw if isinstance(raw, dict) else {}
    url = data.get("url")
    coordinates = _coordinates(url)
    url = url if isinstance(url, str) and url.lower().startswith(("https://", "http://")) else None
    held_at = (
        f"/media/messages/{message.id}/{index}"
        if message.direction == Direction.INBOUND and is_held(message.channel, data)
        else None
    )
    mime = str(data.get("mime_type") or "").split(";")[0].strip().lower()
    kind = str(data.get("kind") or "file")
    is_image = (url is not None or held_at is not None) and (
        mime in RASTER_TYPES or (not mime and kind == "image")
    )
    return Attachment(
        kind=kind,
        url=url,
        filename=_text(data.get("filename")),
        caption=_text(data.get("caption")),
        is_image=is_image,
        coordinates=coordinates,
        held_at=held_at,
    )


def _coordinates(url: Any) -> tuple[str, str] | None:
    """The latitude and longitude of a ``geo:`` URI, if it is one on this planet."""
    found = GEO.fullmatch(url) if isinstance(url, str) else None
    if found is None:
        return None
    latitude, longitude = found.groups()
    if abs(float(latitude)) > 90 or abs(float(longitude)) > 180:
        return None
    return latitude, longitude


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _event_item(event: ConversationEvent, names: dict[int, str]) -> Item:
    detail = dict(event.detail or {})
    if event.kind == EventKind.ASSIGNED:
        for end in ("from", "to"):
            who = detail.get(end)
            detail[f"{end}_name"] = names.get(who, "a former teammate") if who else None
    kind = "note" if event.kind == EventKind.NOTE else "event"
    return Item(kind=kind, at=event.created_at, id=event.id, event=event, detail=detail)
