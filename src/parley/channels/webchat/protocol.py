"""The chat socket's JSON frames, and what one socket has already shown.

Client to server::

    {"type": "message", "id": "<client message id>", "text": "..."}   # 1..4000 characters
    {"type": "identify", "email": "..."}

Text holds no NUL and no lone surrogate (JSON can spell both, ``\\u0000`` and ``\\ud800``):
neither can be stored (PostgreSQL refuses NUL in text; no engine encodes a lone surrogate
as UTF-8), so such a frame is refused here with a reason rather than failing the socket,
which the widget would reconnect and resend into the same failure.

The client id makes a resent frame (after a dropped connection) the same message: it is
stored once per visitor and client id.

Server to client::

    {"type": "history", "messages": [<message>, ...]}   # on connect, oldest first, <= 50
    {"type": "message", <message>}                      # each new one, exactly once
    {"type": "identified"}                              # the email was taken
    {"type": "error", "reason": "...", "id": "<client id, when known>"}

where ``<message>`` is ``{"id", "direction", "author", "text", "created_at", "client_id"}``
(``client_id`` is the visitor's own id for their message, so the widget can settle the
bubble it showed while sending; ``null`` for the store's messages).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley.db.text import is_storable

MAX_TEXT_LEN = 4000
MAX_EMAIL_LEN = 320
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class BadFrame(ValueError):
    """A frame the socket cannot act on; the reason is shown to the widget."""

    def __init__(self, reason: str, *, client_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_id = client_id


@dataclass(frozen=True)
class ChatMessage:
    """The visitor wrote something."""

    client_id: str
    text: str


@dataclass(frozen=True)
class Identify:
    """The visitor gave their email address."""

    email: str


def parse_frame(raw: str | bytes | None) -> ChatMessage | Identify:
    """A client frame, or :class:`BadFrame` saying what is wrong with it."""
    if not isinstance(raw, str):
        raise BadFrame("frames are JSON text")
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise BadFrame("frames are JSON text") from exc
    if not isinstance(frame, dict):
        raise BadFrame("a frame is a JSON object")
    kind = frame.get("type")
    if kind == "message":
        return _chat_message(frame)
    if kind == "identify":
        email = frame.get("email")
        if (
            not isinstance(email, str)
            or not email.strip()
            or len(email) > MAX_EMAIL_LEN
            or not is_storable(email)
        ):
            raise BadFrame("identify needs an email address")
        return Identify(email=email)
    raise BadFrame("unknown frame type: expected message or identify")


def _chat_message(frame: dict[str, Any]) -> ChatMessage:
    client_id = frame.get("id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise BadFrame("a message needs an id of 1 to 64 letters, digits, '-' or '_'")
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadFrame("a message needs some text", client_id=client_id)
    if len(text) > MAX_TEXT_LEN:
        raise BadFrame(f"a message is at most {MAX_TEXT_LEN} characters", client_id=client_id)
    if not is_storable(text):
        raise BadFrame(
            "a message cannot contain a NUL character or a lone surrogate", client_id=client_id
        )
    return ChatMessage(client_id=client_id, text=text)


@dataclass(frozen=True)
class Entry:
    """One line of a visitor's chat as the database holds it."""

    id: int
    direction: str
    author: str
    text: str
    created_at: datetime
    client_id: str | None
    is_pending: bool
    """A reply still queued: it may yet go out (and be shown) or be refused (and not)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "author": self.author,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
            "client_id": self.client_id,
        }


def history_frame(entries: Sequence[Entry]) -> dict[str, Any]:
    return {"type": "history", "messages": [entry.as_json() for entry in entries]}


def message_frame(entry: Entry) -> dict[str, Any]:
    return {"type": "message", **entry.as_json()}


def error_frame(reason: str, *, client_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "reason": reason}
    if client_id is not None:
        frame["id"] = client_id
    return frame


class Transcript:
    """What one socket has shown, so that it shows each message exactly once.

    A catch-up read asks for the visitor's messages with ids above :attr:`after_id`, and
    :meth:`take` returns those not shown yet. The cursor moves past a message only once
    nothing about it can change for this socket: it is not a queued reply (which shows
    when it is sent, long after younger rows may have been shown), and it is older than
    ``settled_before`` (PostgreSQL hands out ids before commit, so a row with a lower id
    can become visible after a higher one; the lag gives such a transaction time to
    commit). Until then it is read again, and the set of shown ids keeps it from being
    sent twice.
    """

    def __init__(self) -> None:
        self.after_id = 0
        self._shown: set[int] = set()

    def begin(self, history: Sequence[Entry]) -> None:
        """The socket opened with ``history`` (oldest first): catch up from its start."""
        self._shown = {entry.id for entry in history}
        self.after_id = history[0].id - 1 if history else 0

    def take(self, entries: Sequence[Entry], *, settled_before: datetime) -> list[Entry]:
        """The entries of a catch-up read to send now, oldest first."""
        fresh: list[Entry] = []
        can_advance = True
        for entry in sorted(entries, key=lambda e: e.id):
            if not entry.is_pending and entry.id not in self._shown:
                self._shown.add(entry.id)
                fresh.append(entry)
            if can_advance and not entry.is_pending and entry.created_at < settled_before:
                self.after_id = max(self.after_id, entry.id)
            else:
                can_advance = False
        self._shown = {shown for shown in self._shown if shown > self.after_id}
        return fresh


class FloodGuard:
    """At most ``limit`` frames in any ``window`` seconds per visitor: past that, it is abuse.

    Counted per visitor id, not per socket: a count that died with its socket would start
    afresh on every reconnect, and a second tab would double it, so one token could post
    without end. One guard serves all of a process's sockets; only the event loop touches
    it. Visitors quiet for a whole window are forgotten once there are many, so a stream
    of new visitors cannot grow it without end.
    """

    MAX_KEYS = 10_000

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: dict[str, deque[float]] = {}

    def allow(self, visitor_id: str, now: float) -> bool:
        """Count a frame from ``visitor_id`` arriving at ``now`` (monotonic seconds); False
        once over the limit."""
        times = self._times.setdefault(visitor_id, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._times) > self.MAX_KEYS:
            self._forget_quiet(now)
        return True

    def _forget_quiet(self, now: float) -> None:
        self._times = {
            visitor_id: times
            for visitor_id, times in self._times.items()
            if times and now - times[-1] < self.window
        }
