"""``POST /webhooks/twilio/{workspace}``: inbound SMS and delivery status callbacks.

Twilio signs the URL it was configured with plus the sorted form parameters. Behind a
proxy the request's own URL is not that URL, so it is rebuilt from ``PARLEY_PUBLIC_URL``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response

from parley.channels.base import SignatureError
from parley.channels.twilio_sms import webhook as twilio
from parley.channels.twilio_sms.adapter import REFERENCE_PARAMETER
from parley.http.webhooks.inbound import InboundDelivery, nudge_worker, receive
from parley.workspaces.access import AccountKeys

TWILIO = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _key(params: dict[str, str]) -> str:
    """A retried callback repeats its MessageSid and status: together they are its key."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or "inbound"
    digest = hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:16]
    return f"{sid}:{status}" if sid else digest


def _verifier(
    url: str, params: dict[str, str], header: str | None
) -> Callable[[Sequence[AccountKeys]], None]:
    def verify(accounts: Sequence[AccountKeys]) -> None:
        tokens = {a.secrets.get("auth_token") for a in accounts} - {None, ""}
        for token in tokens:
            try:
                twilio.verify_signature(url, params, header, str(token))
            except SignatureError:
                continue
            return
        raise SignatureError("X-Twilio-Signature does not match")

    return verify


async def twilio_webhook(request: Request) -> Response:
    form = await request.form()
    params = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    settings = request.app.state.settings
    url = twilio.public_url(settings.resolved_public_url(), request.url.path, request.url.query)
    await receive(
        request.app.state.db,
        request.path_params["workspace"],
        InboundDelivery(
            provider=TWILIO,
            key=_key(params),
            body="&".join(f"{k}={v}" for k, v in sorted(params.items())),
            headers={"x-twilio-signature": request.headers.get("x-twilio-signature", "")},
            verify=_verifier(url, params, request.headers.get("x-twilio-signature")),
            parse=lambda: twilio.parse(
                params, reference=request.query_params.get(REFERENCE_PARAMETER)
            ),
        ),
    )
    nudge_worker(request)
    # Twilio reads the answer as TwiML: an empty <Response/> sends nothing back by itself.
    return Response(EMPTY_TWIML, media_type="application/xml")
