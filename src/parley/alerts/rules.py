"""Which alerts fire, given the backlog: pure, so each rule is tested without a clock.

- ``late:<lane>``: the oldest due job of the lane has waited ``late_seconds`` past its
  time: the workers are not keeping up (too few, stopped, or a provider is slow), and
  customers' order updates go out late. It stops firing once the lane is back under half
  that, so a lane hovering at the threshold does not notify at every watch.
- ``dead_letter``: jobs reached the dead letter within the last ``dead_letter_window``:
  sends that failed for good or ran out of attempts, which only a person re-drives. Alert
  notifications that died are left out: they would alert about themselves.
- ``privacy_requests``: a customer's privacy request has not been carried out
  ``privacy_after`` (25 days) after it was received. The store owes the answer within a
  month (GDPR article 12(3)); requests are done in seconds, so one this old is held back
  by a failure a person must look at, with days left to do it.

- ``refused_accounts``: a provider refuses a store's own account (a revoked token, a
  suspended number): the store's messages go on the next channel, or wait as an outage
  for a reply, until a send from it goes through or its secrets are replaced. The store
  sees it on Settings → Channels; the engineer is told, since the store may not look.

A store's admins are shown their own store's lanes past the lateness threshold
(:func:`running_late`), never the deployment's alert, which names other stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from parley.jobs.backlog import Backlog, LaneBacklog
from parley.jobs.models import Lane
from parley.messaging.senders import Refused
from parley.privacy.service import Waiting

NOTIFY_KIND = "alerts.notify"

LANE_WORDS = {Lane.TRANSACTIONAL: "Order updates", Lane.MARKETING: "Marketing sends"}
DEAD_LETTER = "dead_letter"
PRIVACY = "privacy_requests"
REFUSED = "refused_accounts"


def late(lane: str) -> str:
    """The name of the alert on ``lane``'s lateness."""
    return f"late:{lane}"


@dataclass(frozen=True)
class Thresholds:
    late_seconds: float = 120.0
    """0 turns the lateness alerts off."""
    dead_letter_window: timedelta = timedelta(minutes=15)
    """0 turns the dead-letter alert off."""
    privacy_after: timedelta = timedelta(days=25)
    """0 turns the privacy requests' alert off."""

    def __post_init__(self) -> None:
        if min(self.dead_letter_window, self.privacy_after) < timedelta(0) or (
            self.late_seconds < 0
        ):
            raise ValueError("alert thresholds cannot be negative")


def names() -> list[str]:
    """Every alert there is, firing or not (``GET /metrics`` shows each)."""
    return [*(late(lane) for lane in Lane), DEAD_LETTER, PRIVACY, REFUSED]


def evaluate(
    backlog: Backlog,
    thresholds: Thresholds,
    *,
    firing: frozenset[str] | set[str],
    store_names: Mapping[int, str],
    waiting: Waiting | None = None,
    refused: Refused | None = None,
) -> dict[str, str | None]:
    """Each alert's summary while it fires, or None; ``firing`` is what fires now (for the
    lateness alerts' hysteresis), ``store_names`` names the stores by workspace id,
    ``waiting`` the privacy requests received ``privacy_after`` ago and not done,
    ``refused`` the store accounts their provider refuses."""
    verdicts: dict[str, str | None] = {}
    for lane in Lane:
        verdicts[late(lane)] = _late(backlog, lane, thresholds, late(lane) in firing, store_names)
    verdicts[DEAD_LETTER] = _dead_letter(backlog, thresholds)
    verdicts[PRIVACY] = _privacy(waiting, thresholds)
    verdicts[REFUSED] = _refused(refused)
    return verdicts


@dataclass(frozen=True)
class RunningLate:
    """A lane of one store's sends running late, as its admins are told."""

    lane: str
    words: str
    due: int
    oldest_due_at: datetime


def running_late(
    lanes: Mapping[str, LaneBacklog], thresholds: Thresholds, *, now: datetime
) -> list[RunningLate]:
    """The lanes (of one store's :func:`~parley.jobs.backlog.store_backlog`) whose oldest
    due job has waited the lateness alert's threshold; none while that alert is off."""
    if not thresholds.late_seconds:
        return []
    return [
        RunningLate(lane, LANE_WORDS[Lane(lane)], found.due, found.oldest_due_at)
        for lane, found in lanes.items()
        if found.oldest_due_at is not None and found.late_seconds(now) >= thresholds.late_seconds
    ]


def _late(
    backlog: Backlog,
    lane: Lane,
    thresholds: Thresholds,
    was_firing: bool,
    store_names: Mapping[int, str],
) -> str | None:
    if not thresholds.late_seconds:
        return None
    waited = backlog.late_seconds(lane)
    floor = thresholds.late_seconds / 2 if was_firing else thresholds.late_seconds
    if waited < floor:
        return None
    found = backlog.lanes[lane]
    store = found.longest_waiting_store
    whose = (
        f"store {store_names.get(store, f'#{store}')!r}"
        if store is not None
        else "the deployment's own"
    )
    stores = f" across {counted(found.stores, 'store')}" if found.stores else ""
    return (
        f"{LANE_WORDS[lane]} are {duration(waited)} late: {counted(found.due, 'job')} due now"
        f"{stores}; the longest waiting is {whose}. Are the workers "
        "running and keeping up (`parley jobs backlog`)?"
    )


def _dead_letter(backlog: Backlog, thresholds: Thresholds) -> str | None:
    window = thresholds.dead_letter_window
    if not window:
        return None
    lately = {kind: n for kind, n in backlog.dead_lately.items() if kind != NOTIFY_KIND}
    if not lately:
        return None
    total = sum(backlog.dead_letter.values())
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(lately.items()))
    return (
        f"{counted(sum(lately.values()), 'job')} reached the dead letter in the last "
        f"{duration(window.total_seconds())} ({kinds}); {total:,} in it now. "
        "`parley jobs dead` lists them with why, `parley jobs retry` re-drives them."
    )


def _privacy(waiting: Waiting | None, thresholds: Thresholds) -> str | None:
    if not thresholds.privacy_after or waiting is None:
        return None
    days = thresholds.privacy_after.total_seconds() / 86400
    oldest = (
        f"the oldest, {waiting.oldest_kind} request {waiting.oldest_id} of store "
        f"{waiting.oldest_store!r}, was received {waiting.oldest_received_at:%Y-%m-%d} and is "
        f"due by {waiting.oldest_due_at:%Y-%m-%d}"
    )
    return (
        f"{counted(waiting.count, 'privacy request')} not carried out {days:g} days after "
        f"receipt ({oldest}); the store owes the answer within a month. Requests are done in "
        "seconds: see why in `parley jobs dead` (kind privacy.customer_request) and the "
        "store's Settings → Privacy requests."
    )


def _refused(refused: Refused | None) -> str | None:
    if refused is None:
        return None
    return (
        f"{counted(refused.count, 'store account')} refused by the provider (the latest, "
        f"store {refused.latest_store!r}'s {refused.latest_provider} {refused.latest_address} "
        f"since {refused.latest_at:%Y-%m-%d %H:%M} UTC: {refused.latest_reason}). Their "
        "messages go on the next channel meanwhile; the store replaces the secrets on "
        "Settings → Channels, or fixes the account at the provider."
    )


def counted(n: int, noun: str) -> str:
    """``1 job``, ``12,345 jobs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """``3 h 5 min``, ``4 min 12 s``, ``45 s``: as precise as a person reads it."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def resolution(name: str, backlog: Backlog, *, fired_for: float) -> str:
    """What an alert that stopped firing says: that it is over, after how long."""
    if name == PRIVACY:
        return (
            "Every privacy request is carried out or was received recently (this alert "
            f"fired for {duration(fired_for)})."
        )
    if name == REFUSED:
        return (
            "Every store account sends again, or was replaced or paused (this alert fired "
            f"for {duration(fired_for)})."
        )
    if name == DEAD_LETTER:
        total = sum(backlog.dead_letter.values())
        return (
            f"No job has reached the dead letter lately (this alert fired for "
            f"{duration(fired_for)}); {total:,} in it now."
        )
    lane = name.removeprefix("late:")
    return (
        f"{LANE_WORDS[Lane(lane)]} are on time again: the oldest due job has waited "
        f"{duration(backlog.late_seconds(lane))} (this alert fired for {duration(fired_for)})."
    )
