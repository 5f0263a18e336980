"""The image proxy: signed URLs only, no internal addresses, no redirects, images inline and
everything else as a download."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from parley.http.web import media
from parley.http.web.media import is_public, proxied
from web_support import AGENT, browser, seed_team, sign_in, web_app

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
PAGE = b"<html><script>alert(1)</script></html>"


class StandIn(BaseHTTPRequestHandler):
    """The image host the tests point the proxy at."""

    routes = {
        "/photo.png": (200, "image/png", PNG),
        # A lie about the type: the bytes decide, so this is not served as an image.
        "/drawing.png": (200, "image/png", SVG),
        "/page.html": (200, "text/html", PAGE),
        "/huge.png": (200, "image/png", PNG + b"\x00" * 2_000),
    }
    redirects = {
        "/moved": "http://169.254.169.254/latest/meta-data/",
        # Twilio's media URL answers with a redirect to the file on its CDN.
        "/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1": "/cdn/photo.png",
        "/cdn/photo.png": "/photo.png",
        "/to-file": "file:///etc/passwd",
        "/loop": "/loop",
    }
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path in self.redirects:
            self.send_response(307)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        status, media_type, body = self.routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_host() -> Iterator[str]:
    StandIn.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def team(db):
    return seed_team(db)


def proxy(client, app, url):
    """Load a proxied image as the browser's <img> does."""
    return client.get(
        proxied(app.state.settings.secret_key, url),
        headers={"sec-fetch-mode": "no-cors", "sec-fetch-dest": "image"},
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://localhost/x.png",
        "http://[::1]/x.png",
        "http://2130706433/x.png",
        "http://0177.0.0.1/x.png",
        "http://0x7f.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/x.png",
        "http://192.168.1.1/x.png",
        "http://100.64.0.1/x.png",
        "http://0.0.0.0/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://[fd00:ec2::254]/x.png",
        "http://224.0.0.1/x.png",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "http://user:pw@example.com/x.png",
    ],
)
def test_internal_addresses_and_other_schemes_are_refused(db, team, url, image_host):
    app = web_app(db)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = proxy(client, app, url)
    assert answer.status_code == 403, (url, answer.text)
    assert answer.text.startswith("refused:")
    assert StandIn.hits == []


def test_a_bad_or_missing_signature_is_refused_before_any_fetch(db, team, image_host):
    app = web_app(db, media_proxy_allow_private=True)
    url = f"{image_host}/photo.png"
    with browser(app) as client:
        sign_in(client, AGENT)
        forged = client.get(f"/media/proxy?u={quote(url, safe='')}&s={'0' * 64}")
        missing = client.get(f"/media/proxy?u={quote(url, safe='')}")
        other_key = client.get(proxied("another-secret", url))
    assert [forged.status_code, missing.status_code, other_key.status_code] == [403, 403, 403]
    assert StandIn.hits == []


def test_the_proxy_needs_a_signed_in_agent(db, team, image_host):
    app = web_app(db, media_proxy_allow_private=True)
    with browser(app) as client:
        answer = proxy(client, app, f"{image_host}/photo.png")
    assert answer.status_code == 401
    assert StandIn.hits == []


def test_a_raster_image_is_served_inline_with_nosniff_and_no_script(db, team, image_host):
    app = web_app(db, media_proxy_allow_private=True)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = proxy(client, app, f"{image_host}/photo.png")
    assert answer.status_code == 200
    assert answer.content == PNG
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert "content-disposition" not in answer.headers


@pytest.mark.parametrize("path", ["/drawing.png", "/page.html"])
def test_svg_and_html_download_as_octet_stream_whatever_they_claim(db, team, image_host, path):
    app = web_app(db, media_proxy_allow_private=True)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = proxy(client, app, f"{image_host}{path}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_redirect_is_followed_to_the_image_it_points_at(db, team, image_host):
    app = web_app(db, media_proxy_allow_private=True)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = proxy(client, app, f"{image_host}/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1")
    assert answer.status_code == 200, answer.text
    assert answer.content == PNG
    assert answer.headers["content-type"] == "image/png"
    assert StandIn.hits == [
        "/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "/cdn/photo.png",
        "/photo.png",
    ]


def test_every_redirect_target_is_checked_like_the_first_url(db, team, image_host, monkeypatch):
    """Only the stand-in's own address counts as public here, so the redirect to the cloud
    metadata address is refused as a link-local one would be, without connecting to it."""
    monkeypatch.setattr(media, "is_public", lambda address: address == "127.0.0.1")
    app = web_app(db)
    with browser(app) as client:
        sign_in(client, AGENT)
        metadata = proxy(client, app, f"{image_host}/moved")
        to_file = proxy(client, app, f"{image_host}/to-file")
        loop = proxy(client, app, f"{image_host}/loop")
    assert (metadata.status_code, metadata.text) == (
        403,
        "refused: the host is on a private or reserved network",
    )
    assert (to_file.status_code, to_file.text) == (403, "refused: only http and https URLs")
    assert (loop.status_code, loop.text) == (502, "refused: too many redirects")
    assert StandIn.hits == ["/moved", "/to-file", *["/loop"] * (media.MAX_REDIRECTS + 1)]


def test_oversized_bodies_are_refused(db, team, image_host):
    app = web_app(db, media_proxy_allow_private=True, media_proxy_max_bytes=1_000)
    with browser(app) as client:
        sign_in(client, AGENT)
        huge = proxy(client, app, f"{image_host}/huge.png")
    assert huge.status_code == 502
    assert StandIn.hits == ["/huge.png"]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("172.16.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("ff02::1", False),
    ],
)
def test_is_public(address, allowed):
    assert is_public(address) is allowed
