"""Where a customer's photo or file is held by its provider, and how to ask for it.

WhatsApp's webhooks name a media id and nothing else: the file's address comes from the
Graph API, asked with the number's access token, and the file itself needs that token
too. Twilio's media URLs answer without a login unless the account turned on "HTTP Basic
Authentication for media access", when they need the account SID and auth token. What
each provider wants is decided here, next to its adapter's knowledge of its API, so the
inbox only asks "fetch attachment N of this message".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class MediaUnavailable(Exception):
    """The provider holds the file, but parley cannot fetch it: no credentials for the
    account, or the provider said no. The reason is fit to show an agent."""


@dataclass(frozen=True)
class Download:
    """One file to fetch: its URL and the headers its own origin needs.

    ``headers`` carry a credential: they go to ``url``'s origin only, never to where it
    redirects (Twilio's media URL redirects to a CDN that must not see the auth token).
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url``, with the scheme's default port filled in."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port
