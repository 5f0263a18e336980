"""The facts a webhook needs about its workspace, read at most once a second per process,
and the API keys this process has found valid.

Every delivery to ``/webhooks/shopify/{workspace}`` needs the workspace's id, whether it
is active, and the secrets its signature may use. Reading them inside the delivery's
transaction cost a statement per webhook and held SQLite's one writer while the signature
was checked. Cached, the signature is checked before the delivery's transaction begins.

Staleness is bounded and safe: a signature that does not match the cached secrets is
checked again against a fresh read (so a secret rotated by another process works on its
first delivery; a forged delivery costs that one read, as it did before the cache), and
a store that uninstalls parley through a delivery is forgotten at once. Anything else
changed elsewhere shows within ``ttl``; sends re-check the workspace anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from parley.db import Database
from parley.workspaces.service import WorkspaceAccess, find_access

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    access: WorkspaceAccess | None
    read_at: float


class AccessCache:
    """Workspace access by slug, including "no such workspace", for one database."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, slug: str) -> WorkspaceAccess | None:
        entry = self._entries.get(slug)
        if entry is None or self.clock() - entry.read_at >= self.ttl:
            entry = self._read(slug)
        return entry.access

    def refreshed(self, slug: str) -> WorkspaceAccess | None:
        """Read again now."""
        return self._read(slug).access

    def forget(self, slug: str) -> None:
        self._entries.pop(slug, None)

    def clear(self) -> None:
        self._entries.clear()

    def _read(self, slug: str) -> _Entry:
        with self.db.transaction() as session:
            entry = _Entry(find_access(session, slug=slug), self.clock())
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:  # slugs come from URLs: bound the cache
                self._entries.clear()
            self._entries[slug] = entry
        return entry


def access_cache(db: Database) -> AccessCache:
    """This process's cache for ``db``."""
    return db.shared("workspaces.access", lambda: AccessCache(db))


class KnownApiKeys:
    """Hashes of the API keys this process has found valid, for one database.

    An event sent with a key not in here has its key read in a transaction of its own
    before anything is written, so a wrong key is refused without touching anyone else's
    write. One sent with a known key skips that read: its write reads the key again, in
    the shared transaction, and a key revoked in the meantime fails that write, which is
    then refused alone (see :mod:`parley.db.group_commit`). Nothing is ever accepted on
    this memory alone.
    """

    def __init__(self) -> None:
        self._hashes: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, key_hash: str) -> bool:
        return key_hash in self._hashes

    def remember(self, key_hash: str) -> None:
        with self._lock:
            if len(self._hashes) >= MAX_ENTRIES:
                self._hashes.clear()
            self._hashes.add(key_hash)

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._hashes.discard(key_hash)


def known_api_keys(db: Database) -> KnownApiKeys:
    """This process's known keys for ``db``."""
    return db.shared("workspaces.api_keys", KnownApiKeys)
