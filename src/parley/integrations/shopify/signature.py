"""Shopify's webhook signature: ``X-Shopify-Hmac-Sha256``.

Shopify signs the raw request body with HMAC-SHA256, keyed with the app's client secret, and
sends the digest base64-encoded. Verify the bytes exactly as received, before parsing: any
re-serialisation (whitespace, key order) changes the digest. While a secret rotates, Shopify
may sign with either the old or the new secret for up to an hour, so :func:`verify` accepts
any of the secrets it is given (RELIABILITY W1, W2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

HEADER = "X-Shopify-Hmac-Sha256"

_DIGEST_SIZE = hashlib.sha256().digest_size


def _digest(body: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()


def sign(body: bytes, secret: str) -> str:
    """Return the ``X-Shopify-Hmac-Sha256`` value Shopify would send for ``body``.

    Args:
        body: the raw request body, byte for byte.
        secret: the app's client secret.

    Returns:
        The base64-encoded HMAC-SHA256 digest.
    """
    return base64.b64encode(_digest(body, secret)).decode("ascii")


def verify(body: bytes, header_value: str | None, secrets: Sequence[str]) -> bool:
    """Tell whether ``header_value`` is a valid signature of ``body`` under any secret.

    Args:
        body: the raw request body, byte for byte.
        header_value: the ``X-Shopify-Hmac-Sha256`` header, or None when it was absent.
        secrets: the client secrets currently accepted (old and new during a rotation).

    Returns:
        False for a missing, empty or non-base64 header, and for a digest no secret produces.
    """
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] of characters: every one-letter "secret" would be tried.
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not header_value:
        return False
    try:
        received = base64.b64decode(header_value, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(received) != _DIGEST_SIZE:
        return False
    matched = False
    for secret in secrets:
        # An empty secret is a misconfiguration, never a key anyone should be able to sign with.
        if secret:
            # Keep comparing after a match so timing does not reveal which secret matched.
            matched |= hmac.compare_digest(_digest(body, secret), received)
    return matched
