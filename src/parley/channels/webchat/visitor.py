"""The visitor token: which shopper's browser a chat socket speaks for.

A visitor has no account, so the token is the whole identity: whoever holds it reads that
visitor's chat. It carries the workspace slug, a random visitor id and the time it was
issued, signed with ``settings.secret_key`` under a salt of its own (so no other signed
value parley hands out, such as an unsubscribe link, can pass as one).

It is signed with ``itsdangerous`` rather than a hand-rolled ``hmac``: the payload and
issue time travel in one URL-safe string, the key is derived per salt, and the signature
is compared in constant time, all in a library every Starlette session already trusts.
Its clock is parley's (:func:`parley.clock.utc_now`), so tests move time instead of
sleeping.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from parley.clock import utc_now

SALT = "parley.webchat.visitor"
MAX_AGE = timedelta(days=365)
"""A returning shopper finds their chat for a year; the widget renews the token on every
visit, so only a browser that stayed away that long starts over."""
VISITOR_PREFIX = "v_"


class InvalidVisitorToken(Exception):
    """The token is malformed, forged, expired, or names another workspace."""


@dataclass(frozen=True)
class Visitor:
    """What a valid token proves."""

    workspace: str
    visitor_id: str
    issued_at: datetime


class _ClockSigner(TimestampSigner):
    """Timestamps from parley's clock, not ``time.time()``."""

    def get_timestamp(self) -> int:
        return int(utc_now().timestamp())


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT, signer=_ClockSigner)


def new_visitor_id() -> str:
    """A fresh visitor id: 128 random bits, so ids cannot be guessed or collide."""
    return VISITOR_PREFIX + secrets.token_urlsafe(16)


def issue_token(secret_key: str, *, workspace: str, visitor_id: str) -> str:
    """A token for this visitor of this workspace, issued now."""
    return _serializer(secret_key).dumps({"w": workspace, "v": visitor_id})


def read_token(
    secret_key: str, token: str, *, workspace: str, max_age: timedelta = MAX_AGE
) -> Visitor:
    """The visitor a token names, if it is genuine, young enough and for ``workspace``.

    Raises :class:`InvalidVisitorToken` otherwise; the message says which check failed,
    for the log, never for the visitor.
    """
    try:
        payload, issued_at = _serializer(secret_key).loads(
            token, max_age=int(max_age.total_seconds()), return_timestamp=True
        )
    except SignatureExpired as exc:
        raise InvalidVisitorToken(f"the visitor token has expired: {exc}") from exc
    except BadData as exc:
        raise InvalidVisitorToken(f"bad visitor token: {exc}") from exc
    visitor_id = _field(payload, "v")
    if _field(payload, "w") != workspace:
        raise InvalidVisitorToken("the visitor token is for another workspace")
    if not visitor_id.startswith(VISITOR_PREFIX):
        raise InvalidVisitorToken("the visitor token names no visitor")
    return Visitor(workspace=workspace, visitor_id=visitor_id, issued_at=issued_at)


def _field(payload: Any, name: str) -> str:
    value = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not value:
        raise InvalidVisitorToken(f"the visitor token has no {name!r}")
    return value
