"""Quiet hours: a marketing text never reaches a customer in their night (RELIABILITY S8).

US rules (47 CFR 64.1200(c)(1)) forbid marketing calls and texts before 8:00 or after
21:00 at the customer's location; some states and countries are stricter (9:00 to 20:00;
France 8:00 to 22:00 and not on Sundays). A store sets its window on Settings → General
(``workspace.settings["quiet_hours"]``), 8:00 to 21:00 by default.

Only marketing on the channels that ring a phone (SMS, WhatsApp) waits: order updates are
what the customer is waiting for, and email does not wake anyone. A send that falls in
the quiet hours is not dropped: its job waits until the window next opens in the
customer's zone and the message is decided then (:class:`~parley.jobs.worker.Later`).
The zone is the customer's (from the store's platform, or from a phone number that has
only one); for a text to a number whose area spans several zones, and no zone of the
customer's own, the window must be open in all of them; else the store's zone. Times are
computed with ``zoneinfo`` on the local calendar, so a daylight-saving change neither
skips nor repeats an opening (RELIABILITY J4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from parley.channels.base import ChannelKind

QUIET_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP})
SUNDAY = 6


@dataclass(frozen=True)
class QuietHours:
    """Marketing texts go out from ``opens`` to ``closes`` o'clock, local time."""

    opens: int = 8
    closes: int = 21
    sundays: bool = True
    """Whether marketing texts go out on Sundays at all."""

    def __post_init__(self) -> None:
        if not 0 <= self.opens < self.closes <= 24:
            raise ValueError("quiet hours: the window must open before it closes, within a day")

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> QuietHours:
        """A store's window, from its settings; the default where it set none."""
        found = (settings or {}).get("quiet_hours") or {}
        return cls(
            opens=int(found.get("opens", cls.opens)),
            closes=int(found.get("closes", cls.closes)),
            sundays=bool(found.get("sundays", cls.sundays)),
        )

    def as_settings(self) -> dict[str, Any]:
        return {"opens": self.opens, "closes": self.closes, "sundays": self.sundays}

    def allows(self, moment: datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone)
        if not self.sundays and local.weekday() == SUNDAY:
            return False
        return self.opens <= local.hour < self.closes

    def next_opening(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """None while the window is open in ``zone``; otherwise the instant (UTC) it next
        opens there."""
        if self.allows(now, zone):
            return None
        return next(self._openings(now, zone))

    def next_opening_everywhere(self, now: datetime, zones: Sequence[ZoneInfo]) -> datetime | None:
        """None while the window is open in every one of ``zones``; otherwise the first
        instant (UTC) it is open in all of them, for a customer who could be in any: a
        phone number whose area spans two zones (RELIABILITY S8 goes by where the
        customer is). Such a moment starts at one zone's opening, so those are the only
        candidates. :class:`NoSharedWindow` when the zones never share an open moment (a
        window shorter than the hours between them)."""
        if all(self.allows(now, zone) for zone in zones):
            return None
        candidates = sorted({opening for zone in zones for opening in self._openings(now, zone)})
        for candidate in candidates:
            if all(self.allows(candidate, zone) for zone in zones):
                return candidate
        raise NoSharedWindow(", ".join(zone.key for zone in zones))

    def _openings(self, now: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """The window's openings in ``zone`` after ``now``, over the next week and a day."""
        today = now.astimezone(zone).date()
        for days in range(9):
            day = today + timedelta(days=days)
            if not self.sundays and day.weekday() == SUNDAY:
                continue
            # The wall-clock opening on that day; one inside a daylight-saving gap is read
            # as the same instant an hour on, which the window still contains.
            opening = datetime.combine(day, time(self.opens), tzinfo=zone).astimezone(UTC)
            if opening > now:
                yield opening


class NoSharedWindow(ValueError):
    """The store's window is never open in all of a customer's possible zones at once."""
