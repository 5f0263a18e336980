"""The templates a store sends with: its own where it wrote one, parley's defaults elsewhere."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.db.base import table_of
from parley.db.upsert import insert_for
from parley.errors import Invalid
from parley.messaging import postal_address
from parley.messaging.default_templates import default_template
from parley.messaging.models import MessageTemplate
from parley.messaging.templates import TemplateContent, TemplateError, TemplateRenderer
from parley.messaging.types import MessageType


def templates_for(
    session: Session, *, workspace_id: int, message_type: MessageType
) -> dict[ChannelKind, TemplateContent]:
    """The content per channel for one message type."""
    found: dict[ChannelKind, TemplateContent] = {}
    for channel in ChannelKind:
        content = default_template(message_type, channel)
        if content is not None:
            found[channel] = content
    stored = session.scalars(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id,
            MessageTemplate.message_type == message_type,
        )
    )
    for row in stored:
        found[ChannelKind(row.channel)] = TemplateContent.from_dict(row.content)
    return found


def save_template(
    session: Session,
    *,
    workspace_id: int,
    message_type: MessageType,
    channel: ChannelKind,
    content: dict[str, Any],
    renderer: TemplateRenderer | None = None,
) -> TemplateContent:
    """Store a store's own wording after checking it compiles inside the sandbox."""
    try:
        parsed = TemplateContent.from_dict(content)
        (renderer or TemplateRenderer()).validate(parsed)
        postal_address.lint(message_type, channel, parsed)
    except (TemplateError, TypeError, ValueError, KeyError) as exc:
        raise Invalid(f"template for {message_type} on {channel} is not valid: {exc}") from exc
    statement = insert_for(session, table_of(MessageTemplate)).values(
        workspace_id=workspace_id,
        message_type=message_type,
        channel=channel,
        content=parsed.to_dict(),
        updated_at=utc_now(),
    )
    statement = statement.on_conflict_do_update(
        index_elements=["workspace_id", "message_type", "channel"],
        set_={"content": statement.excluded.content, "updated_at": statement.excluded.updated_at},
    )
    session.execute(statement)
    return parsed
