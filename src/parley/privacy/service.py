"""Taking in a privacy request: recorded and handed to a job in the delivery's transaction.

The platform is answered as soon as the request is stored (Shopify allows 5 seconds, and
erasing a store takes longer); the job (:mod:`parley.privacy.tasks`) carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parley.customers.identity import normalise_email, normalise_phone
from parley.jobs import queue
from parley.privacy.models import PrivacyRequest, RequestKind, RequestStatus
from parley.workspaces.models import Workspace

CUSTOMER_REQUEST_KIND = "privacy.customer_request"
ERASE_STORE_KIND = "privacy.erase_store"


@dataclass(frozen=True)
class Subject:
    """Who a request is about, as the store's platform names them."""

    platform_customer_id: str | None
    email: str | None
    phone: str | None
    orders: tuple[str, ...] = ()
    """The platform's ids of the orders the request covers (beyond the customer's own)."""

    def names_someone(self) -> bool:
        return bool(self.platform_customer_id or self.email or self.phone)

    @property
    def normalised_email(self) -> str | None:
        return normalise_email(self.email)

    @property
    def normalised_phone(self) -> str | None:
        return normalise_phone(self.phone)

    def to_json(self) -> dict[str, Any]:
        return {
            "platform_customer_id": self.platform_customer_id,
            "email": self.email,
            "phone": self.phone,
            "orders": list(self.orders),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        return cls(
            platform_customer_id=data.get("platform_customer_id"),
            email=data.get("email"),
            phone=data.get("phone"),
            orders=tuple(data.get("orders") or ()),
        )


@dataclass(frozen=True)
class CustomerRequest:
    """A customer's erasure or access request, forwarded by the store's platform."""

    kind: RequestKind
    subject: Subject
    shop_domain: str | None = None
    platform_request_id: str | None = None


@dataclass(frozen=True)
class StoreErasure:
    """The store's platform asks for all of a store's data to be deleted."""

    shop_domain: str | None = None


def receive_customer_request(
    session: Session,
    *,
    workspace_id: int,
    request: CustomerRequest,
    delivery_id: int | None,
    now: datetime,
) -> int:
    """Record the request and queue the job that carries it out; the request's id."""
    row = PrivacyRequest(
        workspace_id=workspace_id,
        kind=request.kind,
        reference=request.subject.platform_customer_id,
        delivery_id=delivery_id,
        subject={
            **request.subject.to_json(),
            "platform_request_id": request.platform_request_id,
        },
        status=RequestStatus.PENDING,
        received_at=now,
    )
    session.add(row)
    session.flush()
    queue.enqueue(
        session,
        kind=CUSTOMER_REQUEST_KIND,
        payload={"request_id": row.id},
        workspace_id=workspace_id,
        due_at=now,
        idempotency_key=f"privacy:{row.id}",
    )
    return row.id


def receive_store_erasure(
    session: Session, *, workspace_id: int, erasure: StoreErasure, delivery_id: int, now: datetime
) -> None:
    """Queue the store's erasure. It is the deployment's job, not the store's: it deletes
    the store's jobs along with everything else, and must outlive them. Keyed by the
    delivery: one refused while the store was installed does not stand in for a later one."""
    queue.enqueue(
        session,
        kind=ERASE_STORE_KIND,
        payload={
            "workspace_id": workspace_id,
            "shop_domain": erasure.shop_domain,
            "delivery_id": delivery_id,
        },
        due_at=now,
        idempotency_key=f"erase-store:{workspace_id}:{delivery_id}",
    )


def list_requests(session: Session, *, workspace_id: int, limit: int) -> list[PrivacyRequest]:
    """The store's requests, newest first."""
    return list(
        session.scalars(
            select(PrivacyRequest)
            .where(PrivacyRequest.workspace_id == workspace_id)
            .order_by(PrivacyRequest.received_at.desc(), PrivacyRequest.id.desc())
            .limit(limit)
        )
    )


def find_export(session: Session, *, workspace_id: int, request_id: int) -> dict[str, Any] | None:
    """An access request's export, if it has one (gathered, and not erased since)."""
    return session.scalar(
        select(PrivacyRequest.export).where(
            PrivacyRequest.workspace_id == workspace_id,
            PrivacyRequest.id == request_id,
            PrivacyRequest.kind == RequestKind.ACCESS,
        )
    )


@dataclass(frozen=True)
class Waiting:
    """The privacy requests still not done that were received before a cut-off."""

    count: int
    oldest_id: int
    oldest_kind: str
    oldest_store: str
    oldest_received_at: datetime
    oldest_due_at: datetime


def waiting_since(session: Session, *, before: datetime) -> Waiting | None:
    """Across the deployment (for its engineer's alert): requests received before
    ``before`` and not done, or None. Few rows: requests are done in seconds, so at most
    the ones a failure holds back."""
    late = (PrivacyRequest.status == RequestStatus.PENDING, PrivacyRequest.received_at < before)
    count = session.scalar(select(func.count()).select_from(PrivacyRequest).where(*late)) or 0
    if not count:
        return None
    oldest, store = session.execute(
        select(PrivacyRequest, Workspace.slug)
        .join(Workspace, Workspace.id == PrivacyRequest.workspace_id)
        .where(*late)
        .order_by(PrivacyRequest.received_at, PrivacyRequest.id)
        .limit(1)
    ).one()
    return Waiting(
        count=count,
        oldest_id=oldest.id,
        oldest_kind=oldest.kind,
        oldest_store=store,
        oldest_received_at=oldest.received_at,
        oldest_due_at=oldest.due_at,
    )
