"""The adapters a process sends through: the deployment's, and store accounts' own.

Built once per process and shared by every send, so each provider's HTTP connections are
pooled; the composition root makes one (``parley.runtime``) with the deployment's adapters
and a way to build one for a store's own account
(:func:`parley.channels.registry.build_account_adapter`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping

from parley.channels.base import ChannelAdapter, ChannelKind, OutboundMessage, SendingAccount


async def close_all(adapters: Collection[ChannelAdapter]) -> None:
    """Close every adapter, even if one of them fails to close (its error is re-raised)."""
    async with contextlib.AsyncExitStack() as stack:
        for adapter in adapters:
            stack.push_async_callback(adapter.aclose)


class ChannelAdapters(Mapping[ChannelKind, ChannelAdapter]):
    """The adapters sends go through, shared by every send in the process: the
    deployment's, one per channel kind (what this mapping holds), and one per store
    account that sends on its own, built on its first send and built again when its
    credentials change.

    An adapter replaced that way is closed with the rest, not at once: a send begun
    before the change may still be using its client.
    """

    def __init__(
        self,
        default: Mapping[ChannelKind, ChannelAdapter],
        build: Callable[[SendingAccount], ChannelAdapter] | None = None,
    ) -> None:
        self._default = dict(default)
        self._build = build
        self._accounts: dict[tuple[str, str], tuple[str, ChannelAdapter]] = {}
        self._replaced: list[ChannelAdapter] = []

    @classmethod
    def of(cls, adapters: Mapping[ChannelKind, ChannelAdapter]) -> ChannelAdapters:
        """``adapters`` as they are, or the deployment's alone (no store account's)."""
        return adapters if isinstance(adapters, ChannelAdapters) else cls(adapters)

    def __getitem__(self, kind: ChannelKind) -> ChannelAdapter:
        return self._default[kind]

    def __iter__(self) -> Iterator[ChannelKind]:
        return iter(self._default)

    def __len__(self) -> int:
        return len(self._default)

    def for_message(self, kind: ChannelKind, message: OutboundMessage) -> ChannelAdapter:
        """The adapter ``message`` goes through: its store account's, or the deployment's
        (also for a store's address on the deployment's account, such as its email From)."""
        if message.account is None or message.account.is_address_only:
            return self._default[kind]
        return self.for_account(message.account)

    def for_account(self, account: SendingAccount) -> ChannelAdapter:
        """The adapter of a store's own account, as its credentials are now."""
        key = (account.provider, account.address)
        held = self._accounts.get(key)
        if held is not None and held[0] == account.version:
            return held[1]
        if self._build is None:
            raise LookupError(f"no adapter is set up for store accounts ({account!r})")
        adapter = self._build(account)
        if held is not None:
            self._replaced.append(held[1])
        self._accounts[key] = (account.version, adapter)
        return adapter

    async def aclose(self) -> None:
        """Close every adapter: the deployment's, the store accounts', the replaced."""
        await close_all(
            [
                *self._default.values(),
                *(adapter for _, adapter in self._accounts.values()),
                *self._replaced,
            ]
        )
