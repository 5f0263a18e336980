"""The store's kill switch for marketing (RELIABILITY S18).

When a promotion goes wrong (the wrong price, a test template, the wrong audience) the
store must be able to stop it at once, and not by deleting it: Courier's customers
learned in 2023 that a queue which keeps rebuilding cannot be cancelled. Pausing puts
``workspace.settings["marketing_paused"]`` in place
(:func:`parley.messaging.marketing_controls.set_paused`); from the next batch a worker plans,
every marketing send of the store waits (:class:`~parley.jobs.worker.Later`), nothing
recorded and nothing dropped, looking again every :data:`RECHECK`. Sends a worker had
already planned when the switch was pressed (at most one batch) still go. Resuming brings
the waiting sends forward, to go in the next batch, each decided then (consent, quiet hours and
the frequency cap applied as for any send). Order updates never wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from parley.jobs.worker import Later
from parley.messaging.types import WaitingFor

SETTING = "marketing_paused"
RECHECK = timedelta(seconds=30)
"""How often a waiting marketing send looks at the switch again."""


@dataclass(frozen=True)
class MarketingPause:
    """Whether the store's marketing is paused, since when and by whom."""

    since: datetime | None = None
    by: str | None = None

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> MarketingPause:
        found = (settings or {}).get(SETTING)
        if not isinstance(found, dict) or not found.get("since"):
            return cls()
        return cls(since=datetime.fromisoformat(str(found["since"])), by=found.get("by"))

    @property
    def is_paused(self) -> bool:
        return self.since is not None

    def as_settings(self) -> dict[str, Any] | None:
        if self.since is None:
            return None
        return {"since": self.since.isoformat(), "by": self.by}

    def hold(self, now: datetime) -> Later | None:
        """The wait for a marketing send while paused; None when it may go."""
        if self.since is None:
            return None
        return Later(
            now + RECHECK,
            f"marketing paused by the store since {self.since:%Y-%m-%d %H:%M} UTC",
            WaitingFor.MARKETING_PAUSED,
        )
