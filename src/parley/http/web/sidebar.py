"""The customer sidebar beside a conversation: who they are and what they bought."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.routing import Route

from parley.accounts.service import Login
from parley.customers.service import get_customer
from parley.inbox.models import Conversation


def sidebar_context(session: Session, login: Login, conversation: Conversation) -> dict[str, Any]:
    """What ``customer/_sidebar.html`` needs to render for this conversation's customer."""
    customer = get_customer(
        session, workspace_id=login.workspace_id, customer_id=conversation.customer_id
    )
    return {"customer": customer}


def sidebar_routes() -> list[Route]:
    return []
