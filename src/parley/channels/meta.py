"""What Meta's webhooks share across WhatsApp Cloud and Instagram: signatures and handshake.

Meta signs every webhook POST with ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256
of the **raw** request body keyed with the app secret; the body must be checked before it
is parsed, because re-serialised JSON (other whitespace, key order, escaping) would no
longer match. Subscribing a callback URL starts with a ``GET`` carrying ``hub.mode``,
``hub.verify_token`` and ``hub.challenge``; the endpoint proves it is ours by echoing the
challenge only when the token is the one configured in the app dashboard. Meta signs no
timestamp, so there is no replay window here: replays are caught by the dedupe store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2

from parley.channels.base import ChannelError, InboundEvent, MalformedWebhook, SignatureError
from parley.channels.http import (
    error_for_exception,
    error_for_status,
    json_or_empty,
    status_detail,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


GraphReason = Callable[[int, str | None, dict[str, Any]], str]


def graph_error(
    response: httpx2.Response,
    body: dict[str, Any],
    *,
    transient_codes: frozenset[str],
    reason: GraphReason,
    account_codes: frozenset[str] = frozenset(),
) -> ChannelError:
    """Classify a Graph API error body ``{"error": {"code", "message", ...}}``.

    Some Graph codes mean "later" even when they come with a plain 400 (rate limits), so
    the adapter's ``transient_codes`` overrule the HTTP status; its ``account_codes`` say
    the store's token or business account was refused, not the message.
    """
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    provider_code = str(code) if code is not None else None
    return error_for_status(
        response,
        reason=reason(response.status_code, provider_code, error),
        provider_code=provider_code,
        transient=True if provider_code in transient_codes else None,
        account_codes=account_codes,
    )


async def read_node(
    client: httpx2.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    fields: str,
    provider: str,
    transient_codes: frozenset[str],
    account_codes: frozenset[str],
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Read one Graph node's (or edge's) ``fields`` with the adapter's bearer ``headers``,
    nothing sent; a refusal raises :class:`ChannelError` classified as a send's would be."""
    try:
        response = await client.get(
            url, params={"fields": fields, **(params or {})}, headers=dict(headers)
        )
    except httpx2.HTTPError as exc:
        raise error_for_exception(exc, provider=provider) from exc
    body = json_or_empty(response)
    if response.is_success:
        return body

    def reason(status_code: int, provider_code: str | None, error: dict[str, Any]) -> str:
        verb = "refused the settings" if status_code < 500 else "could not answer"
        said = f"{provider} {verb} ({status_detail(status_code, provider_code)})"
        return f"{said}: {error['message']}" if error.get("message") else said

    raise graph_error(
        response,
        body,
        transient_codes=transient_codes,
        reason=reason,
        account_codes=account_codes,
    )


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta would send for ``body`` (tests, the sandbox)."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_signature(body: bytes, header: str | None, app_secret: str) -> None:
    """Raise :class:`SignatureError` unless ``header`` signs exactly ``body``.

    The comparison is constant-time. An empty app secret is refused outright: an HMAC
    keyed with nothing would let anyone forge a valid signature.
    """
    if not app_secret:
        raise SignatureError("no Meta app secret is configured for this workspace")
    if not header:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing")
    scheme, separator, provided = header.strip().partition("=")
    if not separator or scheme.lower() != _PREFIX[:-1]:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is not of the form sha256=<hex>")
    expected = sign(body, app_secret)[len(_PREFIX) :]
    # Bytes, not str: compare_digest refuses non-ASCII str, and a hostile header may be any.
    if not hmac.compare_digest(provided.lower().encode(), expected.encode()):
        raise SignatureError(f"the {SIGNATURE_HEADER} signature does not match the body")


def handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo back, or ``None`` (the route answers 403).

    Only ``hub.mode=subscribe`` with the configured ``hub.verify_token`` (compared in
    constant time) is answered; an empty configured token never matches.
    """
    challenge = params.get("hub.challenge")
    if params.get("hub.mode") != "subscribe" or challenge is None or not verify_token:
        return None
    provided = params.get("hub.verify_token", "")
    if not hmac.compare_digest(provided.encode(), verify_token.encode()):
        return None
    return challenge


# --- reading Meta's JSON --------------------------------------------------------------
# Both products wrap events in ``{"object": ..., "entry": [...]}``. These helpers walk that
# shape and name the exact path of anything that is not what Meta documents, so a bad
# payload becomes a readable MalformedWebhook instead of a KeyError deep in a parser.


@dataclass(frozen=True)
class Located:
    """A JSON object and its path in the payload (``entry[0].changes[1].value``)."""

    path: str
    data: dict[str, Any]

    def where(self, key: str) -> str:
        """The path of ``key`` inside this object."""
        return f"{self.path}.{key}" if self.path else key

    def child(self, key: str) -> Located:
        """The object at ``key``; an absent key reads as an empty object."""
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise MalformedWebhook(f"{self.where(key)} is not an object")
        return Located(self.where(key), value)

    def children(self, key: str) -> list[Located]:
        """Each object in the list at ``key``; an absent key reads as an empty list."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise MalformedWebhook(f"{self.where(key)} is not a list")
        located = []
        for index, item in enumerate(value):
            path = f"{self.where(key)}[{index}]"
            if not isinstance(item, dict):
                raise MalformedWebhook(f"{path} is not an object")
            located.append(Located(path, item))
        return located

    def text(self, key: str) -> str:
        """A required, non-empty string."""
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise MalformedWebhook(f"{self.where(key)} is missing or not a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        """A string when present; an empty string reads as absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise MalformedWebhook(f"{self.where(key)} is not a string")
        return value or None

    def time(self, key: str) -> datetime | None:
        """An epoch time (seconds, or milliseconds where Meta uses them) as aware UTC."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedWebhook(f"{self.where(key)} is not an epoch timestamp")
        # WhatsApp sends seconds, Instagram milliseconds. 10**11 seconds is the year 5138,
        # so anything larger can only be milliseconds.
        try:
            return datetime.fromtimestamp(value / 1000 if value >= 10**11 else value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise MalformedWebhook(f"{self.where(key)} is out of range") from exc


def load_payload(body: bytes, expected_object: str) -> Located:
    """The JSON object in ``body``; MalformedWebhook unless its ``object`` is expected."""
    try:
        payload = json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise MalformedWebhook(f"the body is not JSON ({exc})") from exc
    except RecursionError as exc:
        raise MalformedWebhook("the body nests JSON too deeply") from exc
    if not isinstance(payload, dict):
        raise MalformedWebhook("the body is not a JSON object")
    found = payload.get("object")
    if found != expected_object:
        raise MalformedWebhook(f"object is {found!r}, expected {expected_object!r}")
    return Located("", payload)


class PartlyMalformed(MalformedWebhook):
    """Some parts of a batch could not be read; ``events`` is what every other part said.

    Meta batches many entries, changes and messages into one delivery and resends the
    same bytes until it is answered 200, so refusing the whole delivery for one bad part
    would lose every good one in it for good.
    """

    def __init__(self, problems: list[str], events: list[InboundEvent]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.events = events


@dataclass
class Batch:
    """The events read from a delivery part by part, and why any part could not be read."""

    events: list[InboundEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @contextmanager
    def part(self) -> Iterator[None]:
        """Read one entry, change or item: a malformed one is noted and the rest go on."""
        try:
            yield
        except MalformedWebhook as exc:
            self.problems.append(str(exc))

    def read(self) -> list[InboundEvent]:
        """The events; :class:`PartlyMalformed` (carrying them) if any part was noted."""
        if self.problems:
            raise PartlyMalformed(self.problems, self.events)
        return self.events
