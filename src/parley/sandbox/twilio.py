"""Twilio's Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

Checks what Twilio checks, in Twilio's order and with Twilio's error codes (HTTP Basic
auth with the SID and auth token of the account the path names, one of the
:class:`~parley.sandbox.accounts.SandboxAccounts`; a ``To`` in E.164, a ``From`` that is
one of that account's numbers or an alphanumeric sender ID, a ``Body``), and answers with
Twilio's message resource. This runs on the benchmark's hot path: one pass over the form
body, no templates.

The sandbox keeps no Messaging Services: any ``MG…`` SID stands for a service whose pool
is the account's numbers. As Twilio does, a send through it goes from a number of the
pool (the first), and its receipts name that number in ``From`` and the service in
``MessagingServiceSid``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.channels.twilio_sms.segments import count_segments
from parley.sandbox.store import CapturedMessage, Fault, SandboxStore

if TYPE_CHECKING:
    from parley.sandbox.accounts import SandboxAccounts, TwilioAccount
    from parley.sandbox.webhooks import StatusReporter

API_VERSION: Final = "2010-04-01"
E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY_CHARS: Final = 1600
SERVICE_PREFIX: Final = "MG"
"""What a Messaging Service's SID starts with."""


_FAULT_MESSAGES: Final = {
    400: "Bad Request",
    401: "Authenticate",
    403: "Forbidden",
    404: "The requested resource was not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """An error in Twilio's JSON shape."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


async def fault_response(fault: Fault) -> JSONResponse:
    """Answer an injected fault the way Twilio answers an outage or a rate limit."""
    if fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault.status == 401:  # as Twilio refuses a revoked auth token
        return twilio_error(401, 20003, "Authenticate")
    message = _FAULT_MESSAGES.get(fault.status, "Sandbox: simulated provider failure")
    response = twilio_error(fault.status, 20000 + fault.status, message)
    if fault.status == 429:
        response.headers["Retry-After"] = "1"
    return response


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The (username, password) of an HTTP Basic ``Authorization`` header, if well formed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, separator, password = decoded.partition(":")
    if not separator:
        return None
    return username, password


async def read_form(request: Request) -> dict[str, str]:
    """The request's form fields; Twilio reads nothing from any other kind of body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    if content_type and not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _sender(params: dict[str, str], pool: tuple[str, ...]) -> tuple[str | None, str]:
    """The Messaging Service a send goes through, if any, and the number it goes from
    ("" when there is none to pick).

    Twilio takes a service's SID in ``MessagingServiceSid`` or in place of a number in
    ``From``; a number in ``From`` alongside a service is the pool's number to use, and
    without one the service picks a number of its ``pool``.
    """
    given = params.get("From", "")
    service = params.get("MessagingServiceSid") or None
    if given.startswith(SERVICE_PREFIX):
        service, given = service or given, ""
    if service and not given:
        given = next((number for number in pool if E164.match(number)), "")
    return service, given


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class TwilioMessages:
    """The Messages resource of every sandbox Twilio account.

    Each request is checked against the account its path names
    (``/Accounts/{AccountSid}/...``), as Twilio does: the Basic auth username is that SID
    and the password that account's auth token.
    """

    def __init__(
        self,
        store: SandboxStore,
        *,
        accounts: SandboxAccounts,
        statuses: StatusReporter | None = None,
    ) -> None:
        """``statuses``, when given, posts ``sent`` and ``delivered`` callbacks to a
        message's ``StatusCallback`` URL, as Twilio does; ``None`` keeps it silent."""
        self._store = store
        self._statuses = statuses
        self._accounts = accounts

    def _authenticated_account(self, request: Request) -> TwilioAccount | None:
        """The path's account, when the request carries its SID and token; else ``None``."""
        credentials = basic_credentials(request.headers.get("authorization"))
        if credentials is None:
            return None
        username, password = credentials
        path_sid = request.path_params["AccountSid"]
        account = self._accounts.find_twilio(path_sid)
        # An unknown SID is compared against a token no password can equal (a byte no
        # UTF-8 text holds), so it costs what a wrong token costs.
        expected_token = account.auth_token.encode() if account is not None else b"\xff"
        # Both comparisons always run, so the timing does not reveal which one failed.
        sid_matches = hmac.compare_digest(username.encode(), path_sid.encode())
        token_matches = hmac.compare_digest(password.encode(), expected_token)
        if account is None or not (sid_matches and token_matches):
            return None
        return account

    async def account(self, request: Request) -> Response:
        """``GET /2010-04-01/Accounts/{AccountSid}.json``: the account, always active."""
        fault = self._store.take_fault("sms")
        if fault is not None:
            return await fault_response(fault)
        account = self._authenticated_account(request)
        if account is None:
            return twilio_error(401, 20003, "Authenticate")
        uri = f"/{API_VERSION}/Accounts/{account.account_sid}.json"
        return JSONResponse(
            {
                "sid": account.account_sid,
                "friendly_name": "parley sandbox",
                "status": "active",
                "type": "Full",
                "uri": uri,
            }
        )

    async def incoming_numbers(self, request: Request) -> Response:
        """``GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json``: the numbers
        of this account, or only ``PhoneNumber`` when given and it is one of them."""
        fault = self._store.take_fault("sms")
        if fault is not None:
            return await fault_response(fault)
        account = self._authenticated_account(request)
        if account is None:
            return twilio_error(401, 20003, "Authenticate")
        wanted = request.query_params.get("PhoneNumber")
        numbers = [
            {
                "sid": "PN" + hashlib.sha256(number.encode()).hexdigest()[:32],
                "account_sid": account.account_sid,
                "phone_number": number,
                "friendly_name": number,
                "capabilities": {"sms": True, "mms": False, "voice": False},
            }
            for number in account.phone_numbers
            if wanted is None or wanted == number
        ]
        return JSONResponse(
            {"incoming_phone_numbers": numbers, "page": 0, "page_size": 50, "start": 0}
        )

    async def create(self, request: Request) -> Response:
        """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``."""
        fault = self._store.take_fault("sms")
        if fault is not None:
            return await fault_response(fault)
        account = self._authenticated_account(request)
        if account is None:
            return twilio_error(401, 20003, "Authenticate")
        params = await read_form(request)
        to = params.get("To", "")
        service, sender = _sender(params, account.phone_numbers)
        body = params.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if service and not sender:
            return twilio_error(400, 21704, "The Messaging Service contains no phone numbers.")
        if not sender:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if sender.startswith("+") and sender not in account.phone_numbers:
            # Twilio sends only from the account's own numbers (an alphanumeric sender ID
            # is the account's to choose): an adapter sending a store's number through
            # another account must fail here as it fails in production.
            return twilio_error(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone"
                " number or short code for your account.",
            )
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        callback_url = params.get("StatusCallback", "")
        if callback_url and not _is_http_url(callback_url):
            return twilio_error(400, 21609, f"The StatusCallback URL {callback_url} is not valid.")
        message = CapturedMessage(
            channel="sms",
            to=to,
            sender=sender,
            body=body,
            provider_message_id="SM" + secrets.token_hex(16),
        )
        self._store.add(message)
        if callback_url and self._statuses is not None:
            self._statuses.twilio_accepted(
                callback_url=callback_url,
                message_sid=str(message.provider_message_id),
                sender=sender,
                messaging_service=service,
                to=to,
                account_sid=account.account_sid,
                signing_token=account.callback_token,
            )
        return JSONResponse(
            self._resource(message, service, params, account_sid=account.account_sid),
            status_code=201,
        )

    def _resource(
        self,
        message: CapturedMessage,
        service: str | None,
        params: dict[str, str],
        *,
        account_sid: str,
    ) -> dict[str, Any]:
        sid = message.provider_message_id
        date = format_datetime(message.captured_at)
        given = params.get("From", "")
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": date,
            "date_sent": None,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            # A number the request named; through a service Twilio picks one after answering.
            "from": given if given and not given.startswith(SERVICE_PREFIX) else None,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(count_segments(message.body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }
