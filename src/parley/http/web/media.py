"""``GET /media/proxy``: remote images customers send, fetched by parley, never embedded.

An agent's browser never loads a customer-supplied URL: a tracking pixel would learn who
read the message and when, and a hostile page could be framed. The timeline links images
to this proxy with an HMAC of the URL (``settings.secret_key``), so only URLs parley
itself put on a page are fetched: it is not an open proxy.

The fetch is guarded against server-side request forgery: http(s) only; the host is
resolved once and *every* address it resolves to must be public (no loopback, private,
link-local / cloud metadata, multicast, reserved, shared or IPv4-mapped forms of those;
``2130706433`` and ``0177.0.0.1`` resolve to 127.0.0.1 and are refused as such); the
connection goes to the checked address (the name kept for Host and TLS), so a second DNS
answer cannot rebind it; a redirect is followed (providers answer a media URL with one:
Twilio's points at its CDN) only to a URL that passes the same checks, at most
``MAX_REDIRECTS`` times; size and time (of the whole chain) are capped.

What comes back is served inline only when its first bytes are a PNG, JPEG, GIF or WebP,
with that type, ``nosniff`` and a ``default-src 'none'`` policy; anything else (SVG,
HTML, unknown) is an ``application/octet-stream`` attachment, so it downloads and never
runs in parley's origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import httpx2
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from parley.channels.http import tls_context
from parley.http.web.pages import signed_in
from parley.settings import Settings

log = logging.getLogger(__name__)

MEDIA_CSP = "default-src 'none'; sandbox"
MAX_REDIRECTS = 3
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
# 100.64.0.0/10 (carrier-grade NAT) is neither private nor global to ``ipaddress``.
SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """The URL (403) or what it answered (502) is not something the proxy will serve."""

    def __init__(self, reason: str, status_code: int = 403) -> None:
        super().__init__(reason)
        self.status_code = status_code


def signature(secret_key: str, url: str) -> str:
    return hmac.new(
        secret_key.encode(), b"media-proxy\0" + url.encode(), hashlib.sha256
    ).hexdigest()


def proxied(secret_key: str, url: str) -> str:
    """The proxy address for ``url``: what the timeline puts in ``src`` and ``href``."""
    return f"/media/proxy?u={quote(url, safe='')}&s={signature(secret_key, url)}"


def is_public(address: str) -> bool:
    """Whether ``address`` may be fetched: a global unicast address, nothing internal."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public(str(embedded)):
            return False
    return (
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not (isinstance(ip, ipaddress.IPv4Address) and ip in SHARED)
    )


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str
    path: str


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Where to connect for ``url``, every resolved address checked (see module doc)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http and https URLs")
    if parts.username or parts.password:
        raise Refused("credentials in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Refused("bad port") from exc
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise Refused("the host does not resolve") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise Refused("the host does not resolve")
    if not allow_private and not all(is_public(address) for address in addresses):
        raise Refused("the host is on a private or reserved network")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, addresses[0], path)


async def fetch(url: str, *, settings: Settings) -> tuple[bytes, str | None]:
    """The body (at most ``media_proxy_max_bytes``) and the media type to serve it as.

    The type is an image type only when the bytes say so; None means "download only".
    """
    async with httpx2.AsyncClient(
        follow_redirects=False,
        timeout=settings.media_proxy_timeout_seconds,
        trust_env=False,
        verify=tls_context(),
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target = await resolve(url, allow_private=settings.media_proxy_allow_private)
            body, location = await _get(client, target, limit=settings.media_proxy_max_bytes)
            if location is None:
                return body, raster_type(body)
            url = urljoin(url, location)
    raise Refused("too many redirects", 502)


async def _get(
    client: httpx2.AsyncClient, target: Target, *, limit: int
) -> tuple[bytes, str | None]:
    """One GET of an already checked ``target``: its body, or where it redirects to."""
    host = f"[{target.address}]" if ":" in target.address else target.address
    pinned = f"{target.scheme}://{host}:{target.port}{target.path}"
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    async with client.stream(
        "GET",
        pinned,
        headers={"Host": host_header, "Accept": "image/*"},
        extensions={"sni_hostname": target.host},
    ) as answer:
        location = answer.headers.get("location")
        if answer.is_redirect and location:
            return b"", location
        if answer.status_code != 200:
            raise Refused(f"the server answered {answer.status_code}", 502)
        declared = answer.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refused("too large", 502)
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise Refused("too large", 502)
            chunks.append(chunk)
    return b"".join(chunks), None


def raster_type(body: bytes) -> str | None:
    for magic, media_type in SIGNATURES.items():
        if body.startswith(magic):
            return media_type
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    return None


async def media_proxy(request: Request) -> Response:
    signed_in(request)
    settings: Settings = request.app.state.settings
    url = request.query_params.get("u", "")
    given = request.query_params.get("s", "")
    if not url or not hmac.compare_digest(given, signature(settings.secret_key, url)):
        return _refusal("bad signature", 403)
    try:
        async with asyncio.timeout(settings.media_proxy_timeout_seconds + 1):
            body, media_type = await fetch(url, settings=settings)
    except Refused as exc:
        log.info("media proxy refused %r: %s", url[:200], exc)
        return _refusal(str(exc), exc.status_code)
    except (httpx2.HTTPError, TimeoutError) as exc:
        log.info("media proxy could not fetch %r: %s", url[:200], exc.__class__.__name__)
        return _refusal("the image could not be fetched", 502)
    headers = {
        "Content-Security-Policy": MEDIA_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
    }
    if media_type is None:
        headers["Content-Disposition"] = 'attachment; filename="attachment.bin"'
        return Response(body, media_type="application/octet-stream", headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _refusal(reason: str, status_code: int) -> Response:
    return PlainTextResponse(
        f"refused: {reason}",
        status_code=status_code,
        headers={"Content-Security-Policy": MEDIA_CSP, "Cache-Control": "no-store"},
    )


def media_routes() -> list[Route]:
    return [Route("/media/proxy", media_proxy, methods=["GET"])]
