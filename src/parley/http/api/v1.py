"""``/api/v1``: canonical events from any platform, and a window on what parley did.

Every route resolves the workspace from its API key (``Authorization: Bearer <key>``) and
scopes every query by it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley import events, held_messages
from parley.accounts.service import audit
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.db import Database
from parley.db.group_commit import group_commit
from parley.db.text import REASON as UNSTORABLE_REASON
from parley.db.text import holds_unstorable
from parley.errors import Conflict, Invalid, NotFound, Unauthenticated, describe_problems
from parley.http.responses import EXCEPTION_HANDLERS, api_http_error
from parley.http.web.security import client_ip
from parley.jobs import queue
from parley.jobs.models import Job
from parley.journeys import service as journeys
from parley.journeys.models import Journey
from parley.messaging import catalog, marketing_controls
from parley.messaging.marketing_controls import Actor
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.models import Message, MessageStatus
from parley.messaging.types import MessageType
from parley.privacy import service as privacy
from parley.privacy.export import export_schema
from parley.privacy.models import PrivacyRequest, RequestKind
from parley.privacy.service import CustomerRequest, Subject
from parley.store_events import service as store_events
from parley.store_events.models import DELIVERY_KEY_LENGTH
from parley.store_events.service import Delivery, DeliveryRecord
from parley.workspaces import service as workspaces
from parley.workspaces.access import KnownApiKeys, known_api_keys
from parley.workspaces.models import Workspace
from parley.workspaces.service import WorkspaceAccess

IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=DELIVERY_KEY_LENGTH,
        description="Your key for this request: the same request again under it is answered"
        " as a duplicate, a different one is refused (409)",
    ),
]
"""A longer key is refused (422) before anything is written: it could not be kept whole."""

RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""An id in a path. A larger one is refused (422) before the database is asked: no 64-bit
column holds it, and the driver would fail the request."""

MAX_PAGE = 1000


class ApiError(BaseModel):
    """Every refusal's body: what was wrong, in words a developer can act on."""

    error: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ApiError, "description": meaning}
    for status, meaning in (
        (400, "The request cannot be read"),
        (401, "No API key, or one no store holds"),
        (403, "The key may not do this"),
        (404, "Nothing of this store's by that id or key"),
        (409, "Refused as things stand: a reused Idempotency-Key, a state that forbids it"),
        (422, "A field is missing or wrong; the error names it"),
        (503, "Storage is unavailable or busy: retry after Retry-After seconds"),
    )
}
"""What any operation may answer besides its success, all as :class:`ApiError`: in the
OpenAPI document, so a client generated from it expects them (checked by Schemathesis)."""


def _page_size(limit: int) -> int:
    """A list's ``limit`` kept between 1 and :data:`MAX_PAGE`: below 1 is one row (never
    every row, as a negative SQL limit reads on SQLite), above is a full page."""
    return max(1, min(limit, MAX_PAGE))


class EventIn(BaseModel):
    """A canonical event from any platform (see ``parley.events`` for payloads)."""

    id: str | None = Field(
        default=None, max_length=DELIVERY_KEY_LENGTH, description="Your id, for de-duplication"
    )
    type: events.EventType
    occurred_at: events.Moment | None = None
    payload: dict[str, Any]


class PrivacyCustomerIn(BaseModel):
    """Who a privacy request is about: at least one of your id, their email, their phone."""

    id: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)


class PrivacyRequestIn(BaseModel):
    """A customer's erasure or access request, from a platform other than Shopify (whose
    compliance webhooks make the same requests)."""

    kind: RequestKind
    customer: PrivacyCustomerIn
    orders: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=10_000, description="Your order ids it also covers"
    )


class MarketingRateIn(BaseModel):
    """The store's marketing rate; null lifts it."""

    per_hour: int | None = Field(
        default=None, description="At most this many marketing messages an hour"
    )


class JourneyPatch(BaseModel):
    is_enabled: bool | None = None
    definition: dict[str, Any] | None = None

    def audited(self, journey: Journey) -> dict[str, Any]:
        """What the audit log keeps of this change: the switch, and the version a new
        definition made (the definition itself is in the journey's versions)."""
        detail: dict[str, Any] = {"journey": journey.key}
        if self.is_enabled is not None:
            detail["is_enabled"] = self.is_enabled
        if self.definition is not None:
            detail["version"] = journey.version
        return detail


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _api_key(authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Unauthenticated("send the workspace API key as 'Authorization: Bearer <key>'")
    return key


def _workspace(session: Session, api_key: str) -> Workspace:
    workspace = workspaces.find_by_api_key(session, api_key=api_key)
    if workspace is None:
        raise Unauthenticated("unknown API key")
    return workspace


@dataclass(frozen=True)
class _CheckedEvent:
    """An event whose payload parsed and whose key was valid a moment ago: ready to write."""

    key_hash: str
    known_keys: KnownApiKeys
    delivery: Delivery
    event: events.Event


def _check_event(
    db: Database, api_key: str, event: EventIn, raw: bytes, idempotency_key: str | None
) -> _CheckedEvent:
    """Everything that may refuse the event, before any write: the payload (422), then a
    key this process has not seen valid (401), read in a short transaction of its own."""
    try:
        payload = events.parse_payload(event.type, event.payload)
    except ValidationError as exc:
        problems = describe_problems(exc.errors())
        raise Invalid(f"payload is not a valid {event.type}: {problems}") from exc
    key_hash = workspaces.hash_api_key(api_key)
    known_keys = known_api_keys(db)
    if key_hash not in known_keys:
        with db.transaction() as session:
            _access(session, key_hash)
        known_keys.remember(key_hash)
    key = idempotency_key or event.id or hashlib.sha256(raw).hexdigest()
    return _CheckedEvent(
        key_hash=key_hash,
        known_keys=known_keys,
        delivery=Delivery(
            source="api", delivery_key=key, topic=event.type, headers={}, body=raw.decode()
        ),
        event=events.Event.build(event.type, payload, _occurred_at(event, payload)),
    )


def _occurred_at(event: EventIn, payload: events.Payload) -> datetime:
    """When the event happened: as the client says, else as its payload says (its
    ``updated_at``, else its ``created_at``), else now, as the Shopify mapping dates its
    events; exit rules and delivery dates go by it, whichever way an event came."""
    stamped: datetime | None = getattr(payload, "updated_at", None) or getattr(
        payload, "created_at", None
    )
    return event.occurred_at or stamped or utc_now()


def _access(session: Session, key_hash: str) -> WorkspaceAccess:
    workspace = workspaces.find_access_by_key_hash(session, key_hash=key_hash)
    if workspace is None:
        raise Unauthenticated("unknown API key")
    return workspace


_ACCESS_IN_SESSION = "parley.api.access"
API_REVIEWER = "the API"
"""Who a change made with the store's API key is put down to: a held message's review, and
the audit log's actor (as the Settings pages put down the admin who made it)."""


def _audit_api(
    session: Session, request: Request, workspace: Workspace, action: str, detail: dict[str, Any]
) -> None:
    """One audit row for a change made through the API, as its Settings page writes one."""
    audit(
        session,
        workspace_id=workspace.id,
        action=action,
        now=utc_now(),
        actor_email=API_REVIEWER,
        ip=client_ip(request),
        detail=detail,
    )


def _stage_events(session: Session, group: list[_CheckedEvent]) -> None:
    """A group commit's events: each key read once for the group, the deliveries recorded
    together and their shoppers looked up together, before each event is applied.

    A key revoked since it was seen valid fails the stage, and with it the shared write:
    each event is then written alone, and only the revoked key's are refused.
    """
    access = session.info.setdefault(_ACCESS_IN_SESSION, {})
    for checked in group:
        if checked.key_hash not in access:
            access[checked.key_hash] = _access_or_forget(session, checked)
    store_events.record_deliveries(
        session,
        [
            DeliveryRecord(access[checked.key_hash].id, checked.delivery, store_events.PROCESSED)
            for checked in group
        ],
    )
    store_events.prefetch_shoppers(
        session, [(access[checked.key_hash].id, [checked.event]) for checked in group]
    )


def _access_or_forget(session: Session, checked: _CheckedEvent) -> WorkspaceAccess:
    """The key's workspace, read in this transaction; a key no longer valid is forgotten."""
    try:
        return _access(session, checked.key_hash)
    except Unauthenticated:
        checked.known_keys.forget(checked.key_hash)
        raise


def _store_event(session: Session, checked: _CheckedEvent) -> dict[str, Any]:
    """Store and plan a checked event in the caller's (maybe shared) transaction; acts on
    nothing outside it but this process's memory of valid keys, as a group commit may
    roll it back and run it again.

    The key is read again in this transaction (once for a group, by its stage), so one
    revoked since it was last seen valid is refused now.
    """
    access: dict[str, WorkspaceAccess] = session.info.get(_ACCESS_IN_SESSION, {})
    workspace = access.get(checked.key_hash) or _access_or_forget(session, checked)
    result = store_events.ingest(
        session, workspace=workspace, delivery=checked.delivery, mapped=[checked.event]
    )
    if result.is_duplicate:
        if not store_events.repeats_stored(
            session, workspace_id=workspace.id, delivery=checked.delivery
        ):
            raise Conflict(
                f"idempotency key {checked.delivery.delivery_key!r} was first used for a"
                " different event; a new event needs a new key"
            )
        return {"status": "duplicate"}
    return {"status": "accepted", "journeys_started": result.runs_started}


def _first_use(
    session: Session,
    workspace: Workspace,
    idempotency_key: str | None,
    request: str,
    body: dict[str, Any],
) -> bool:
    """Whether a change is made for the first time under the client's ``Idempotency-Key``
    (always, without one). The key is kept beside the store's deliveries with the request
    it came with, ``request`` (method and path) and ``body``: the same request again is a
    retry, made once and answered as the first was; another request under it is refused
    (409), never taken for a retry (W14)."""
    if idempotency_key is None:
        return True
    delivery = Delivery(
        source="api",
        delivery_key=idempotency_key,
        topic=request[:DELIVERY_KEY_LENGTH],
        headers={},
        body=json.dumps({"request": request, "body": body}, sort_keys=True),
    )
    if store_events.record_delivery(
        session, workspace=workspace, delivery=delivery, status=store_events.PROCESSED, reason=None
    ):
        return True
    if not store_events.repeats_stored(session, workspace_id=workspace.id, delivery=delivery):
        raise Conflict(
            f"idempotency key {idempotency_key!r} was first used for a different request;"
            " a new request needs a new key"
        )
    return False


UNKEYED = "unkeyed:"
"""The stored key of a privacy request sent without one: unique, so it repeats nothing."""


def _take_privacy_request(
    db: Database, api_key: str, body: PrivacyRequestIn, raw: bytes, idempotency_key: str | None
) -> dict[str, Any]:
    """Store the request and queue the job that carries it out.

    The client's ``Idempotency-Key`` makes a retry safe: the same request under it again is
    a duplicate, another one is refused (409) rather than dropped. Once an erasure has
    emptied the first request's stored body, nothing tells a late retry from another
    request, so both are refused: a retry sent again under a new key does the work twice,
    which erasing or gathering can bear, while another customer's request answered as a
    duplicate would never be carried out.

    Without a key every request is one of its own, not keyed by its body as an event is:
    an erasure asked again in the same words, after the customer came back, must be
    carried out again.
    """
    subject = Subject(
        platform_customer_id=body.customer.id,
        email=body.customer.email,
        phone=body.customer.phone,
        orders=tuple(body.orders),
    )
    if not subject.names_someone():
        raise Invalid("customer: give at least one of id, email and phone")
    delivery = Delivery(
        source="api",
        delivery_key=idempotency_key or f"{UNKEYED}{uuid.uuid4().hex}",
        topic=f"privacy/{body.kind}",
        headers={},
        body=raw.decode(),
    )
    with db.transaction() as session:
        workspace = _workspace(session, api_key)
        delivery_id = store_events.record_delivery(
            session,
            workspace=workspace,
            delivery=delivery,
            status=store_events.PROCESSED,
            reason=None,
        )
        if delivery_id is None:
            if not store_events.repeats_stored(
                session, workspace_id=workspace.id, delivery=delivery
            ):
                raise Conflict(
                    f"idempotency key {delivery.delivery_key!r} was first used for a different"
                    " request, or for one carried out and erased since; a new request needs"
                    " a new key"
                )
            return {"status": "duplicate"}
        request_id = privacy.receive_customer_request(
            session,
            workspace_id=workspace.id,
            request=CustomerRequest(kind=body.kind, subject=subject),
            delivery_id=delivery_id,
            now=utc_now(),
        )
        return {
            "status": "accepted",
            "request": _privacy_out(session.get_one(PrivacyRequest, request_id)),
        }


def _privacy_out(request: PrivacyRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind,
        "customer_id": request.reference,
        "status": request.status,
        "summary": request.summary,
        "has_export": request.export is not None,
        "received_at": request.received_at.isoformat(),
        "due_at": request.due_at.isoformat(),
        "completed_at": request.completed_at.isoformat() if request.completed_at else None,
    }


def _message_out(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "customer_id": message.customer_id,
        "journey_run_id": message.journey_run_id,
        "step": message.step_index,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "author": message.author,
        "sender": message.sender,
        "type": message.message_type,
        "purpose": message.purpose,
        "channel": message.channel,
        "recipient": message.recipient,
        "subject": message.subject,
        "body": message.body,
        "template": message.template,
        "status": message.status,
        "reason": message.status_reason,
        "decision": message.decision,
        "provider_message_id": message.provider_message_id,
        "attempts": message.attempts,
        "created_at": message.created_at.isoformat(),
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
    }


async def _storable_text(request: Request) -> None:
    """Refuse (422, with the reason) a request whose path, query or JSON body holds text
    no database can store, before anything is read or written: the client can fix it,
    and the query would fail with a 500 on every retry (:mod:`parley.db.text`). Only a
    body that escapes a character can hold one, so most are never parsed here."""
    given = [*request.path_params.values(), *request.query_params.values()]
    if holds_unstorable([value for value in given if isinstance(value, str)]):
        raise Invalid(UNSTORABLE_REASON)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()
    if b"\\u" not in body:
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # not JSON: the route's own validation says so
    if holds_unstorable(parsed):
        raise Invalid(UNSTORABLE_REASON)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """Request validation answers in the same ``{"error": ...}`` shape as every other error."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"error": describe_problems(exc.errors())}, status_code=422)


def _job_out(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "payload": job.payload,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "waiting_for": job.waiting_for,
        "due_at": job.due_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
    }


def _add_marketing_routes(api: FastAPI) -> None:
    """The store's kill switch and marketing rate, for its own tools and runbooks: the
    same controls as Settings → General, audited as made by the API."""

    def change(
        request: Request, api_key: str, set_control: Callable[[Session, Workspace, Actor], bool]
    ) -> dict[str, Any]:
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            set_control(session, workspace, Actor(API_REVIEWER, ip=client_ip(request)))
            return marketing_controls.controls_of(session, workspace).as_json()

    @api.get("/marketing")
    def marketing(request: Request, api_key: Annotated[str, Depends(_api_key)]) -> dict[str, Any]:
        """Whether the store's marketing is paused, its rate, and its sends waiting, by
        what they wait for."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            return marketing_controls.controls_of(session, workspace).as_json()

    def switch(request: Request, api_key: str, *, paused: bool) -> dict[str, Any]:
        return change(
            request,
            api_key,
            lambda s, w, actor: marketing_controls.set_paused(
                s, w, paused=paused, actor=actor, now=utc_now()
            ),
        )

    @api.post("/marketing/pause")
    def pause_marketing(
        request: Request, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """Hold every marketing send of the store from the next batch; order updates go."""
        return switch(request, api_key, paused=True)

    @api.post("/marketing/resume")
    def resume_marketing(
        request: Request, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """Let the held marketing go, each send decided in the next batch."""
        return switch(request, api_key, paused=False)

    @api.put("/marketing/rate")
    def set_marketing_rate(
        request: Request, rate: MarketingRateIn, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """Set or lift the store's marketing rate; sends waiting for it are re-planned."""
        wanted = MarketingRate(rate.per_hour)
        return change(
            request,
            api_key,
            lambda s, w, actor: marketing_controls.set_rate(
                s, w, wanted, actor=actor, now=utc_now()
            ),
        )


def _add_privacy_routes(api: FastAPI) -> None:
    """Customers' privacy requests from platforms other than Shopify."""

    @api.post("/privacy-requests", status_code=202)
    async def post_privacy_request(
        request: Request,
        body: PrivacyRequestIn,
        api_key: Annotated[str, Depends(_api_key)],
        idempotency_key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """A customer's erasure or access request; carried out by a job, so the answer is
        the request as received (``GET`` it again to see it done)."""
        raw = await request.body()
        return await run_in_threadpool(
            _take_privacy_request, _db(request), api_key, body, raw, idempotency_key
        )

    @api.get("/privacy-requests")
    def list_privacy_requests(
        request: Request, api_key: Annotated[str, Depends(_api_key)], limit: int = 100
    ) -> dict[str, Any]:
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            found = privacy.list_requests(
                session, workspace_id=workspace.id, limit=_page_size(limit)
            )
            return {"requests": [_privacy_out(item) for item in found]}

    @api.get(
        "/privacy-requests/export-schema",
        responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}}},
    )
    def privacy_export_schema() -> JSONResponse:
        """The JSON Schema every export validates against (``parley.privacy-export/1``):
        public, it holds no one's data."""
        return JSONResponse(export_schema(), media_type="application/schema+json")

    @api.get("/privacy-requests/{request_id}/export")
    def privacy_export(
        request: Request, request_id: RowId, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """An access request's data (404 until it is gathered, or once erased)."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            export = privacy.find_export(session, workspace_id=workspace.id, request_id=request_id)
            if export is None:
                raise NotFound("no such access request, or its data is not gathered or was erased")
            return export


def _add_journey_routes(api: FastAPI) -> None:
    """The store's journeys and message wording, as the Journeys page edits them; each
    change audited as made by the API and made once per ``Idempotency-Key``."""

    @api.get("/journeys")
    def list_journeys(
        request: Request, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            return {
                "journeys": [
                    {
                        "key": j.key,
                        "name": j.name,
                        "is_enabled": j.is_enabled,
                        "version": j.version,
                        "definition": j.definition,
                    }
                    for j in journeys.list_journeys(session, workspace_id=workspace.id)
                ]
            }

    @api.patch("/journeys/{key}")
    def patch_journey(
        request: Request,
        key: str,
        change: JourneyPatch,
        api_key: Annotated[str, Depends(_api_key)],
        idempotency_key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Switch a journey, or give it a new definition; a retry under the same
        ``Idempotency-Key`` is answered with the journey, changed once."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            body = change.model_dump(mode="json", exclude_unset=True)
            if _first_use(session, workspace, idempotency_key, f"PATCH /journeys/{key}", body):
                journey = journeys.update_journey(
                    session,
                    workspace_id=workspace.id,
                    key=key,
                    definition=change.definition,
                    is_enabled=change.is_enabled,
                )
                _audit_api(session, request, workspace, "journey_changed", change.audited(journey))
            else:
                journey = session.scalars(
                    select(Journey).where(Journey.workspace_id == workspace.id, Journey.key == key)
                ).one()
            return {
                "key": journey.key,
                "is_enabled": journey.is_enabled,
                "version": journey.version,
            }

    @api.put("/templates/{message_type}/{channel}")
    def put_template(
        request: Request,
        message_type: MessageType,
        channel: ChannelKind,
        content: dict[str, Any],
        api_key: Annotated[str, Depends(_api_key)],
        idempotency_key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        """Save a message's wording on a channel; a retry under the same
        ``Idempotency-Key`` saves nothing again."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            target = f"PUT /templates/{message_type}/{channel}"
            if not _first_use(session, workspace, idempotency_key, target, content):
                return {"status": "saved"}
            catalog.save_template(
                session,
                workspace_id=workspace.id,
                message_type=message_type,
                channel=channel,
                content=content,
            )
            _audit_api(
                session,
                request,
                workspace,
                "template_changed",
                {"message": str(message_type), "channel": str(channel)},
            )
        return {"status": "saved"}


def create_api() -> FastAPI:
    api = FastAPI(
        title="parley API",
        version="1",
        exception_handlers={
            **EXCEPTION_HANDLERS,
            RequestValidationError: _invalid_request,
            StarletteHTTPException: api_http_error,
        },
        responses=ERROR_RESPONSES,
        dependencies=[Depends(_storable_text)],
    )

    @api.post("/events", status_code=202)
    async def post_event(
        request: Request,
        event: EventIn,
        api_key: Annotated[str, Depends(_api_key)],
        idempotency_key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        raw = await request.body()
        db = _db(request)
        return await group_commit(db).run(
            lambda: _check_event(db, api_key, event, raw, idempotency_key),
            _store_event,
            stage=_stage_events,
        )

    @api.get("/messages")
    def list_messages(
        request: Request,
        api_key: Annotated[str, Depends(_api_key)],
        status: MessageStatus | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            query = select(Message).where(Message.workspace_id == workspace.id)
            if status:
                query = query.where(Message.status == status)
            rows = session.scalars(query.order_by(Message.id.desc()).limit(_page_size(limit)))
            return {"messages": [_message_out(message) for message in rows]}

    @api.post("/messages/{message_id}/arrived")
    def held_message_arrived(
        request: Request, message_id: RowId, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """A message held for review arrived, by the provider's log: mark it sent (404 if
        it is not the store's, 409 if it is not held)."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            message = held_messages.mark_arrived(
                session,
                workspace_id=workspace.id,
                message_id=message_id,
                by=API_REVIEWER,
                now=utc_now(),
            )
            return {"message": _message_out(message)}

    @api.post("/messages/{message_id}/send-again")
    def held_message_send_again(
        request: Request, message_id: RowId, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """A message held for review did not arrive, by the provider's log: send it again
        through the job that held it (404 if it is not the store's, 409 if it is not held
        or its job has not settled)."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            job = held_messages.send_again(
                session,
                workspace_id=workspace.id,
                message_id=message_id,
                by=API_REVIEWER,
                now=utc_now(),
            )
            message = session.get_one(Message, message_id)
            return {"message": _message_out(message), "job": _job_out(job)}

    @api.get("/jobs/dead")
    def dead_letter(request: Request, api_key: Annotated[str, Depends(_api_key)]) -> dict[str, Any]:
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            jobs = queue.list_dead(session, workspace_id=workspace.id)
            return {"jobs": [_job_out(job) for job in jobs]}

    @api.post("/jobs/dead/{job_id}/retry")
    def retry_dead_job(
        request: Request, job_id: RowId, api_key: Annotated[str, Depends(_api_key)]
    ) -> dict[str, Any]:
        """Re-drive one job of the store's dead letter (404 if it is not the store's, 409
        if it is not in the dead letter)."""
        with _db(request).transaction() as session:
            workspace = _workspace(session, api_key)
            return {"job": _job_out(queue.redrive(session, job_id, workspace_id=workspace.id))}

    _add_privacy_routes(api)
    _add_marketing_routes(api)
    _add_journey_routes(api)

    return api
