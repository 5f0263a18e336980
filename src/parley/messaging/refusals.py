"""A provider refusing the store's own account, as the store's admins are warned of it.

Each refusal is an attempt with outcome ``account_refused`` (the message fell back to
another channel, or waits in its retries); while any happened within :data:`RECENT`,
Settings shows which channel, how often, and the provider's last words, because every
message on that channel is waiting for someone to fix the credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.messaging.models import AttemptOutcome, DeliveryAttempt

RECENT = timedelta(hours=1)
READ_AT_MOST = 500
"""Refusals read for the warning; past it each count is shown as a floor ("120+")."""


@dataclass(frozen=True)
class RefusedAccount:
    channel: str
    count: int
    last_at: datetime
    last_error: str
    is_count_capped: bool = False
    """More refusals than were read: the count is a floor."""


def recent_refusals(session: Session, *, workspace_id: int, now: datetime) -> list[RefusedAccount]:
    """Each channel whose provider refused the store's account within :data:`RECENT`,
    most recent first (one read on a partial index of the rare refusals)."""
    rows = session.execute(
        select(DeliveryAttempt.channel, DeliveryAttempt.finished_at, DeliveryAttempt.error)
        .where(
            DeliveryAttempt.workspace_id == workspace_id,
            DeliveryAttempt.outcome == AttemptOutcome.ACCOUNT_REFUSED,
            DeliveryAttempt.finished_at >= now - RECENT,
        )
        .order_by(DeliveryAttempt.finished_at.desc())
        .limit(READ_AT_MOST)
    ).all()
    counts: dict[str, int] = {}
    last: dict[str, tuple[datetime, str]] = {}
    for channel, finished_at, error in rows:  # newest first
        counts[channel] = counts.get(channel, 0) + 1
        if finished_at is not None:  # always, by the filter; the column is nullable
            last.setdefault(channel, (finished_at, error or ""))
    capped = len(rows) >= READ_AT_MOST
    return [
        RefusedAccount(channel, counts[channel], at, error, capped)
        for channel, (at, error) in last.items()
    ]
