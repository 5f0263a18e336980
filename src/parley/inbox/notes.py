"""Internal notes: what agents tell each other about a conversation, never the customer.

A note is a timeline event (``kind="note"``), not a message: nothing about it can reach
the outbox, so no channel, template or retry can ever send it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.errors import Invalid
from parley.inbox.models import ConversationEvent, EventKind
from parley.inbox.service import get_conversation
from parley.live.outbox import emit

MAX_NOTE_CHARS = 10_000


def add_note(
    session: Session,
    *,
    workspace_id: int,
    conversation_id: int,
    user_id: int,
    author_name: str,
    text: str,
) -> ConversationEvent:
    """Pin a note to the conversation's timeline and show it to the team live."""
    conversation = get_conversation(
        session, workspace_id=workspace_id, conversation_id=conversation_id
    )
    body = text.strip()
    if not body:
        raise Invalid("the note is empty")
    if len(body) > MAX_NOTE_CHARS:
        raise Invalid(f"a note holds at most {MAX_NOTE_CHARS} characters")
    note = ConversationEvent(
        workspace_id=workspace_id,
        conversation_id=conversation.id,
        kind=EventKind.NOTE,
        actor=author_name[:64],
        detail={"text": body, "user_id": user_id},
        created_at=utc_now(),
    )
    session.add(note)
    session.flush()
    emit(
        session,
        workspace_id=workspace_id,
        kind="message",
        conversation_id=conversation.id,
        data={"change": "note", "note_id": note.id},
    )
    return note
