"""The only reader of the wall clock.

Everything inside parley asks :func:`utc_now` for the time, so tests move time by
swapping the clock instead of sleeping. Times are always timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return _now()


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
