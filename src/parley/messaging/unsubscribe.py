"""One-click unsubscribe tokens (RFC 8058) for marketing email.

A token names the workspace, the customer and the channel and is signed with the
deployment's secret key, so a link works for as long as the key does (well past the 30
days the bulk-sender rules ask) and cannot be forged to unsubscribe someone else. A
rotation does not end it: a link signed with a former key listed in
``PARLEY_CREDENTIALS_PREVIOUS_SECRET_KEYS`` still opens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, body: str) -> bytes:
    return hmac.new(secret_key.encode(), body.encode(), hashlib.sha256).digest()[:18]


def make_token(*, secret_key: str, workspace_id: int, customer_id: int, channel: str) -> str:
    body = _b64(json.dumps([workspace_id, customer_id, channel], separators=(",", ":")).encode())
    return f"{body}.{_b64(_signature(secret_key, body))}"


def read_token(
    token: str, *, secret_key: str, previous_secret_keys: Sequence[str] = ()
) -> tuple[int, int, str] | None:
    """The (workspace, customer, channel) a genuine token names; None for anything else.

    Genuine: signed with the current key or one of ``previous_secret_keys``, so the links
    in email sent before a rotation keep working.
    """
    body, _, signature = token.partition(".")
    try:
        signed = _unb64(signature)
        if not any(
            hmac.compare_digest(signed, _signature(key, body))
            for key in (secret_key, *previous_secret_keys)
        ):
            return None
        workspace_id, customer_id, channel = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not (isinstance(workspace_id, int) and isinstance(customer_id, int)):
        return None
    return workspace_id, customer_id, str(channel)
