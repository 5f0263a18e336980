"""The composer under a conversation: replies (and sending again one an outage stopped),
notes and the agent's moves on it.

Every route here is a thin handler: it parses the form, calls one domain function in a
transaction scoped to the signed-in agent's workspace, and answers a browser form with a
303 back to the conversation, or the app's own fetch (``Accept: application/json``) with
JSON. Refusals (a closed WhatsApp window, an opt-out) come back as the domain's reason:
JSON for a fetch, so ``composer.js`` keeps the draft and shows it; a page for a form.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from parley import dead_letter
from parley.accounts import service as accounts
from parley.accounts.service import Login
from parley.channels.base import ChannelKind
from parley.clock import utc_now, zone_of
from parley.errors import Invalid, ParleyError
from parley.http.web.auth import in_transaction
from parley.http.web.pages import db_of, path_int, render, signed_in
from parley.inbox import canned, notes
from parley.inbox import service as inbox
from parley.inbox.models import Conversation, ConversationStatus
from parley.messaging import replies
from parley.workspaces.models import Workspace

T = TypeVar("T")

SNOOZE_PRESETS: dict[str, str] = {
    "1h": "1 hour",
    "tomorrow": "Tomorrow 9:00",
    "monday": "Next Monday 9:00",
}


def composer_context(session: Session, login: Login, conversation: Conversation) -> dict[str, Any]:
    """What ``conversation/_composer.html`` needs to render for this conversation."""
    workspace = session.get_one(Workspace, login.workspace_id)
    options = replies.reply_channels(
        session, workspace=workspace, conversation=conversation, now=utc_now()
    )
    selected = next((o for o in options if o.is_available), options[0])
    return {
        "conversation": conversation,
        "reply_options": options,
        "selected_channel": selected.channel,
        "approved_templates": replies.approved_templates(session, workspace_id=workspace.id),
        "members": accounts.members(session, workspace_id=login.workspace_id),
        "canned_replies": canned.list_canned(session, workspace_id=login.workspace_id),
        "snooze_presets": SNOOZE_PRESETS,
        "draft_key": secrets.token_urlsafe(12),
        "part": "all",
    }


def snooze_until(choice: str, at: str, *, timezone: str, now: datetime) -> datetime:
    """When a snooze ends: a preset read in the store's timezone (so "tomorrow 9:00" is
    the store's morning), or a ``datetime-local`` value in that same timezone."""
    zone = zone_of(timezone)
    local = now.astimezone(zone)
    nine = time(9, 0)
    if at.strip():
        try:
            moment = datetime.fromisoformat(at.strip())
        except ValueError as exc:
            raise Invalid("the snooze time is not a date and time") from exc
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(now.tzinfo)
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "tomorrow":
        day = local.date() + timedelta(days=1)
    elif choice == "monday":
        day = local.date() + timedelta(days=7 - local.weekday())
    else:
        raise Invalid("choose how long to snooze")
    return datetime.combine(day, nine, tzinfo=zone).astimezone(now.tzinfo)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "status": conversation.status,
        "owner": conversation.owner,
        "assignee_id": conversation.assignee_id,
        "snoozed_until": (
            conversation.snoozed_until.isoformat() if conversation.snoozed_until else None
        ),
    }


async def _act(
    request: Request, work: Callable[[Session], T], shape: Callable[[T], dict[str, Any]]
) -> Response:
    """Run one move and answer it: JSON for a fetch, 303 back for a form."""
    conversation_id = path_int(request, "id")
    try:
        result = await in_transaction(db_of(request), work)
    except ParleyError as exc:
        if _wants_json(request):
            raise
        return render(
            request,
            "error.html",
            status_code=exc.status_code,
            title="Not done",
            message=exc.message,
        )
    if _wants_json(request):
        return JSONResponse({"ok": True, **shape(result)})
    return RedirectResponse(f"/inbox/{conversation_id}", status_code=303)


def _form_text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def reply(request: Request) -> Response:
    """``POST /inbox/{id}/reply``: free text, or an approved WhatsApp template."""
    login = signed_in(request)
    conversation_id = path_int(request, "id")
    form = await request.form()
    try:
        channel = ChannelKind(_form_text(form, "channel"))
    except ValueError:
        channel = None

    def work(session: Session) -> Any:
        if channel is None:
            inbox.get_conversation(
                session, workspace_id=login.workspace_id, conversation_id=conversation_id
            )
            raise Invalid("choose a channel to reply on")
        return inbox.send_reply(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            user_id=login.user_id,
            agent_name=login.name,
            channel=channel,
            text=_form_text(form, "body"),
            template_name=_form_text(form, "template").strip() or None,
            draft_key=_form_text(form, "draft_key") or secrets.token_urlsafe(12),
        )

    return await _act(
        request,
        work,
        lambda message: {
            "message": {
                "id": message.id,
                "channel": message.channel,
                "status": message.status,
                "is_template": message.template is not None,
            }
        },
    )


async def note(request: Request) -> Response:
    """``POST /inbox/{id}/note``: an internal note, for the team only."""
    login = signed_in(request)
    conversation_id = path_int(request, "id")
    form = await request.form()
    return await _act(
        request,
        lambda session: notes.add_note(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            user_id=login.user_id,
            author_name=login.name,
            text=_form_text(form, "body"),
        ),
        lambda event: {"note": {"id": event.id}},
    )


async def send_again(request: Request) -> Response:
    """``POST /inbox/{id}/messages/{message_id}/send-again``: a reply or journey message
    that gave up after every retry (a provider outage), sent again once it is back."""
    login = signed_in(request)
    conversation_id = path_int(request, "id")
    message_id = path_int(request, "message_id")
    return await _act(
        request,
        lambda session: dead_letter.send_again(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            message_id=message_id,
        ),
        lambda message: {"message": {"id": message.id}},
    )


Move = Callable[[Session, Login, int], Conversation]


async def _move(request: Request, change: Move) -> Response:
    """One move on the conversation in the path, answered with its new state."""
    login = signed_in(request)
    conversation_id = path_int(request, "id")
    return await _act(
        request,
        lambda session: change(session, login, conversation_id),
        lambda conversation: {"conversation": _conversation_json(conversation)},
    )


async def assign(request: Request) -> Response:
    """``POST /inbox/{id}/assign``: ``assignee`` is a member's id, ``me``, or empty."""
    form = await request.form()
    choice = _form_text(form, "assignee").strip()

    def change(session: Session, login: Login, conversation_id: int) -> Conversation:
        assignee_id: int | None
        if choice == "me":
            assignee_id = login.user_id
        elif not choice:
            assignee_id = None
        elif choice.isdigit() and len(choice) <= 18:
            assignee_id = int(choice)
        else:
            # Never a member (nor, past 18 digits, a number the database can be asked
            # for): refused by the domain like any stranger's id.
            assignee_id = -1
        return inbox.assign(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            assignee_id=assignee_id,
            actor=login.name,
        )

    return await _move(request, change)


async def snooze(request: Request) -> Response:
    """``POST /inbox/{id}/snooze``: ``until`` a preset, or ``at`` a date and time."""
    form = await request.form()

    def change(session: Session, login: Login, conversation_id: int) -> Conversation:
        workspace = session.get_one(Workspace, login.workspace_id)
        until = snooze_until(
            _form_text(form, "until"),
            _form_text(form, "at"),
            timezone=workspace.timezone,
            now=utc_now(),
        )
        return inbox.set_status(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            status=ConversationStatus.SNOOZED,
            actor=login.name,
            snoozed_until=until,
        )

    return await _move(request, change)


def _status_move(status: ConversationStatus) -> Callable[[Request], Any]:
    async def move(request: Request) -> Response:
        return await _move(
            request,
            lambda session, login, conversation_id: inbox.set_status(
                session,
                workspace_id=login.workspace_id,
                conversation_id=conversation_id,
                status=status,
                actor=login.name,
            ),
        )

    move.__doc__ = f"``POST``: the conversation becomes {status}."
    return move


async def hand_back(request: Request) -> Response:
    """``POST /inbox/{id}/hand-back``: the assistant answers the customer again."""
    return await _move(
        request,
        lambda session, login, conversation_id: inbox.hand_back(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            actor=login.name,
        ),
    )


async def take_over(request: Request) -> Response:
    """``POST /inbox/{id}/take-over``: the assistant stops answering; a person does."""
    return await _move(
        request,
        lambda session, login, conversation_id: inbox.hand_off(
            session,
            workspace_id=login.workspace_id,
            conversation_id=conversation_id,
            reason=f"taken over by {login.name}",
            actor=login.name,
        ),
    )


async def composer_part(request: Request) -> Response:
    """``GET /inbox/{id}/_composer``: the channel-window part (``?part=moves``: the moves
    toolbar) re-rendered after a live event, without touching the agent's draft."""
    login = signed_in(request)
    conversation_id = path_int(request, "id")
    part = "moves" if request.query_params.get("part") == "moves" else "window"

    def load(session: Session) -> dict[str, Any]:
        conversation = inbox.get_conversation(
            session, workspace_id=login.workspace_id, conversation_id=conversation_id
        )
        return {**composer_context(session, login, conversation), "part": part}

    context = await in_transaction(db_of(request), load)
    return render(request, "conversation/_composer.html", **context)


async def canned_text(request: Request) -> Response:
    """``GET /inbox/{id}/canned/{canned_id}``: a canned reply filled in for this
    conversation, as ``{"text": ...}`` for the composer to insert."""
    login = signed_in(request)
    conversation_id = path_int(request, "id")
    canned_id = path_int(request, "canned_id")
    text = await in_transaction(
        db_of(request),
        lambda session: canned.render_canned(
            session, login=login, conversation_id=conversation_id, canned_id=canned_id
        ),
    )
    return JSONResponse({"text": text}, headers={"Cache-Control": "no-store"})


def composer_routes() -> list[Route]:
    return [
        Route("/inbox/{id:int}/reply", reply, methods=["POST"]),
        Route("/inbox/{id:int}/note", note, methods=["POST"]),
        Route("/inbox/{id:int}/messages/{message_id:int}/send-again", send_again, methods=["POST"]),
        Route("/inbox/{id:int}/assign", assign, methods=["POST"]),
        Route("/inbox/{id:int}/snooze", snooze, methods=["POST"]),
        Route(
            "/inbox/{id:int}/resolve", _status_move(ConversationStatus.RESOLVED), methods=["POST"]
        ),
        Route("/inbox/{id:int}/reopen", _status_move(ConversationStatus.OPEN), methods=["POST"]),
        Route("/inbox/{id:int}/hand-back", hand_back, methods=["POST"]),
        Route("/inbox/{id:int}/take-over", take_over, methods=["POST"]),
        Route("/inbox/{id:int}/_composer", composer_part, methods=["GET"]),
        Route("/inbox/{id:int}/canned/{canned_id:int}", canned_text, methods=["GET"]),
    ]
