"""What every HTTP-speaking adapter shares: one pooled client and one error classifier.

Providers differ in their error bodies but agree on what HTTP itself says: a timeout, a
dropped connection, 429 or 5xx is worth retrying later, while any other 4xx means the
request itself is wrong and retrying cannot help; 401, and the codes an adapter names as
its provider's account refusals, say the store's credentials or account are at fault rather
than the message (:class:`AccountChannelError`). Adapters parse their own body for a
provider code and a readable message and hand both to :func:`error_for_status`, so the
transient/permanent split is decided in one place.
"""

from __future__ import annotations

import math
import ssl
from functools import lru_cache

import httpx2

from parley.channels.base import (
    AccountChannelError,
    ChannelError,
    PermanentChannelError,
    TransientChannelError,
)

# The worker keeps ~64 sends in flight per process (``worker_concurrency``); 100 pooled,
# kept-alive connections per provider leave headroom without a TLS handshake per send.
MAX_CONNECTIONS = 100
KEEPALIVE_EXPIRY_SECONDS = 30.0

# 408 is the server saying *it* timed out waiting for us: as retryable as our own timeout.
_RETRYABLE_4XX = frozenset({408, 429})
UNAUTHORIZED = 401


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The process's one verifying TLS context, for every client it builds.

    Building one loads the CA bundle, about 30 ms of CPU; a client made per request (the
    sandbox's receipts, the image proxy) paid that on every request, even over plain HTTP.
    """
    return httpx2.create_ssl_context()


def make_client(
    timeout: float, transport: httpx2.AsyncBaseTransport | None = None
) -> httpx2.AsyncClient:
    """Build the long-lived client an adapter reuses for every send.

    Every phase (connect, write, read, waiting for a pooled connection) gets the same
    explicit bound, so a stuck provider turns into a transient error instead of a hung
    worker slot. ``transport`` lets tests substitute ``httpx2.MockTransport``.
    """
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout),
        limits=httpx2.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
        transport=transport,
        follow_redirects=False,
        verify=tls_context(),
    )


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header given in seconds; ``None`` when absent or unreadable.

    The HTTP-date form is deliberately not parsed: it would need the wall clock here, and
    without a hint the job queue's own backoff is a safe default.
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def is_transient_status(status_code: int) -> bool:
    """Whether an HTTP status means "try again later" rather than "this will never work"."""
    return status_code in _RETRYABLE_4XX or status_code >= 500


def error_for_status(
    response: httpx2.Response,
    *,
    reason: str,
    provider_code: str | None = None,
    transient: bool | None = None,
    account_codes: frozenset[str] = frozenset(),
) -> ChannelError:
    """Classify a non-2xx response.

    ``transient`` lets an adapter override the status-based decision for provider codes
    that contradict their HTTP status (WhatsApp reports some rate limits as plain 400);
    ``account_codes`` are the provider's codes for a refused account, whatever the status.
    """
    if transient is None:
        transient = is_transient_status(response.status_code)
    if transient:
        return TransientChannelError(
            reason,
            provider_code=provider_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code == UNAUTHORIZED or provider_code in account_codes:
        return AccountChannelError(reason, provider_code=provider_code)
    return PermanentChannelError(reason, provider_code=provider_code)


def error_for_exception(exc: httpx2.HTTPError, *, provider: str) -> ChannelError:
    """Classify a failure that produced no response at all.

    A timeout after the request was written is ambiguous (the provider may have sent the
    message); it is still reported as transient, and reconciling a possible duplicate is
    the job layer's business.
    """
    if isinstance(exc, httpx2.TimeoutException):
        return TransientChannelError(f"{provider} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx2.UnsupportedProtocol | httpx2.LocalProtocolError):
        # Our own configuration or request is malformed: retrying sends the same thing.
        return PermanentChannelError(f"cannot call {provider}: {exc}")
    return TransientChannelError(f"could not reach {provider}: {type(exc).__name__}: {exc}")


def status_detail(status_code: int, provider_code: str | None) -> str:
    """``HTTP 400, error 21610`` (or ``HTTP 502`` when the body carried no code)."""
    if provider_code:
        return f"HTTP {status_code}, error {provider_code}"
    return f"HTTP {status_code}"


def json_or_empty(response: httpx2.Response) -> dict[str, object]:
    """The response body as a JSON object, or ``{}`` (a proxy's HTML 502, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
