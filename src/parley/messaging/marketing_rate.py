"""The store's own marketing rate: at most so many marketing messages an hour
(RELIABILITY S18 "per-tenant send rate limits", J6).

A store sets it to spread a promotion over the day: so its site and its support team are
not hit by every customer at once, and a mistake is caught while most of the audience
has not been reached yet. It is paced like a provider's sender
(:mod:`parley.messaging.pace`), on a row of its own keyed ``store:<id>:marketing``, one
message every ``3600 / per_hour`` seconds with up to a minute's worth at once, across
every worker; a send past it waits as its job, booked for the time the rate gives it,
nothing recorded. Order updates never count against it and never wait for it.

Changing the rate (or lifting it) affects the sends still waiting, not only new ones:
the store's row is reset and its waiting sends are brought forward, each booked once
again at the new rate (J6 "change the rate limit mid-run and assert new sends use the
new limit").

The store's bookings hold only what will really go. A send booked past its message's
expiry gives its place back at once, and when the store switches off a journey whose
sends were booked, the bookings are dropped and what still waits is booked again
(:func:`drop_bookings`): a switched-off promotion does not hold the store's next
marketing behind hours of sends that will never be made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from parley.errors import Invalid
from parley.jobs import queue
from parley.messaging import pace
from parley.messaging.pace import Allowance, Sender
from parley.messaging.types import WaitingFor

SETTING = "marketing_rate"
MAX_PER_HOUR = 1_000_000
"""Above any provider's pace for one sender (WhatsApp's upgraded 1,000/s is 3.6 million
an hour, but a store's rate is about its audience, not the wire)."""
REFUSAL = (
    f"marketing rate: enter a whole number of messages an hour from 1 to {MAX_PER_HOUR:,}, "
    "or leave it empty for no limit"
)
BURST_SECONDS = 60
"""How much of the rate may go at once: a minute's worth."""


@dataclass(frozen=True)
class MarketingRate:
    """At most ``per_hour`` marketing messages an hour from the store; None: no limit."""

    per_hour: int | None = None

    def __post_init__(self) -> None:
        if self.per_hour is not None and not 1 <= self.per_hour <= MAX_PER_HOUR:
            raise Invalid(REFUSAL)

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> MarketingRate:
        found = (settings or {}).get(SETTING)
        if not isinstance(found, dict) or not found.get("per_hour"):
            return cls()
        return cls(int(found["per_hour"]))

    @classmethod
    def parse(cls, text: str) -> MarketingRate:
        """The rate as a store types it: digits, with thousands separators allowed;
        empty (or 0) for no limit."""
        cleaned = text.strip().replace(",", "").replace("_", "").replace(" ", "")
        if not cleaned or cleaned == "0":
            return cls()
        if not cleaned.isdigit():
            raise Invalid(REFUSAL)
        return cls(int(cleaned))

    def as_settings(self) -> dict[str, Any] | None:
        return None if self.per_hour is None else {"per_hour": self.per_hour}

    def describe(self) -> str:
        if self.per_hour is None:
            return "no limit"
        return f"at most {self.per_hour:,} an hour"

    def sender(self, workspace_id: int) -> Sender | None:
        """The store's pace as the pacer takes it, or None with no limit."""
        if self.per_hour is None:
            return None
        per_second = self.per_hour / 3600
        return Sender(
            key(workspace_id),
            Allowance(per_second, burst=max(1.0, per_second * BURST_SECONDS)),
            unit="marketing message",
            waiting_for=WaitingFor.MARKETING_RATE,
            reason=f"waiting for the store's marketing rate: {self.describe()}",
        )


def key(workspace_id: int) -> str:
    return f"store:{workspace_id}:marketing"


def replan(session: Session, *, workspace_id: int, now: datetime) -> int:
    """After the store changed its rate: its row starts rested, and every send waiting
    for the old rate is due now, to be booked at the new one. Returns how many."""
    pace.rest(session, key(workspace_id))
    return queue.bring_forward(
        session, workspace_id=workspace_id, waiting_for=WaitingFor.MARKETING_RATE, now=now
    )


def drop_bookings(session: Session, *, workspace_id: int, now: datetime) -> int:
    """When the store's booked sends turn out not to be coming (their journey switched
    off): the store's bookings are dropped, what it has spent kept (its rate still holds),
    and every send waiting for it is due now, to be booked again behind only what really
    waits, or to end. Returns how many."""
    pace.drop_bookings(session, [key(workspace_id)])
    return queue.bring_forward(
        session, workspace_id=workspace_id, waiting_for=WaitingFor.MARKETING_RATE, now=now
    )
