"""``POST /webhooks/email/{workspace}``: inbound email in Mailgun's routes format.

Mailgun signs a timestamp and a one-time token; a timestamp outside five minutes is
refused and the token is the delivery's key, so a replay inside the window is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.channels.base import SignatureError
from parley.channels.email_inbound import mailgun
from parley.clock import utc_now
from parley.http.webhooks.inbound import InboundDelivery, nudge_worker, receive
from parley.workspaces.access import AccountKeys

MAILGUN = "mailgun"
KEPT_FIELDS = ("sender", "recipient", "subject", "Message-Id", "timestamp", "token")
MAX_FIELD_BYTES = 25 * 1024 * 1024
"""Mailgun's largest message, so the largest any one field (``body-html``, with an image
pasted inline as a ``data:`` URI) can be; the form parser's default of 1 MB would answer
such a customer's email 400 and Mailgun would drop it after its retries."""


def _verifier(fields: dict[str, str]) -> Callable[[Sequence[AccountKeys]], None]:
    def verify(accounts: Sequence[AccountKeys]) -> None:
        keys = {a.secrets.get("signing_key") for a in accounts} - {None, ""}
        last: SignatureError = SignatureError("Mailgun signature does not match")
        for key in keys:
            try:
                mailgun.verify_signature(
                    fields.get("timestamp", ""),
                    fields.get("token", ""),
                    fields.get("signature", ""),
                    str(key),
                    now=utc_now(),
                )
            except SignatureError as exc:
                last = exc
                continue
            return
        raise last

    return verify


async def email_webhook(request: Request) -> Response:
    form = await request.form(max_part_size=MAX_FIELD_BYTES)
    items = dict(form.multi_items())
    fields = {key: value for key, value in items.items() if isinstance(value, str)}
    answer = await receive(
        request.app.state.db,
        request.path_params["workspace"],
        InboundDelivery(
            provider=MAILGUN,
            key=fields.get("token") or fields.get("signature") or "",
            body=fields.get("body-plain", ""),
            headers={name: fields[name] for name in KEPT_FIELDS if name in fields},
            verify=_verifier(fields),
            parse=lambda: [mailgun.parse(items)],
        ),
    )
    nudge_worker(request)
    return JSONResponse(answer)
