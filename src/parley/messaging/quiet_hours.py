"""Quiet hours: a marketing text never reaches a customer in their night (RELIABILITY S8).

US rules (47 CFR 64.1200(c)(1)) forbid marketing calls and texts before 8:00 or after
21:00 at the customer's location; some states and countries are stricter (9:00 to 20:00;
France 8:00 to 22:00 and not on Sundays or public holidays). A store sets its window on
Settings → General
(``workspace.settings["quiet_hours"]``), 8:00 to 21:00 by default and never wider: a
store may only narrow it. A window saved wider before that rule is read narrowed to it
(:meth:`QuietHours.of`), so what a store once typed cannot send a text at night.

Only marketing on the channels that ring a phone (SMS, WhatsApp) waits: order updates are
what the customer is waiting for, and email does not wake anyone. A send that falls in
the quiet hours is not dropped: its job waits until the window next opens in the
customer's zone and the message is decided then (:class:`~parley.jobs.worker.Later`).
The zone is the customer's (from the store's platform, or from a phone number that has
only one); for a text to a number whose area spans several zones, and no zone of the
customer's own, the window must be open in all of them; else the store's zone. Times are
computed with ``zoneinfo`` on the local calendar, so a daylight-saving change neither
skips nor repeats an opening (RELIABILITY J4). Public holidays are the national ones of
the country the number belongs to, from the ``holidays`` package (a few hundred
countries' calendars, kept to their laws; writing them here would be a second, staler
copy); a number of a country it does not know has none.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays as calendars

from parley.channels.base import ChannelKind

QUIET_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP})
SUNDAY = 6
EARLIEST_OPENING = 8
LATEST_CLOSING = 21
"""The widest window any store may have: 8:00 to 21:00 at the customer's location."""


@dataclass(frozen=True)
class QuietHours:
    """Marketing texts go out from ``opens`` to ``closes`` o'clock, local time."""

    opens: int = EARLIEST_OPENING
    closes: int = LATEST_CLOSING
    sundays: bool = True
    """Whether marketing texts go out on Sundays at all."""
    holidays: bool = True
    """Whether they go out on the public holidays of the customer's country."""

    def __post_init__(self) -> None:
        if not 0 <= self.opens < self.closes <= 24:
            raise ValueError("quiet hours: the window must open before it closes, within a day")
        if self.opens < EARLIEST_OPENING or self.closes > LATEST_CLOSING:
            raise WiderThanAllowed(
                f"quiet hours: marketing texts may reach customers only between"
                f" {EARLIEST_OPENING:02d}:00 and {LATEST_CLOSING:02d}:00 in their own time"
                " zone; choose a window inside those hours"
            )

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> QuietHours:
        """A store's window, from its settings; the default where it set none.

        A window saved when wider ones were accepted is read narrowed to 8:00 to 21:00,
        here rather than rewritten by a migration: every reader of the setting goes
        through this, so no path (the API, an import, a row edited by hand) can widen
        it. One with no legal hour left in it (say 21:00 to 24:00) is read as the
        default, since it would otherwise hold every marketing text for ever.
        """
        found = (settings or {}).get("quiet_hours") or {}
        opens = max(int(found.get("opens", EARLIEST_OPENING)), EARLIEST_OPENING)
        closes = min(int(found.get("closes", LATEST_CLOSING)), LATEST_CLOSING)
        if opens >= closes:
            opens, closes = EARLIEST_OPENING, LATEST_CLOSING
        return cls(
            opens=opens,
            closes=closes,
            sundays=bool(found.get("sundays", cls.sundays)),
            holidays=bool(found.get("holidays", cls.holidays)),
        )

    def as_settings(self) -> dict[str, Any]:
        return {
            "opens": self.opens,
            "closes": self.closes,
            "sundays": self.sundays,
            "holidays": self.holidays,
        }

    def allows(self, moment: datetime, zone: ZoneInfo, country: str | None = None) -> bool:
        """Whether a marketing text may ring at ``moment`` for a customer in ``zone``
        whose number is of ``country``."""
        local = moment.astimezone(zone)
        return self._goes_on(local.date(), country) and self.opens <= local.hour < self.closes

    def next_opening(
        self, now: datetime, zone: ZoneInfo, country: str | None = None
    ) -> datetime | None:
        """None while the window is open in ``zone``; otherwise the instant (UTC) it next
        opens there."""
        if self.allows(now, zone, country):
            return None
        return next(self._openings(now, zone, country))

    def next_opening_everywhere(
        self, now: datetime, zones: Sequence[ZoneInfo], country: str | None = None
    ) -> datetime | None:
        """None while the window is open in every one of ``zones``; otherwise the first
        instant (UTC) it is open in all of them, for a customer who could be in any: a
        phone number whose area spans two zones (RELIABILITY S8 goes by where the
        customer is). Such a moment starts at one zone's opening, so those are the only
        candidates. :class:`NoSharedWindow` when the zones never share an open moment (a
        window shorter than the hours between them)."""
        if all(self.allows(now, zone, country) for zone in zones):
            return None
        candidates = sorted(
            {opening for zone in zones for opening in self._openings(now, zone, country)}
        )
        for candidate in candidates:
            if all(self.allows(candidate, zone, country) for zone in zones):
                return candidate
        raise NoSharedWindow(", ".join(zone.key for zone in zones))

    def _goes_on(self, day: date, country: str | None) -> bool:
        if not self.sundays and day.weekday() == SUNDAY:
            return False
        return self.holidays or country is None or day not in public_holidays(country, day.year)

    def _openings(self, now: datetime, zone: ZoneInfo, country: str | None) -> Iterator[datetime]:
        """The window's openings in ``zone`` after ``now``, over the next two weeks and a
        day: room for a week of holidays (a Golden Week) and the Sundays around it."""
        today = now.astimezone(zone).date()
        for days in range(16):
            day = today + timedelta(days=days)
            if not self._goes_on(day, country):
                continue
            # The wall-clock opening on that day; one inside a daylight-saving gap is read
            # as the same instant an hour on, which the window still contains.
            opening = datetime.combine(day, time(self.opens), tzinfo=zone).astimezone(UTC)
            if opening > now:
                yield opening


@functools.lru_cache(maxsize=512)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The national public holidays of ``country`` (ISO code) in ``year``; none for a
    country the ``holidays`` package does not know. Read once per country and year, into
    a set no worker thread changes."""
    try:
        return frozenset(calendars.country_holidays(country, years=year))
    except NotImplementedError:
        return frozenset()


class WiderThanAllowed(ValueError):
    """A window that would let marketing texts out before 8:00 or after 21:00."""


class NoSharedWindow(ValueError):
    """The store's window is never open in all of a customer's possible zones at once."""
