"""The composer under a conversation: replies, notes and the agent's moves on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.routing import Route

from parley.accounts.service import Login
from parley.inbox.models import Conversation


def composer_context(session: Session, login: Login, conversation: Conversation) -> dict[str, Any]:
    """What ``conversation/_composer.html`` needs to render for this conversation."""
    return {"conversation": conversation}


def composer_routes() -> list[Route]:
    return []
