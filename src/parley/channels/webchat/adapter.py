"""The web-chat adapter, and the hub that wakes this process's chat sockets.

Delivery stores a reply's row (``sending``) and commits before it calls
:meth:`WebChat.send`, so by the time ``send`` runs the reply is already where every chat
socket looks: the visitor's messages in the database. ``send`` therefore has nothing to
carry; it rings the visitor's doorbell on the :class:`ChatHub`, and each socket of that
visitor in this process reads its new messages at once. A socket in another process (a
second ``parley serve`` worker, or a ``parley worker`` that has no sockets at all) is not
rung; it finds the reply on its next catch-up read, a couple of seconds later. A visitor
with no socket open gets nothing rung and reads the reply in the history when they come
back. Sending never fails for want of a listener.

Why the hub carries a doorbell and not the message: the frame a socket sends needs the
row's id (to never show a message twice) and its author and time, which an
:class:`OutboundMessage` does not have; reading the row gives every frame one shape and
one source, whichever way the socket learned of it.

Why one module-level hub per process (:data:`PROCESS_HUB`): the web app and the embedded
worker of a ``parley serve`` process are built apart (the app before its lifespan builds
the runtime, and once per process under ``--workers N``), and a doorbell only matters
inside one process. One hub per process is where both meet without threading the runtime
through the app; correctness never depends on it, since the database read covers a hub
that is not shared. Tests pass a hub of their own to :class:`WebChat` to play "another
process".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import ClassVar, Self

from parley.channels.base import (
    Capabilities,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendResult,
)
from parley.settings import Settings


class Doorbell:
    """One socket's wake-up signal; ringing it is safe from any thread.

    A worker may run on another event loop than the socket (the test client, or a worker
    thread), so a ring is handed to the socket's own loop rather than set directly.
    """

    def __init__(self, visitor_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.visitor_id = visitor_id
        self._loop = loop
        self._event = asyncio.Event()

    def ring(self) -> bool:
        """Wake the socket; False when its loop is gone (the socket is dead)."""
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:
            return False
        return True

    async def wait(self, at_most: float) -> bool:
        """Until rung or ``at_most`` seconds pass; True when rung. The ring is consumed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._event.wait()
        was_rung = self._event.is_set()
        self._event.clear()
        return was_rung


class ChatHub:
    """Visitor id to the doorbells of the sockets this process holds for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._doorbells: dict[str, set[Doorbell]] = {}

    def subscribe(self, visitor_id: str) -> Doorbell:
        """A doorbell for a socket running on the current event loop."""
        doorbell = Doorbell(visitor_id, asyncio.get_running_loop())
        with self._lock:
            self._doorbells.setdefault(visitor_id, set()).add(doorbell)
        return doorbell

    def unsubscribe(self, doorbell: Doorbell) -> None:
        with self._lock:
            doorbells = self._doorbells.get(doorbell.visitor_id)
            if doorbells is None:
                return
            doorbells.discard(doorbell)
            if not doorbells:
                del self._doorbells[doorbell.visitor_id]

    def ring(self, visitor_id: str) -> int:
        """Wake every socket of this visitor in this process; how many were woken."""
        with self._lock:
            doorbells = list(self._doorbells.get(visitor_id, ()))
        rung = 0
        for doorbell in doorbells:
            if doorbell.ring():
                rung += 1
            else:
                self.unsubscribe(doorbell)
        return rung

    def listeners(self, visitor_id: str) -> int:
        """How many sockets of this visitor this process holds."""
        with self._lock:
            return len(self._doorbells.get(visitor_id, ()))


PROCESS_HUB = ChatHub()


class WebChat:
    """The ``webchat`` channel: replies reach the visitor's chat sockets (see module doc)."""

    kind: ClassVar[ChannelKind] = ChannelKind.WEBCHAT
    provider: ClassVar[str] = "webchat"
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_len=4000)

    def __init__(self, *, hub: ChatHub) -> None:
        self.hub = hub

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(hub=PROCESS_HUB)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Ring the visitor's sockets; the stored row is what they show.

        The provider id is the idempotency key: a retried send is the same message.
        """
        if not message.to:
            raise PermanentChannelError("no web-chat visitor to reply to")
        self.hub.ring(message.to)
        return SendResult(provider_message_id=message.idempotency_key)

    async def check(self) -> str:
        """No provider: parley serves the chat itself."""
        return "served by parley itself: nothing to check"

    async def aclose(self) -> None:
        return None
