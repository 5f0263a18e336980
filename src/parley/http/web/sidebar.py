"""The customer sidebar beside a conversation: who they are, what they bought, what is due.

Handlers stay thin: they parse the form, call one domain function in a transaction that
also emits the live event (so other agents' sidebars refresh only on a committed change),
and answer a form with a redirect back to the conversation, a fetch with JSON. A refused
form (the merge of two Shopify customers, say) gets a page that says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from parley.accounts.service import Login, audit_as
from parley.clock import utc_now
from parley.customers import profile as profiles
from parley.customers.service import get_customer
from parley.errors import Invalid, NotFound, ParleyError
from parley.http.web.auth import in_transaction
from parley.http.web.pages import db_of, path_int, render, signed_in
from parley.http.web.security import client_ip
from parley.inbox.models import Conversation, ConversationStatus
from parley.inbox.service import get_conversation
from parley.journeys import upcoming
from parley.live.outbox import emit


def sidebar_context(session: Session, login: Login, conversation: Conversation) -> dict[str, Any]:
    """What ``customer/_sidebar.html`` needs to render for this conversation's customer."""
    profile = profiles.customer_profile(
        session, workspace_id=login.workspace_id, customer_id=conversation.customer_id
    )
    return {
        "customer": profile.customer,
        "customer_profile": profile,
        "upcoming_sends": upcoming.upcoming_sends(
            session, workspace_id=login.workspace_id, customer_id=conversation.customer_id
        ),
    }


async def sidebar_fragment(request: Request) -> Response:
    """``GET /inbox/{id}/_sidebar``: the sidebar alone, for the live refresh."""
    login = signed_in(request)
    conversation_id = path_int(request, "conversation_id")

    def load(session: Session) -> dict[str, Any]:
        conversation = get_conversation(
            session, workspace_id=login.workspace_id, conversation_id=conversation_id
        )
        return {"conversation": conversation, **sidebar_context(session, login, conversation)}

    context = await in_transaction(db_of(request), load)
    return render(request, "customer/_sidebar.html", **context)


async def search(request: Request) -> Response:
    """``GET /customers/search?q=``: this workspace's customers for the merge form (JSON)."""
    login = signed_in(request)
    query = request.query_params.get("q", "")[:100]
    exclude = _int(request.query_params.get("exclude"))
    found = await in_transaction(
        db_of(request),
        lambda session: profiles.search_customers(
            session, workspace_id=login.workspace_id, query=query, exclude_id=exclude
        ),
    )
    return JSONResponse(
        {"customers": [match.as_json() for match in found]}, headers={"Cache-Control": "no-store"}
    )


async def merge(request: Request) -> Response:
    """``POST /customers/{id}/merge``: fold customer ``other`` into this one, with a reason."""
    login = signed_in(request)
    customer_id = path_int(request, "customer_id")
    form = await request.form()
    other = _int(_field(form, "other"))
    reason = _field(form, "reason")
    conversation_id = _int(_field(form, "conversation_id"))

    def work(session: Session) -> dict[str, Any]:
        if other is None:
            get_customer(session, workspace_id=login.workspace_id, customer_id=customer_id)
            raise Invalid("choose the customer to merge into this one")
        target = _conversation(session, login, conversation_id)
        record = profiles.merge_by_agent(
            session,
            workspace_id=login.workspace_id,
            keep_id=customer_id,
            merge_id=other,
            reason=reason,
            agent_name=login.name,
        )
        audit_as(
            session,
            login,
            "customer.merge",
            now=utc_now(),
            ip=client_ip(request),
            detail={"merge_id": record.id, "kept": customer_id, "merged": other},
        )
        _announce(session, login, target, customer_id)
        return {"merge_id": record.id, "conversation_id": target}

    return await _answer(request, work, conversation_id)


async def unmerge(request: Request) -> Response:
    """``POST /customers/{id}/merges/{merge_id}/unmerge``: undo a merge this customer was in."""
    login = signed_in(request)
    customer_id = path_int(request, "customer_id")
    merge_id = path_int(request, "merge_id")
    form = await request.form()
    conversation_id = _int(_field(form, "conversation_id"))

    def work(session: Session) -> dict[str, Any]:
        target = _conversation(session, login, conversation_id)
        record = profiles.unmerge_by_agent(
            session,
            workspace_id=login.workspace_id,
            customer_id=customer_id,
            merge_id=merge_id,
            reason=_field(form, "reason"),
            agent_name=login.name,
        )
        audit_as(
            session,
            login,
            "customer.unmerge",
            now=utc_now(),
            ip=client_ip(request),
            detail={"merge_id": record.id},
        )
        _announce(session, login, target, customer_id)
        return {"merge_id": record.id, "conversation_id": target}

    return await _answer(request, work, conversation_id)


async def cancel_send(request: Request) -> Response:
    """``POST /customers/{id}/upcoming/{job_id}/cancel``: stop one scheduled journey send."""
    login = signed_in(request)
    customer_id = path_int(request, "customer_id")
    job_id = path_int(request, "job_id")
    form = await request.form()
    conversation_id = _int(_field(form, "conversation_id"))

    def work(session: Session) -> dict[str, Any]:
        target = _conversation(session, login, conversation_id)
        send = upcoming.cancel_upcoming(
            session,
            workspace_id=login.workspace_id,
            customer_id=customer_id,
            job_id=job_id,
            agent_name=login.name,
        )
        _announce(session, login, target, customer_id)
        return {"cancelled": send.job_id, "journey": send.journey_name, "conversation_id": target}

    return await _answer(request, work, conversation_id)


def _conversation(session: Session, login: Login, conversation_id: int | None) -> int | None:
    """The conversation the form came from, checked to be this workspace's."""
    if conversation_id is None:
        return None
    return get_conversation(
        session, workspace_id=login.workspace_id, conversation_id=conversation_id
    ).id


def _announce(
    session: Session, login: Login, conversation_id: int | None, customer_id: int
) -> None:
    """Tell every agent watching this customer's conversations that the sidebar changed."""
    watched = {conversation_id} if conversation_id is not None else set()
    watched.update(
        session.scalars(
            select(Conversation.id).where(
                Conversation.workspace_id == login.workspace_id,
                Conversation.customer_id == customer_id,
                Conversation.status != ConversationStatus.RESOLVED,
            )
        )
    )
    for watched_id in sorted(watched):
        emit(
            session,
            workspace_id=login.workspace_id,
            kind="conversation",
            conversation_id=watched_id,
            data={"change": "customer"},
        )


async def _answer(
    request: Request, work: Callable[[Session], dict[str, Any]], conversation_id: int | None
) -> Response:
    """Run the write; JSON for a fetch, a redirect (or a refusal page) for a form."""
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        result: dict[str, Any] = await in_transaction(db_of(request), work)
    except NotFound:
        raise
    except ParleyError as exc:
        if wants_json:
            raise
        return render(
            request,
            "customer/refused.html",
            status_code=exc.status_code,
            message=exc.message,
            back=f"/inbox/{conversation_id}" if conversation_id else "/inbox",
        )
    if wants_json:
        return JSONResponse({"ok": True, **result})
    target = result.get("conversation_id")
    return RedirectResponse(f"/inbox/{target}" if target else "/inbox", status_code=303)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else None


def sidebar_routes() -> list[Route]:
    return [
        Route("/inbox/{conversation_id:int}/_sidebar", sidebar_fragment, methods=["GET"]),
        Route("/customers/search", search, methods=["GET"]),
        Route("/customers/{customer_id:int}/merge", merge, methods=["POST"]),
        Route(
            "/customers/{customer_id:int}/merges/{merge_id:int}/unmerge", unmerge, methods=["POST"]
        ),
        Route(
            "/customers/{customer_id:int}/upcoming/{job_id:int}/cancel",
            cancel_send,
            methods=["POST"],
        ),
    ]
