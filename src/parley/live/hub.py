"""The in-process side of live updates: who is listening here, and handing each event on.

A :class:`Hub` holds the open streams (:class:`Subscriber`) of one ``parley serve``
process, by workspace. The relay feeds it committed events in id order; the hub hands an
event only to the subscribers of its workspace, and an event that names a user only to
that user. It never decides on its own that a stream is still allowed: the relay re-checks
sessions and memberships against the database and ends the streams that lost them.
Everything here runs on the event loop's thread, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ENDING_KINDS = frozenset({"member_removed", "session_ended"})
"""User-targeted events that are never shown: they make the relay re-check that user's
streams at once (a removal or a password change must cut them before any later event)."""

MAX_PENDING = 500
"""Events waiting for a slow stream before it is cut; the browser reconnects with
``Last-Event-ID`` and catches up from the table, so nothing is lost."""


@dataclass(frozen=True)
class Event:
    """One committed ``live_events`` row, as streams see it."""

    id: int
    workspace_id: int
    kind: str
    conversation_id: int | None
    user_id: int | None
    data: dict[str, Any]

    def frame(self) -> bytes:
        """The Server-Sent Events frame: ``id``, ``event`` and a one-line JSON ``data``."""
        payload = json.dumps(
            {"kind": self.kind, "conversation_id": self.conversation_id, "data": self.data},
            separators=(",", ":"),
        )
        return f"id: {self.id}\nevent: {self.kind}\ndata: {payload}\n\n".encode()

    def is_for(self, *, user_id: int) -> bool:
        return self.kind not in ENDING_KINDS and self.user_id in (None, user_id)


class Ending(StrEnum):
    """Why a stream stops. Only ``revoked`` tells the browser to sign in again."""

    REVOKED = "revoked"
    SHUTDOWN = "shutdown"
    OVERFLOW = "overflow"
    DISCONNECTED = "disconnected"


@dataclass(eq=False)
class Subscriber:
    """One open stream: an agent's browser tab, bound to the session it opened with."""

    workspace_id: int
    user_id: int
    token_digest: str
    ending: Ending | None = None
    _pending: deque[Event] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, event: Event) -> None:
        if self.ending is not None:
            return
        if len(self._pending) >= MAX_PENDING:
            self.end(Ending.OVERFLOW)
            return
        self._pending.append(event)
        self._wake.set()

    def end(self, why: Ending) -> None:
        """Stop the stream; events not yet written are dropped (a revoked agent must not
        see them, and any other stream catches up after reconnecting)."""
        if self.ending is None:
            self.ending = why
            self._pending.clear()
            self._wake.set()

    async def next(self, wait_seconds: float) -> Event | Ending | None:
        """The next event, the reason the stream ends, or None after ``wait_seconds``."""
        if self.ending is None and not self._pending:
            self._wake.clear()
            try:
                async with asyncio.timeout(wait_seconds):
                    await self._wake.wait()
            except TimeoutError:
                return None
        if self.ending is not None:
            return self.ending
        return self._pending.popleft() if self._pending else None


class Hub:
    """The open streams of this process, by workspace."""

    def __init__(self) -> None:
        self._streams: dict[int, set[Subscriber]] = defaultdict(set)
        self.is_closed = False

    def subscribe(self, *, workspace_id: int, user_id: int, token_digest: str) -> Subscriber:
        subscriber = Subscriber(
            workspace_id=workspace_id, user_id=user_id, token_digest=token_digest
        )
        if self.is_closed:
            subscriber.end(Ending.SHUTDOWN)
        else:
            self._streams[workspace_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        streams = self._streams.get(subscriber.workspace_id)
        if streams is not None:
            streams.discard(subscriber)
            if not streams:
                del self._streams[subscriber.workspace_id]

    def subscribers(self) -> list[Subscriber]:
        return [s for streams in self._streams.values() for s in streams]

    def deliver(self, event: Event) -> list[Subscriber]:
        """Hand ``event`` to its recipients here.

        For an ending event nothing is shown; the streams it concerns are returned for the
        relay to re-check before it hands on any later event. A password change ends the
        person's sessions in every workspace, so ``session_ended`` concerns all of them.
        """
        if event.kind in ENDING_KINDS:
            if event.kind == "session_ended":
                return [s for s in self.subscribers() if s.user_id == event.user_id]
            return [
                s for s in self._streams.get(event.workspace_id, ()) if s.user_id == event.user_id
            ]
        for subscriber in self._streams.get(event.workspace_id, ()):
            if event.is_for(user_id=subscriber.user_id):
                subscriber.push(event)
        return []

    def close(self) -> None:
        """Server shutdown: end every stream now, and any opened from here on."""
        self.is_closed = True
        for subscriber in self.subscribers():
            subscriber.end(Ending.SHUTDOWN)
