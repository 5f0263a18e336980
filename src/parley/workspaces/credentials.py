"""Provider credentials sealed at rest.

This module imports no parley models (the models import its column types); the admin's
write-only operations on credentials are in ``workspaces/service.py``.

Channel secrets (``ChannelAccount.secrets``) and the Shopify webhook secrets are stored as
Fernet tokens (AES-128-CBC with HMAC-SHA256) by the :class:`Sealed` and :class:`SealedJson`
column types, so every reader (the webhook verifiers, the CLI, the demo) keeps working
with plain values while the database, its backups and its replicas only ever hold
ciphertext.

The key is derived with HKDF-SHA256 from ``PARLEY_SECRET_KEY`` (its own ``info`` label, so
it is independent of the session and unsubscribe signatures made with the same secret),
read from the process environment when first needed: the server, the worker, the CLI and
``parley migrate`` all run with the same environment, and so with the same key.

What this protects, honestly: a leaked database dump or backup without the environment.
It does not protect against someone who can read the server's environment (they hold the
key), and with the development default secret key it is obfuscation only.

Rotating the key: set the new ``PARLEY_SECRET_KEY`` and list the old one in
``PARLEY_CREDENTIALS_PREVIOUS_SECRET_KEYS`` (a JSON list). Values are read with any listed
key and written with the new one, so each credential moves to the new key when it is next
saved; the old key must stay listed until every credential has been saved again, and a
key dropped too early makes the credentials it sealed unreadable (re-enter them on the
Channels page). There is no bulk re-encryption command yet.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_HKDF_INFO = b"parley channel credentials v1"

# The secrets each provider's webhooks are verified with, and the channel it serves.
CHANNEL_PROVIDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "whatsapp_cloud": ("whatsapp", ("app_secret", "verify_token")),
    "instagram": ("instagram", ("app_secret", "verify_token")),
    "twilio": ("sms", ("auth_token",)),
    "mailgun": ("email", ("signing_key",)),
}
SENDING_FIELDS: dict[str, tuple[str, ...]] = {
    "whatsapp_cloud": ("access_token", "business_account_id"),
    "twilio": ("account_sid",),
    "instagram": ("access_token",),
}
"""Optional fields with which a store sends from its own account rather than the
deployment's: the WhatsApp number's access token (and its business account, whose
templates are then read), the Twilio account SID (its auth token is the webhook secret
already), the Instagram account's token."""
SENDS_WITH: dict[str, tuple[str, ...]] = {
    "whatsapp_cloud": ("access_token",),
    "twilio": ("account_sid", "auth_token"),
    "instagram": ("access_token",),
}
"""What an account must hold for messages to go from it."""
MAX_SECRET_CHARS = 4_096


class CredentialsUnreadable(Exception):
    """A sealed value no configured key opens: the key changed without being listed as a
    previous key. Raised rather than answered as "no secret" so nobody mistakes a key
    problem for a missing credential."""


def derive_key(secret_key: str) -> bytes:
    """The Fernet key for credentials, from the deployment's secret key."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


@lru_cache(maxsize=1)
def _keyring() -> MultiFernet:
    from parley.settings import get_settings

    settings = get_settings()
    keys = [settings.secret_key, *settings.credentials_previous_secret_keys]
    return MultiFernet([Fernet(derive_key(key)) for key in keys])


def seal(plain: str) -> str:
    """Encrypt ``plain`` under the current key."""
    return _keyring().encrypt(plain.encode()).decode("ascii")


@lru_cache(maxsize=1024)
def unseal(sealed: str) -> str:
    """Decrypt a value :func:`seal` wrote under the current or a previous key.

    Remembered per token: every webhook reads its store's secret, and a token opens to the
    same text for as long as the process's keyring lasts (the whole process).
    """
    try:
        return _keyring().decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise CredentialsUnreadable(
            "a stored credential cannot be decrypted with the configured secret keys"
        ) from exc


class Sealed(TypeDecorator[str]):
    """A text column whose values are stored encrypted; Python sees the plain text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else unseal(value)


class SealedJson(TypeDecorator[dict[str, Any]]):
    """A JSON object stored encrypted as one token: not even its keys are readable."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else seal(json.dumps(value, sort_keys=True))

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        opened: dict[str, Any] = json.loads(unseal(value))
        return opened
