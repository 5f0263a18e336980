"""What the sandbox captured, and the faults it has been told to inject.

One :class:`SandboxStore` is shared by the HTTP stand-ins (running on the server's event
loop) and the SMTP server (running on aiosmtpd's own thread), so every method takes one
lock. The store keeps only the newest :data:`MAX_MESSAGES` messages: a benchmark sends far
more, and :meth:`SandboxStore.received_count` still counts every accepted one. It also
keeps the files customers sent (:class:`StoredMedia`, the newest :data:`MAX_MEDIA`), which
the WhatsApp stand-in serves as Graph serves media.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from parley.clock import utc_now

CHANNELS: Final = ("email", "sms", "whatsapp", "instagram")
MAX_MESSAGES: Final = 10_000
MAX_MEDIA: Final = 100
FOREVER: Final = -1


def new_capture_id() -> str:
    """A short random id for one captured message."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True, kw_only=True)
class CapturedMessage:
    """One message a stand-in accepted, or one a sandbox customer wrote to the store.

    ``direction`` is ``"outbound"`` (parley → customer: ``to`` is the customer, ``sender``
    the store) or ``"inbound"`` (customer → parley, from the page's composer: ``sender`` is
    the customer, ``to`` the store's address). ``body`` is the text; for a WhatsApp
    template it is a readable rendering such as ``[template order_dispatched (en)] Ada ·
    #1001``. ``headers`` holds an email's headers, or ``{"tag": "HUMAN_AGENT"}`` for an
    Instagram message sent with that tag.
    """

    channel: str
    to: str
    sender: str
    body: str
    id: str = field(default_factory=new_capture_id)
    subject: str | None = None
    html: str | None = None
    template: dict[str, Any] | None = None
    provider_message_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    captured_at: datetime = field(default_factory=utc_now)
    direction: str = "outbound"

    def to_public(self) -> dict[str, Any]:
        """The JSON form served by ``GET /api/messages``."""
        return {
            "id": self.id,
            "channel": self.channel,
            "to": self.to,
            "sender": self.sender,
            "body": self.body,
            "subject": self.subject,
            "html": self.html,
            "template": self.template,
            "provider_message_id": self.provider_message_id,
            "headers": self.headers,
            "captured_at": self.captured_at.isoformat(),
            "direction": self.direction,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMedia:
    """A file a sandbox customer sent, as the provider keeps it: by ``media_id``, for the
    business number (``phone_number_id``) it was sent to."""

    media_id: str
    phone_number_id: str
    content: bytes
    mime_type: str

    @property
    def sha256(self) -> str:
        """The hex digest Meta gives with every media id."""
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected failure: ``status`` is an HTTP status, or an SMTP reply code for email.

    ``remaining`` is how many more requests it will fail, or ``-1`` (until cleared).
    """

    channel: str
    status: int
    remaining: int
    delay_seconds: float

    def to_public(self) -> dict[str, Any]:
        """The JSON form served by the faults API."""
        return {
            "channel": self.channel,
            "status": self.status,
            "count": self.remaining,
            "delay_seconds": self.delay_seconds,
        }


@dataclass(slots=True)
class _PendingFault:
    status: int
    remaining: int
    delay_seconds: float


def validate_fault(channel: str, status: int, count: int, delay_seconds: float) -> None:
    """Raise ``ValueError`` with a readable reason if the fault cannot be injected."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError("status must be an integer from 400 to 599")
    if isinstance(count, bool) or not isinstance(count, int) or (count < 1 and count != FOREVER):
        raise ValueError("count must be a positive integer, or -1 for until cleared")
    if (
        isinstance(delay_seconds, bool)
        or not isinstance(delay_seconds, int | float)
        or not 0 <= delay_seconds <= 300
    ):
        raise ValueError("delay_seconds must be a number from 0 to 300")


class SandboxStore:
    """Thread-safe capture of accepted messages, bounded to the newest ``max_messages``."""

    def __init__(self, max_messages: int = MAX_MESSAGES, max_media: int = MAX_MEDIA) -> None:
        self._lock = threading.Lock()
        self._messages: deque[CapturedMessage] = deque(maxlen=max_messages)
        self._media: OrderedDict[str, StoredMedia] = OrderedDict()
        self._max_media = max_media
        self._received = dict.fromkeys(CHANNELS, 0)
        self._faults: dict[str, deque[_PendingFault]] = {channel: deque() for channel in CHANNELS}

    def add(self, message: CapturedMessage) -> None:
        """Capture one message (the oldest is dropped past the bound)."""
        with self._lock:
            self._messages.append(message)
            if message.direction == "outbound":
                self._received[message.channel] = self._received.get(message.channel, 0) + 1

    def add_media(self, media: StoredMedia) -> None:
        """Keep one customer's file (the oldest is dropped past the bound)."""
        with self._lock:
            self._media[media.media_id] = media
            self._media.move_to_end(media.media_id)
            while len(self._media) > self._max_media:
                self._media.popitem(last=False)

    def find_media(self, media_id: str) -> StoredMedia | None:
        """The file kept under ``media_id``, or ``None``."""
        with self._lock:
            return self._media.get(media_id)

    def media_count(self) -> int:
        """How many files are kept."""
        with self._lock:
            return len(self._media)

    def clear(self) -> None:
        """Forget every captured message and reset the received counts (faults stay, and
        so do customers' files: the inbox may still open them)."""
        with self._lock:
            self._messages.clear()
            for channel in self._received:
                self._received[channel] = 0

    def received_count(self, channel: str) -> int:
        """How many messages the channel's stand-in accepted since the last :meth:`clear`.

        Only what parley sent counts: a benchmark compares this with the sends it made,
        and customers' messages from the composer are not sends.
        """
        with self._lock:
            return self._received.get(channel, 0)

    def inject_fault(
        self, channel: str, status: int, count: int = 1, delay_seconds: float = 0.0
    ) -> Fault:
        """Make the next ``count`` requests on ``channel`` fail with ``status``.

        Each failing request first waits ``delay_seconds`` (rehearses a timeout). ``count=-1``
        fails every request until :meth:`clear_faults`. Faults injected one after another
        on the same channel apply in order.
        """
        validate_fault(channel, status, count, delay_seconds)
        pending = _PendingFault(status=status, remaining=count, delay_seconds=float(delay_seconds))
        with self._lock:
            self._faults[channel].append(pending)
        return Fault(channel, status, count, float(delay_seconds))

    def clear_faults(self) -> None:
        """Let every channel succeed again."""
        with self._lock:
            for queue in self._faults.values():
                queue.clear()

    def take_fault(self, channel: str) -> Fault | None:
        """The fault the current request on ``channel`` must answer with, if any."""
        with self._lock:
            queue = self._faults.get(channel)
            if not queue:
                return None
            pending = queue[0]
            if pending.remaining != FOREVER:
                pending.remaining -= 1
                if pending.remaining == 0:
                    queue.popleft()
            return Fault(channel, pending.status, pending.remaining, pending.delay_seconds)

    def faults(self) -> builtins.list[Fault]:
        """The faults still waiting, in the order they will apply."""
        with self._lock:
            return [
                Fault(channel, pending.status, pending.remaining, pending.delay_seconds)
                for channel, queue in self._faults.items()
                for pending in queue
            ]

    def list(
        self, channel: str | None = None, to: str | None = None
    ) -> builtins.list[CapturedMessage]:
        """Captured messages, oldest first, optionally only one channel or recipient."""
        with self._lock:
            messages = builtins.list(self._messages)
        if channel is not None:
            messages = [message for message in messages if message.channel == channel]
        if to is not None:
            messages = [message for message in messages if message.to == to]
        return messages
