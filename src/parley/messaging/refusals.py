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
    found: dict[str, RefusedAccount] = {}
    counts: dict[str, int] = {}
    for channel, finished_at, error in rows:
        counts[channel] = counts.get(channel, 0) + 1
        if channel not in found and finished_at is not None:
            found[channel] = RefusedAccount(channel, 0, finished_at, error or "")
    capped = len(rows) >= READ_AT_MOST
    return [
        RefusedAccount(r.channel, counts[r.channel], r.last_at, r.last_error, capped)
        for r in found.values()
    ]
