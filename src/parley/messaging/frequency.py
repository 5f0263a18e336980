"""How often marketing may reach a customer on one channel (RELIABILITY S17).

However many journeys and campaigns a store runs, a customer gets at most one marketing
email every 16 hours and one marketing text or WhatsApp message every 24 (Klaviyo's
"smart sending" defaults; a store sets its own, 0 for none, on Settings → General).
Order updates are never capped.

The cap is one row per customer and channel (:class:`MarketingSlot`), taken by one
conditional upsert in the transaction that records the message: two sends deciding at
the same moment, in two workers on two machines, cannot both pass (on PostgreSQL the
second waits on the row and then sees the first's; SQLite has one writer). A send the
cap stops is recorded as skipped with the reason, never quietly put off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.orm import Session

from parley.db.base import table_of
from parley.db.upsert import insert_on, per_dialect
from parley.messaging.models import MarketingSlot

SLOTS = table_of(MarketingSlot)
DEFAULT_HOURS: Mapping[str, float] = {"email": 16, "sms": 24, "whatsapp": 24, "instagram": 24}
MAX_HOURS = 24 * 30


@dataclass(frozen=True)
class FrequencyCaps:
    """Hours between two marketing messages to one customer, per channel (0: no cap)."""

    hours: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HOURS))

    def __post_init__(self) -> None:
        for channel, hours in self.hours.items():
            if not 0 <= hours <= MAX_HOURS:
                raise ValueError(f"frequency cap for {channel}: between 0 and {MAX_HOURS} hours")

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> FrequencyCaps:
        """A store's caps, from its settings; the defaults where it set none."""
        found = (settings or {}).get("frequency_caps") or {}
        return cls({**DEFAULT_HOURS, **{k: float(v) for k, v in found.items()}})

    def window(self, channel: str) -> timedelta | None:
        hours = self.hours.get(channel, 0)
        return timedelta(hours=hours) if hours else None


@per_dialect
def _take(dialect: str) -> Any:
    statement = insert_on(dialect, SLOTS)
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "customer_id", "channel"],
        set_={
            "taken_at": statement.excluded.taken_at,
            "idempotency_key": statement.excluded.idempotency_key,
        },
        where=or_(
            SLOTS.c.taken_at <= bindparam("cutoff"),
            SLOTS.c.idempotency_key == statement.excluded.idempotency_key,
        ),
    ).returning(SLOTS.c.id)


def take_slot(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    channel: str,
    idempotency_key: str,
    now: datetime,
    window: timedelta,
) -> datetime | None:
    """Take the customer's marketing slot on ``channel`` for the message
    ``idempotency_key``: None when it is taken (nothing else went within ``window``, or
    the slot is already this message's); otherwise when the message holding it went."""
    taken = (
        session.connection()
        .execute(
            _take(session),
            {
                "workspace_id": workspace_id,
                "customer_id": customer_id,
                "channel": channel,
                "taken_at": now,
                "idempotency_key": idempotency_key,
                "cutoff": now - window,
            },
        )
        .first()
    )
    if taken is not None:
        return None
    return session.scalar(
        select(MarketingSlot.taken_at).where(
            MarketingSlot.workspace_id == workspace_id,
            MarketingSlot.customer_id == customer_id,
            MarketingSlot.channel == channel,
        )
    )


def release_slots(session: Session, *, workspace_id: int, keys: Mapping[str, int]) -> None:
    """Give back the slots the messages ``keys`` (idempotency key: customer) took and
    will not use now: held back by the store's rate or their sender's pace, nothing was
    sent. Kept, a slot would skip the customer's next marketing message as capped by one
    that never went; the message takes it again when its turn comes."""
    if not keys:
        return
    session.execute(
        delete(MarketingSlot).where(
            MarketingSlot.workspace_id == workspace_id,
            MarketingSlot.customer_id.in_(set(keys.values())),
            MarketingSlot.idempotency_key.in_(list(keys)),
        )
    )
