"""``/unsubscribe/{token}``: one-click unsubscribe (RFC 8058).

POST unsubscribes with no cookie, login or confirmation (mail clients send
``List-Unsubscribe=One-Click``). GET only shows a page with a button: link scanners
prefetch URLs, and a prefetch must never unsubscribe anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from parley.customers import service as customers
from parley.db import Database
from parley.errors import NotFound
from parley.messaging.types import Purpose
from parley.messaging.unsubscribe import read_token

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Unsubscribe</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;
color:#1f2933}}button{{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;border:0;
background:#1f2933;color:#fff;cursor:pointer}}</style></head><body>{body}</body></html>"""
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
}


def _unsubscribe(
    db: Database, secret_key: str, token: str, *, previous_secret_keys: Sequence[str] = ()
) -> None:
    """Record the "no" on the profile the link names, or on the one it was merged into
    since the email went (that profile has the address now, and is the one messaged), and
    on the profile holding the address if another does (:func:`customers.record_refusal`)."""
    found = read_token(token, secret_key=secret_key, previous_secret_keys=previous_secret_keys)
    if found is None:
        raise NotFound("this unsubscribe link is not valid")
    workspace_id, customer_id, channel = found
    with db.transaction() as session:
        customer = customers.get_live_customer(
            session, workspace_id=workspace_id, customer_id=customer_id
        )
        customers.record_refusal(
            session,
            workspace_id=workspace_id,
            customer=customer,
            channel=channel,
            purposes=[Purpose.MARKETING],
            source="one-click unsubscribe",
        )


async def unsubscribe_page(request: Request) -> Response:
    token = request.path_params["token"]
    settings = request.app.state.settings
    if (
        read_token(
            token,
            secret_key=settings.secret_key,
            previous_secret_keys=settings.credentials_previous_secret_keys,
        )
        is None
    ):
        return HTMLResponse(PAGE.format(body="<p>This link is not valid.</p>"), 404, HEADERS)
    body = (
        "<h1>Unsubscribe from marketing email?</h1>"
        "<p>You will still get messages about your orders.</p>"
        f'<form method="post" action="{escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button type=submit>Unsubscribe</button></form>"
    )
    return HTMLResponse(PAGE.format(body=body), headers=HEADERS)


async def unsubscribe(request: Request) -> Response:
    state = request.app.state
    await run_in_threadpool(
        _unsubscribe,
        state.db,
        state.settings.secret_key,
        request.path_params["token"],
        previous_secret_keys=state.settings.credentials_previous_secret_keys,
    )
    return HTMLResponse(
        PAGE.format(body="<h1>You are unsubscribed.</h1><p>No more marketing email.</p>"),
        headers=HEADERS,
    )
