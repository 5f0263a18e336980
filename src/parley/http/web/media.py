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

Files a provider keeps behind its credentials (a WhatsApp media id; a Twilio media URL on
an account that asks for a login) are linked instead as ``/media/messages/{id}/{n}``:
the message is looked up in the agent's own store, and the file fetched with the
credentials of the account the customer wrote to (:mod:`parley.inbox.media`), through the
same checks.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx2
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from parley.channels.http import tls_context
from parley.channels.media import Download, MediaUnavailable, origin
from parley.channels.twilio_sms import media as twilio_media
from parley.channels.whatsapp_cloud import media as whatsapp_media
from parley.http.web.auth import in_transaction
from parley.http.web.pages import db_of, path_int, signed_in
from parley.inbox.media import HeldMedia, held_media
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


def _client(settings: Settings) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        follow_redirects=False,
        timeout=settings.media_proxy_timeout_seconds,
        trust_env=False,
        verify=tls_context(),
    )


async def fetch(
    download: Download,
    *,
    settings: Settings,
    client: httpx2.AsyncClient,
    trusted: frozenset[tuple[str, str, int | None]] = frozenset(),
) -> tuple[bytes, str | None]:
    """The body (at most ``media_proxy_max_bytes``) and the media type to serve it as.

    The type is an image type only when the bytes say so; None means "download only".
    ``download``'s headers go to its own origin, never to where it redirects. A URL on
    one of the ``trusted`` origins may be on a private network: the provider APIs the
    deployment is configured with, which parley calls anyway (the sandbox's, on
    loopback, in the demo).
    """
    url = download.url
    for _ in range(MAX_REDIRECTS + 1):
        allow_private = settings.media_proxy_allow_private or origin(url) in trusted
        target = await resolve(url, allow_private=allow_private)
        headers = download.headers if origin(url) == origin(download.url) else {}
        body, location = await _get(
            client, target, limit=settings.media_proxy_max_bytes, headers=headers
        )
        if location is None:
            return body, raster_type(body)
        url = urljoin(url, location)
    raise Refused("too many redirects", 502)


async def _get(
    client: httpx2.AsyncClient,
    target: Target,
    *,
    limit: int,
    headers: Mapping[str, str],
) -> tuple[bytes, str | None]:
    """One GET of an already checked ``target``: its body, or where it redirects to."""
    host = f"[{target.address}]" if ":" in target.address else target.address
    pinned = f"{target.scheme}://{host}:{target.port}{target.path}"
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    async with client.stream(
        "GET",
        pinned,
        headers={**headers, "Host": host_header, "Accept": "image/*"},
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
    return await _serve(
        settings, url, lambda client: fetch(Download(url), settings=settings, client=client)
    )


async def message_media(request: Request) -> Response:
    """Attachment ``n`` of one of the store's messages, fetched with the credentials of
    the account the customer wrote to."""
    login = signed_in(request)
    settings: Settings = request.app.state.settings
    message_id, index = path_int(request, "message_id"), path_int(request, "index")
    held = await in_transaction(
        db_of(request),
        lambda session: held_media(
            session, workspace_id=login.workspace_id, message_id=message_id, index=index
        ),
    )

    async def provider_file(client: httpx2.AsyncClient) -> tuple[bytes, str | None]:
        download = await _download(held, settings, client)
        providers = frozenset(
            origin(base) for base in (settings.whatsapp_base_url, settings.twilio_base_url)
        )
        return await fetch(download, settings=settings, client=client, trusted=providers)

    return await _serve(settings, f"message {message_id} attachment {index}", provider_file)


async def _download(held: HeldMedia, settings: Settings, client: httpx2.AsyncClient) -> Download:
    """Where the provider serves ``held`` now, with the credentials of the account the
    customer wrote to: the store's own, or the deployment's for the deployment's number
    (which a store may hold as an account that only receives, for its webhooks)."""
    own = held.secrets or {}
    if held.channel == "whatsapp":
        deployments = (
            held.secrets is None or held.store_address == settings.whatsapp_phone_number_id
        )
        token = own.get("access_token") or (settings.whatsapp_access_token if deployments else "")
        if not token:
            raise MediaUnavailable(
                f"parley holds no access token for WhatsApp number {held.store_address}: "
                "enter it on Settings → Channels to see its customers' files"
            )
        return await whatsapp_media.media_download(
            client,
            base_url=settings.whatsapp_base_url,
            api_version=settings.whatsapp_api_version,
            access_token=str(token),
            media_id=str(held.media_id),
            phone_number_id=held.store_address,
        )
    login: tuple[Any, Any] = (
        (settings.twilio_account_sid, settings.twilio_auth_token)
        if held.secrets is None
        else (own.get("account_sid"), own.get("auth_token"))
    )
    sid, auth_token = login
    if not auth_token:
        return Download(url=str(held.url))
    return twilio_media.media_download(
        str(held.url),
        base_url=settings.twilio_base_url,
        auth_token=str(auth_token),
        account_sid=str(sid) if sid else None,
    )


async def _serve(
    settings: Settings,
    what: str,
    get: Callable[[httpx2.AsyncClient], Awaitable[tuple[bytes, str | None]]],
) -> Response:
    """What ``get`` fetched, served safely (see the module doc), or the refusal."""
    try:
        async with (
            asyncio.timeout(settings.media_proxy_timeout_seconds + 1),
            _client(settings) as client,
        ):
            body, media_type = await get(client)
    except Refused as exc:
        log.info("media proxy refused %r: %s", what[:200], exc)
        return _refusal(str(exc), exc.status_code)
    except MediaUnavailable as exc:
        log.info("media of %s unavailable: %s", what, exc)
        return _refusal(str(exc), 502)
    except (httpx2.HTTPError, TimeoutError) as exc:
        log.info("media proxy could not fetch %r: %s", what[:200], exc.__class__.__name__)
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
    return [
        Route("/media/proxy", media_proxy, methods=["GET"]),
        Route("/media/messages/{message_id:int}/{index:int}", message_media, methods=["GET"]),
    ]
