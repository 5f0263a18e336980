"""The Instagram API with Instagram Login: ``POST /{version}/{account_id}/messages``.

Checks the bearer token, the professional account id and the Send API body the way the
Graph API does (a recipient ``id`` or ``comment_id``, ``message.text`` of at most 1000
characters, ``HUMAN_AGENT`` as the only tag Instagram accepts), answers errors in Graph's
``{"error": {...}}`` shape and captures what it accepts as channel ``"instagram"``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.sandbox.store import CapturedMessage, Fault, SandboxStore
from parley.sandbox.whatsapp import bearer_matches, graph_error

MAX_TEXT_CHARS: Final = 1000
API_VERSION: Final = re.compile(r"^v\d{1,3}\.\d{1,2}$")
MESSAGING_TYPES: Final = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})


def new_instagram_mid() -> str:
    """A message id shaped like Instagram's (base64 that starts with ``aWdf``, "ig_")."""
    return "aWdf" + secrets.token_urlsafe(48)


class InvalidParameterError(ValueError):
    """The request breaks one of the Send API's rules; the message says which."""


async def fault_response(fault: Fault) -> JSONResponse:
    """Answer an injected fault the way the Graph API answers throttling or an outage."""
    if fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault.status == 429:
        return graph_error(429, 613, "(#613) Calls to this api have exceeded the rate limit.")
    if fault.status >= 500:
        return graph_error(
            fault.status,
            2,
            "An unexpected error has occurred. Please retry your request later.",
        )
    if fault.status == 401:
        return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    return graph_error(fault.status, 1, "An unknown error occurred (sandbox: simulated failure)")


def parse_message(payload: object) -> tuple[str, str, str | None]:
    """Validate a Send API body; return (recipient as captured, text, tag or None).

    The recipient is the IGSID, or ``comment:<id>`` for a private reply: the same form
    parley's adapter takes in ``OutboundMessage.to``.
    """
    if not isinstance(payload, dict):
        raise InvalidParameterError("The request body must be a JSON object.")
    recipient = payload.get("recipient")
    if not isinstance(recipient, dict):
        raise InvalidParameterError("The parameter recipient is required.")
    igsid, comment_id = recipient.get("id"), recipient.get("comment_id")
    if (igsid is None) == (comment_id is None):
        raise InvalidParameterError("Param recipient must have exactly one of id, comment_id.")
    target = igsid if igsid is not None else comment_id
    if not isinstance(target, str) or not target.isascii() or not target.isdigit():
        raise InvalidParameterError("Param recipient id must be a numeric string.")
    message = payload.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text:
        raise InvalidParameterError("The parameter message[text] is required.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidParameterError(
            f"Length of param message[text] must be less than or equal to {MAX_TEXT_CHARS}."
        )
    return (target if igsid is not None else f"comment:{target}"), text, _tag(payload)


def _tag(payload: dict[str, Any]) -> str | None:
    messaging_type = payload.get("messaging_type", "RESPONSE")
    if messaging_type not in MESSAGING_TYPES:
        raise InvalidParameterError(
            "Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}."
        )
    tag = payload.get("tag")
    if messaging_type == "MESSAGE_TAG" and tag != "HUMAN_AGENT":
        raise InvalidParameterError("Param tag must be HUMAN_AGENT on Instagram.")
    if messaging_type != "MESSAGE_TAG" and tag is not None:
        raise InvalidParameterError("Param tag needs messaging_type MESSAGE_TAG.")
    return tag if isinstance(tag, str) else None


class InstagramMessages:
    """The messages edge of one sandbox Instagram professional account."""

    def __init__(self, store: SandboxStore, *, access_token: str, account_id: str) -> None:
        self._store = store
        self._token_bytes = access_token.encode()
        self._account_id = account_id

    async def me(self, request: Request) -> Response:
        """``GET /{version}/me``: the professional account the token belongs to."""
        fault = self._store.take_fault("instagram")
        if fault is not None:
            return await fault_response(fault)
        if not bearer_matches(request, self._token_bytes):
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        return JSONResponse(
            {"user_id": self._account_id, "username": "parley_sandbox", "id": self._account_id}
        )

    async def create(self, request: Request) -> Response:
        """``POST /{version}/{account_id}/messages``."""
        fault = self._store.take_fault("instagram")
        if fault is not None:
            return await fault_response(fault)
        if not bearer_matches(request, self._token_bytes):
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        version = request.path_params["version"]
        if not API_VERSION.match(version):
            return graph_error(400, 100, f"(#100) Unknown API version {version!r}.")
        account_id = request.path_params["account_id"]
        if account_id != self._account_id:
            return graph_error(
                400,
                100,
                f"Unsupported post request. Object with ID '{account_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this "
                "operation.",
                error_type="IGApiException",
                subcode=33,
            )
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return graph_error(400, 100, "(#100) The request body must be valid JSON.")
        try:
            to, text, tag = parse_message(payload)
        except InvalidParameterError as error:
            return graph_error(400, 100, f"(#100) {error}")
        mid = new_instagram_mid()
        self._store.add(
            CapturedMessage(
                channel="instagram",
                to=to,
                sender=account_id,
                body=text,
                provider_message_id=mid,
                headers={"tag": tag} if tag else {},
            )
        )
        if to.startswith("comment:"):
            # The commenter's IGSID is Meta's to know; the sandbox only has the comment.
            return JSONResponse({"message_id": mid})
        return JSONResponse({"recipient_id": to, "message_id": mid})
