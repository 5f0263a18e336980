"""Values read from the database and kept by one process for a short while.

Webhooks need the same few rows of a store on every delivery (its secrets and accounts,
its switched-on journeys). Each process keeps what it last read per key for ``ttl``
seconds and reads again after; the caller decides what may be served that stale and
forgets a key when it changes the rows behind it. Kept per ``Database`` (through
:meth:`parley.db.Database.shared`), so two databases never see each other's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_ENTRIES = 10_000
"""Keys may come from URLs: past this many the cache starts again, rather than grow."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Kept(Generic[V]):
    value: V
    read_at: float


class Recent(Generic[K, V]):
    """Values by key, each served for ``ttl`` seconds of ``clock`` after it was read."""

    def __init__(self, *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[K, Kept[V]] = {}
        self._lock = threading.Lock()

    def fresh(self, key: K) -> Kept[V] | None:
        """What is kept for ``key`` if read less than ``ttl`` ago (None stands for itself:
        the value may be None)."""
        kept = self._entries.get(key)
        if kept is None or self.clock() - kept.read_at >= self.ttl:
            return None
        return kept

    def keep(self, key: K, value: V, *, read_at: float) -> None:
        """Keep ``value`` as read at ``read_at``: a time taken before the read began."""
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = Kept(value, read_at)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
