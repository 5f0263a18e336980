"""The sandbox's own JSON API: read and clear captures, inject and clear faults, sign up.

Used by the page's poller, by tests driving the demo over HTTP and by operators rehearsing
provider outages (``POST /api/faults {"channel": "sms", "status": 503, "count": 3}``).

It also plays the providers' consoles, which issue credentials at sign-up: in the demo a
store that connects "its own" Twilio account or WhatsApp number needs credentials the
stand-ins accept, and only a provider can issue those. ``POST /api/accounts/twilio``
answers a new account's ``account_sid``, ``auth_token`` and one new ``phone_number``;
``POST /api/accounts/whatsapp`` (optionally ``{"app_secret": ...}``) a new number's
``phone_number_id``, ``access_token`` and the ``app_secret`` its status webhooks are
signed with; ``GET /api/accounts`` lists the accounts and numbers, never their secrets.

And it plays a DNS host's console for the sandbox's nameserver
(:mod:`parley.sandbox.nameserver`): a store that sends email from its own domain must
publish records there, so ``PUT /api/dns/{name}`` with ``{"txt": [...]}`` sets a name's
TXT records, ``DELETE /api/dns/{name}`` removes them and ``GET /api/dns`` lists the zone.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.sandbox.accounts import SandboxAccounts
from parley.sandbox.store import CHANNELS, SandboxStore

# The numbers a Twilio sign-up is given, lowest free first. +1500555xxxx is Twilio's own
# test range; 0000-0009 are its magic numbers (the deployment's +15005550006 among them),
# so sign-ups start at 1000.
SIGN_UP_TWILIO_NUMBERS: Final = tuple(f"+1500555{n:04d}" for n in range(1000, 10_000))
MAX_APP_SECRET_CHARS: Final = 4096
MAX_TXT_CHARS: Final = 4096
_DNS_NAME: Final = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{1,63}")
# A fresh 15-digit id is taken with odds of about one in 10**14 per number registered;
# a few draws make an answer of "none left" a sign of a broken random source, not bad luck.
_WHATSAPP_ID_DRAWS: Final = 8


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _unprocessable(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=422)


def _conflict(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=409)


def _parse_sign_up(body: bytes, *, fields: frozenset[str]) -> dict[str, Any]:
    """The JSON object of a sign-up request: empty when the body is, else only ``fields``.

    Unknown fields are refused rather than ignored, so a caller who expects to choose,
    say, its number learns that it cannot instead of getting another one silently.
    Raises ``ValueError`` with a reason the caller can read.
    """
    if not body.strip():
        return {}
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(payload) - fields)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    return payload


def _dns_name(raw: str) -> str | None:
    """A name as the nameserver keys it (lower case, no final dot), or None."""
    name = raw.strip().lower().rstrip(".")
    return name if len(name) <= 253 and _DNS_NAME.fullmatch(name) else None


def _parse_app_secret(value: object) -> str | None:
    """A sign-up's optional ``app_secret``: ``None`` or a non-empty string of bounded size.

    An empty secret would sign every webhook with an empty key, which proves nothing.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("app_secret must be a string")
    if not value:
        raise ValueError("app_secret must not be empty")
    if len(value) > MAX_APP_SECRET_CHARS:
        raise ValueError(f"app_secret must be at most {MAX_APP_SECRET_CHARS} characters")
    return value


class SandboxApi:
    """Handlers for ``/api/messages``, ``/api/faults``, ``/api/accounts`` and ``/api/dns``.

    ``twilio_numbers`` are the numbers a Twilio sign-up may be given (tests pass a short
    list to run out of them).
    """

    def __init__(
        self,
        store: SandboxStore,
        *,
        accounts: SandboxAccounts,
        zone: dict[str, list[str]] | None = None,
        twilio_numbers: Sequence[str] = SIGN_UP_TWILIO_NUMBERS,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._zone = zone if zone is not None else {}
        self._twilio_numbers = twilio_numbers

    async def list_dns(self, request: Request) -> Response:
        """``GET /api/dns``: every name the sandbox's nameserver answers, with its TXT
        records."""
        return JSONResponse({"records": dict(sorted(self._zone.items()))})

    async def put_dns(self, request: Request) -> Response:
        """``PUT /api/dns/{name}`` with ``{"txt": ["..."]}``: the name's TXT records, as
        a DNS host's console sets them (all of them at once)."""
        name = _dns_name(request.path_params["name"])
        if name is None:
            return _unprocessable("name must be a domain name, e.g. shop.example")
        try:
            fields = _parse_sign_up(await request.body(), fields=frozenset({"txt"}))
            records = fields.get("txt")
            if not isinstance(records, list) or not all(
                isinstance(record, str) and 0 < len(record) <= MAX_TXT_CHARS for record in records
            ):
                raise ValueError(
                    f"txt must be a list of records, each 1 to {MAX_TXT_CHARS} characters"
                )
        except ValueError as error:
            return _unprocessable(str(error))
        self._zone[name] = list(records)
        return JSONResponse({"name": name, "txt": records})

    async def delete_dns(self, request: Request) -> Response:
        """``DELETE /api/dns/{name}``: the name stops existing (NXDOMAIN)."""
        name = _dns_name(request.path_params["name"])
        if name is None or self._zone.pop(name, None) is None:
            return JSONResponse({"error": "no such name"}, status_code=404)
        return Response(status_code=204)

    async def list_messages(self, request: Request) -> Response:
        """``GET /api/messages?channel=&to=&limit=``: oldest first; ``limit`` keeps the newest."""
        channel = request.query_params.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            return _bad_request(f"channel must be one of {', '.join(CHANNELS)}")
        limit_param = request.query_params.get("limit")
        limit: int | None = None
        if limit_param:
            if not limit_param.isdigit() or int(limit_param) < 1:
                return _bad_request("limit must be a positive integer")
            limit = int(limit_param)
        messages = self._store.list(channel=channel, to=request.query_params.get("to") or None)
        if limit is not None:
            messages = messages[-limit:]
        return JSONResponse({"messages": [message.to_public() for message in messages]})

    async def clear_messages(self, request: Request) -> Response:
        """``DELETE /api/messages``."""
        self._store.clear()
        return Response(status_code=204)

    async def list_faults(self, request: Request) -> Response:
        """``GET /api/faults``: the faults still waiting, in the order they apply."""
        return JSONResponse({"faults": [fault.to_public() for fault in self._store.faults()]})

    async def inject_fault(self, request: Request) -> Response:
        """``POST /api/faults`` with ``{channel, status, count=1, delay_seconds=0}``."""
        try:
            payload: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _bad_request("the body must be a JSON object")
        if not isinstance(payload, dict):
            return _bad_request("the body must be a JSON object")
        channel, status = payload.get("channel"), payload.get("status")
        if not isinstance(channel, str) or not isinstance(status, int):
            return _bad_request("'channel' (a string) and 'status' (an integer) are required")
        try:
            fault = self._store.inject_fault(
                channel,
                status,
                count=payload.get("count", 1),
                delay_seconds=payload.get("delay_seconds", 0.0),
            )
        except ValueError as error:
            return _bad_request(str(error))
        return JSONResponse({"fault": fault.to_public()}, status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        """``DELETE /api/faults``."""
        self._store.clear_faults()
        return Response(status_code=204)

    async def list_accounts(self, request: Request) -> Response:
        """``GET /api/accounts``: every Twilio account's numbers and every WhatsApp number.

        Tokens and secrets are never listed: a provider's console shows them once, at
        sign-up, and the page polling this API is open to anyone who can reach the demo.
        """
        return JSONResponse(
            {
                "twilio": [
                    {"account_sid": account.account_sid, "phone_numbers": [*account.phone_numbers]}
                    for account in self._accounts.list_twilio()
                ],
                "whatsapp": [
                    {"phone_number_id": number.phone_number_id}
                    for number in self._accounts.list_whatsapp()
                ],
            }
        )

    async def create_twilio_account(self, request: Request) -> Response:
        """``POST /api/accounts/twilio``: a new account owning the lowest free number.

        Takes no fields. Answers 201 with ``account_sid``, ``auth_token`` and
        ``phone_number``, or 409 once every number in ``twilio_numbers`` is taken.
        """
        try:
            _parse_sign_up(await request.body(), fields=frozenset())
        except ValueError as error:
            return _unprocessable(str(error))
        account_sid = "AC" + secrets.token_hex(16)
        auth_token = secrets.token_hex(16)
        for phone_number in self._twilio_numbers:
            if self._accounts.add_twilio_if_new(account_sid, auth_token, phone_number):
                return JSONResponse(
                    {
                        "account_sid": account_sid,
                        "auth_token": auth_token,
                        "phone_number": phone_number,
                    },
                    status_code=201,
                )
        return _conflict("every sandbox Twilio number is taken")

    async def create_whatsapp_number(self, request: Request) -> Response:
        """``POST /api/accounts/whatsapp`` with optional ``{"app_secret": ...}``.

        Answers 201 with ``phone_number_id``, ``access_token`` and ``app_secret`` (the
        given one, or ``null``: the deployment's ``demo_meta_app_secret`` then signs the
        number's status webhooks).
        """
        try:
            fields = _parse_sign_up(await request.body(), fields=frozenset({"app_secret"}))
            app_secret = _parse_app_secret(fields.get("app_secret"))
        except ValueError as error:
            return _unprocessable(str(error))
        access_token = "EAAG" + secrets.token_urlsafe(32)
        for _ in range(_WHATSAPP_ID_DRAWS):
            phone_number_id = str(10**14 + secrets.randbelow(9 * 10**14))
            if self._accounts.add_whatsapp_if_new(phone_number_id, access_token, app_secret):
                return JSONResponse(
                    {
                        "phone_number_id": phone_number_id,
                        "access_token": access_token,
                        "app_secret": app_secret,
                    },
                    status_code=201,
                )
        return _conflict("could not draw a WhatsApp phone number id nobody uses")
