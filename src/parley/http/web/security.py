"""Headers every response carries, and the CSRF check every cookie-authenticated write
passes.

The CSRF check is ASGI middleware rather than a per-handler habit, so a route added later
is protected without anyone remembering to: every POST, PUT, PATCH and DELETE outside the
token-authenticated prefixes (webhooks, the bearer-key API, the sandbox, website chat,
one-click unsubscribe) must carry the session's token, in an ``X-CSRF-Token`` header or a
``csrf_token`` form field, and any ``Origin`` it sends must be this site's.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN_AUTHENTICATED = ("/webhooks/", "/api/v1/", "/sandbox/", "/webchat/", "/unsubscribe/")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 1_000_000


class SecurityHeaders:
    """Adds CSP, ``nosniff`` and framing rules to every response that did not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", DEFAULT_CSP.encode()))
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def needs_csrf(method: str, path: str) -> bool:
    return method in MUTATING and not path.startswith(TOKEN_AUTHENTICATED)


def same_origin(headers: Headers, scope: Scope) -> bool:
    """No ``Origin`` (same-origin form posts from old browsers, curl) or this site's own."""
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    scheme = "https" if scope.get("scheme") in {"https", "wss"} else "http"
    forwarded = headers.get("x-forwarded-proto")
    allowed = {f"{scheme}://{host}", f"{forwarded or scheme}://{host}"}
    return origin in allowed


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body, and whether it fit under ``MAX_FORM_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return b"", False
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks), True


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def submitted_token(headers: Headers, body: bytes) -> str | None:
    token = headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get(CSRF_FIELD)
        return values[0] if values else None
    return None


def tokens_match(submitted: str | None, expected: str | None) -> bool:
    if not submitted or not expected:
        return False
    return hmac.compare_digest(submitted.encode(), expected.encode())


def refuse(reason: str) -> PlainTextResponse:
    return PlainTextResponse(f"refused: {reason}", status_code=403)


def client_ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"
