"""The only reader of the wall clock.

Everything inside parley asks :func:`utc_now` for the time, so tests move time by
swapping the clock instead of sleeping. Times are always timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return _now()


def zone_of(*names: str | None) -> ZoneInfo:
    """The first of these IANA zone names that is one (a customer's, then their store's,
    say), else UTC."""
    for name in names:
        zone = find_zone(name)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def find_zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone ``name`` names, or None: a stored name this machine's zone database
    lacks is not an error, nor is one of its folders ("US", "America": ``ZoneInfo`` opens
    them and fails with an ``OSError``)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def set_clock(now: Callable[[], datetime]) -> None:
    """Replace the clock (tests and simulations only)."""
    global _now
    _now = now


def reset_clock() -> None:
    """Return to the wall clock."""
    set_clock(lambda: datetime.now(UTC))


class FrozenClock:
    """A clock that stands still until moved; install it with :meth:`install`."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += delta
        return self.now

    def install(self) -> FrozenClock:
        """Make this the clock :func:`utc_now` reads."""
        set_clock(self)
        return self
