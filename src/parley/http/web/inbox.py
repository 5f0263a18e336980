"""``/inbox``: the agents' conversation list and the conversation page.

``GET /inbox`` and ``GET /inbox/{id}`` render whole pages; ``/inbox/_list`` and
``/inbox/{id}/_timeline`` render the parts ``static/inbox.js`` swaps in when a live event
arrives. Every one of them reads in the signed-in agent's workspace only: an id from
another workspace is a 404 that says nothing about it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.accounts.service import Login
from parley.clock import utc_now
from parley.http.web.auth import in_transaction
from parley.http.web.composer import composer_context
from parley.http.web.media import media_routes, proxied
from parley.http.web.pages import db_of, path_int, render, signed_in
from parley.http.web.sidebar import sidebar_context
from parley.inbox import listing, reads
from parley.inbox.history import customer_history
from parley.inbox.models import Conversation
from parley.inbox.service import get_conversation


@dataclass(frozen=True)
class Header:
    """The conversation pane's heading."""

    customer_name: str
    assignee_name: str | None


def _list_context(session: Session, login: Login, request: Request) -> dict[str, Any]:
    """The list pane's context, for the filters in the request's query string."""
    page = listing.list_conversations(
        session,
        workspace_id=login.workspace_id,
        user_id=login.user_id,
        params=request.query_params,
    )
    return {
        "listing": page,
        "list_filters": page.filters,
        "statuses": listing.STATUS_TITLES,
        "channels": {kind: listing.CHANNEL_TITLES.get(kind, kind) for kind in listing.CHANNELS},
        "owners": listing.OWNERS,
        "labels": listing.LABELS,
    }


def _timeline_context(
    session: Session, login: Login, conversation: Conversation, media: Callable[[str], str]
) -> dict[str, Any]:
    reads.mark_read(session, conversation=conversation, user_id=login.user_id, now=utc_now())
    return {
        "conversation": conversation,
        "history": customer_history(session, conversation=conversation),
        "media_src": media,
    }


def _list_url(context: dict[str, Any], open_id: int | None) -> str:
    """Where ``inbox.js`` re-fetches the list pane: the same filters and page."""
    filters: listing.ListFilters = context["list_filters"]
    query = filters.query(page=filters.page)
    if open_id is not None:
        query += ("&" if query else "") + f"open={open_id}"
    return f"/inbox/_list?{query}"


def _media(request: Request) -> Callable[[str], str]:
    secret: str = request.app.state.settings.secret_key
    return lambda url: proxied(secret, url)


async def inbox_page(request: Request) -> Response:
    login = signed_in(request)
    context = await in_transaction(
        db_of(request), lambda session: _list_context(session, login, request)
    )
    return render(request, "inbox.html", open_id=None, list_url=_list_url(context, None), **context)


async def list_part(request: Request) -> Response:
    """The list pane alone (``open`` keeps the open conversation highlighted)."""
    login = signed_in(request)
    context = await in_transaction(
        db_of(request), lambda session: _list_context(session, login, request)
    )
    open_id = request.query_params.get("open", "")
    return render(
        request, "inbox/_list.html", open_id=int(open_id) if open_id.isdigit() else None, **context
    )


async def conversation_page(request: Request) -> Response:
    login = signed_in(request)
    conversation_id = path_int(request, "conversation_id")
    media = _media(request)

    def view(session: Session) -> dict[str, Any]:
        conversation = get_conversation(
            session, workspace_id=login.workspace_id, conversation_id=conversation_id
        )
        timeline = _timeline_context(session, login, conversation, media)
        listed = _list_context(session, login, request)
        teammates = {member.user_id: member.name for member in listed["listing"].teammates}
        header = Header(
            customer_name=listing.customer_name(
                session, workspace_id=login.workspace_id, customer_id=conversation.customer_id
            ),
            assignee_name=teammates.get(conversation.assignee_id or 0),
        )
        return {
            **composer_context(session, login, conversation),
            **sidebar_context(session, login, conversation),
            **listed,
            **timeline,
            "header": header,
        }

    context = await in_transaction(db_of(request), view)
    return render(
        request,
        "inbox.html",
        open_id=conversation_id,
        list_url=_list_url(context, conversation_id),
        **context,
    )


async def timeline_part(request: Request) -> Response:
    login = signed_in(request)
    conversation_id = path_int(request, "conversation_id")
    media = _media(request)

    def view(session: Session) -> dict[str, Any]:
        conversation = get_conversation(
            session, workspace_id=login.workspace_id, conversation_id=conversation_id
        )
        return _timeline_context(session, login, conversation, media)

    context = await in_transaction(db_of(request), view)
    return render(request, "conversation/_timeline.html", **context)


def inbox_routes() -> list[Route]:
    return [
        Route("/inbox", inbox_page, methods=["GET"]),
        Route("/inbox/_list", list_part, methods=["GET"]),
        Route("/inbox/{conversation_id:int}", conversation_page, methods=["GET"]),
        Route("/inbox/{conversation_id:int}/_timeline", timeline_part, methods=["GET"]),
        *media_routes(),
    ]
