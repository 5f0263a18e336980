"""A store's privacy requests, kept as the record the store owner shows a regulator."""

from __future__ import annotations

import calendar
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime


class RequestKind(StrEnum):
    """Stored values: never rename."""

    ERASURE = "erasure"
    """``customers/redact``: delete what parley holds on a customer."""
    ACCESS = "access"
    """``customers/data_request``: gather it for the store owner to hand over."""


class RequestStatus(StrEnum):
    """Stored values: never rename."""

    PENDING = "pending"
    DONE = "done"


class PrivacyRequest(Base):
    """One customer's request, received from the store's platform, and what came of it.

    ``subject`` is who it is about (the platform's customer id, email, phone, orders): an
    erasure needs it until it is carried out and then clears it, so the request's own row
    keeps no trace of the person; ``reference`` (the platform's customer id) stays, the
    id the store owner can match in their own records. ``export`` is an access request's
    answer, everything parley held, for the store owner to download.
    """

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_workspace", "workspace_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(255))
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    """The platform delivery that made the request; not a foreign key, because raw
    deliveries are pruned after their retention period while requests stay."""
    subject: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING)
    summary: Mapped[str | None] = mapped_column(Text)
    export: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def due_at(self) -> datetime:
        """When the answer is owed: one month after receipt (GDPR article 12(3))."""
        return one_month_after(self.received_at)


def one_month_after(moment: datetime) -> datetime:
    """The same day and time a calendar month later, or the month's last day when it has
    no such day (31 January: 28 or 29 February), as the regulation's month is counted."""
    year, month = divmod(moment.month, 12)
    year, month = moment.year + year, month + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )
