"""The facts a webhook needs about its workspace, read at most once a second per process,
and the API keys this process has found valid.

Every delivery to ``/webhooks/shopify/{workspace}`` needs the workspace's id, whether it
is active, and the secrets its signature may use; every delivery to a messaging
provider's route (``/webhooks/whatsapp/{workspace}``...) needs the workspace and its
accounts on that provider. Reading them for each delivery cost a statement per webhook
(and, for the providers, a transaction of its own: two fifths of a receipt's CPU on
PostgreSQL). Cached, the signature is checked before the delivery's transaction begins.

Staleness is bounded and safe: a signature that does not match the cached secrets is
checked again against a fresh read (so a secret rotated by another process works on its
first delivery; a forged delivery costs that one read, as it did before the cache), and
a store that uninstalls parley through a delivery is forgotten at once. Anything else
changed elsewhere shows within ``ttl``; sends re-check the workspace anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from parley.db import Database
from parley.db.recent import MAX_ENTRIES, Recent
from parley.workspaces.service import WorkspaceAccess, channel_accounts, find_access

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _ReadOnMiss(Recent[K, V]):
    """A :class:`Recent` that reads a key in a transaction of its own when it has none."""

    def __init__(
        self, db: Database, *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self.db = db

    def get(self, key: K) -> V:
        kept = self.fresh(key)
        return self.refreshed(key) if kept is None else kept.value

    def refreshed(self, key: K) -> V:
        """Read again now."""
        read_at = self.clock()
        value = self._load(key)
        self.keep(key, value, read_at=read_at)
        return value

    def _load(self, key: K) -> V:
        raise NotImplementedError


class AccessCache(_ReadOnMiss[str, WorkspaceAccess | None]):
    """Workspace access by slug, including "no such workspace", for one database."""

    def _load(self, key: str) -> WorkspaceAccess | None:
        with self.db.transaction() as session:
            return find_access(session, slug=key)


def access_cache(db: Database) -> AccessCache:
    """This process's cache for ``db``."""
    return db.shared("workspaces.access", lambda: AccessCache(db))


@dataclass(frozen=True)
class AccountKeys:
    """One active provider account, as a webhook's signature check needs it."""

    address: str
    secrets: Mapping[str, Any]


@dataclass(frozen=True)
class ProviderAccess:
    """A workspace (None: no such workspace) and its active accounts on one provider."""

    workspace: WorkspaceAccess | None
    accounts: tuple[AccountKeys, ...]


class ProviderAccessCache(_ReadOnMiss[tuple[str, str], ProviderAccess]):
    """Provider access by (workspace slug, provider), for one database."""

    def _load(self, key: tuple[str, str]) -> ProviderAccess:
        slug, provider = key
        with self.db.transaction() as session:
            workspace = find_access(session, slug=slug)
            if workspace is None:
                return ProviderAccess(workspace=None, accounts=())
            accounts = channel_accounts(session, workspace_id=workspace.id, provider=provider)
            return ProviderAccess(
                workspace=workspace,
                accounts=tuple(
                    AccountKeys(address=account.address, secrets=dict(account.secrets))
                    for account in accounts
                ),
            )


def provider_access_cache(db: Database) -> ProviderAccessCache:
    """This process's provider-account cache for ``db``."""
    return db.shared("workspaces.provider_access", lambda: ProviderAccessCache(db))


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
