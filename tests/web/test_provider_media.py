"""Files a provider keeps behind the account's credentials: a WhatsApp photo named only
by its media id (looked up on the Graph API with the number's token), and a Twilio media
URL on an account that asks for its login. Each is fetched with the credentials of the
account the customer wrote to, the login never leaves the provider's API, and only the
store's own agents can open it."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from parley.channels.base import Attachment, ChannelKind
from parley.workspaces import service as workspaces
from support import customer_writes
from web_support import AGENT, OTHER_ADMIN, browser, seed_team, sign_in, web_app

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
DEPLOYMENT_NUMBER = "100000000000001"  # the settings' whatsapp_phone_number_id
DEPLOYMENT_TOKEN = "sandbox-whatsapp-token"
STORE_NUMBER = "100000000000777"
STORE_TOKEN = "store-whatsapp-token"
TWILIO_SID = "ACsandbox00000000000000000000000000"  # the settings' twilio_account_sid
TWILIO_TOKEN = "sandbox-twilio-auth-token"


class Provider(BaseHTTPRequestHandler):
    """Graph's media lookup and Meta's file host, and Twilio's media and CDN, on one port,
    each asking for the credentials the real one asks for."""

    tokens = {DEPLOYMENT_NUMBER: DEPLOYMENT_TOKEN, STORE_NUMBER: STORE_TOKEN}
    seen: list[tuple[str, str | None]] = []
    port = 0
    cdn_port = 0

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        said = self.headers.get("Authorization")
        self.seen.append((parts.path, said))
        if parts.path.startswith("/v21.0/"):
            number = query.get("phone_number_id", "")
            if said != f"Bearer {self.tokens.get(number)}":
                return self._json(401, {"error": {"message": "Invalid OAuth access token."}})
            media_id = parts.path.rpartition("/")[2]
            file = f"http://127.0.0.1:{self.port}/lookaside/{media_id}?for={number}"
            return self._json(200, {"url": file, "mime_type": "image/jpeg", "id": media_id})
        if parts.path.startswith("/lookaside/"):
            if said != f"Bearer {self.tokens.get(query.get('for', ''))}":
                return self._send(401, b"")
            return self._send(200, PNG)
        if parts.path.startswith("/2010-04-01/Accounts/"):
            login = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
            if said != f"Basic {login}":
                return self._send(401, b"")
            self.send_response(307)
            cdn = f"http://127.0.0.1:{self.cdn_port}"
            self.send_header("Location", f"{cdn}/cdn/{parts.path.rpartition('/')[2]}.png")
            self.end_headers()
            return None
        if parts.path.startswith("/cdn/"):
            return self._send(200, PNG)
        return self._send(404, b"")

    def _json(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, media_type: str = "image/png") -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    """The providers' APIs, and on another port (so another origin) Twilio's CDN."""
    Provider.seen = []
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Provider) for _ in range(2)]
    Provider.port, Provider.cdn_port = (server.server_address[1] for server in servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{Provider.port}"
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team, provider):
    return web_app(
        db,
        whatsapp_base_url=provider,
        twilio_base_url=provider,
        media_proxy_allow_private=True,
    )


def whatsapp_photo(db, *, to: str) -> int:
    received = customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender="+447911123456",
        text="",
        account=to,
        attachments=(Attachment(kind="image", provider_media_id="4410", mime_type="image/jpeg"),),
    )
    assert received.message_id is not None
    return received.message_id


def connect_store_number(db, **secrets: str) -> None:
    with db.transaction() as session:
        workspaces.add_channel_account(
            session,
            workspace_id=1,
            channel="whatsapp",
            provider="whatsapp_cloud",
            address=STORE_NUMBER,
            secrets={"app_secret": "s", "verify_token": "v", **secrets},
        )


def test_a_whatsapp_photo_shows_in_the_timeline_from_graph_with_the_numbers_token(db, app):
    message_id = whatsapp_photo(db, to=DEPLOYMENT_NUMBER)
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{_conversation(db, message_id)}").text
        answer = client.get(f"/media/messages/{message_id}/0")
    assert f'<img src="/media/messages/{message_id}/0"' in page
    assert "kept with the provider" not in page
    assert answer.status_code == 200, answer.text
    assert answer.content == PNG
    assert answer.headers["content-type"] == "image/png"
    assert Provider.seen == [
        ("/v21.0/4410", f"Bearer {DEPLOYMENT_TOKEN}"),
        ("/lookaside/4410", f"Bearer {DEPLOYMENT_TOKEN}"),
    ]


def test_a_photo_sent_to_a_stores_own_number_is_fetched_with_that_numbers_token(db, app):
    connect_store_number(db, access_token=STORE_TOKEN)
    message_id = whatsapp_photo(db, to=STORE_NUMBER)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = client.get(f"/media/messages/{message_id}/0")
    assert answer.status_code == 200, answer.text
    assert answer.content == PNG
    assert Provider.seen == [
        ("/v21.0/4410", f"Bearer {STORE_TOKEN}"),
        ("/lookaside/4410", f"Bearer {STORE_TOKEN}"),
    ]


def test_a_number_whose_token_parley_lacks_says_so_and_asks_nothing(db, app):
    connect_store_number(db)
    message_id = whatsapp_photo(db, to=STORE_NUMBER)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = client.get(f"/media/messages/{message_id}/0")
    assert answer.status_code == 502
    assert answer.text == (
        f"refused: parley holds no access token for WhatsApp number {STORE_NUMBER}: enter "
        "it on Settings → Channels to see its customers' files"
    )
    assert Provider.seen == []


def test_a_twilio_photo_is_fetched_with_the_accounts_login_which_the_cdn_never_sees(
    db, app, provider
):
    url = f"{provider}/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM1/Media/ME1"
    message_id = _sms_photo(db, url)
    with browser(app) as client:
        sign_in(client, AGENT)
        page = client.get(f"/inbox/{_conversation(db, message_id)}").text
        answer = client.get(f"/media/messages/{message_id}/0")
    assert f'<img src="/media/messages/{message_id}/0"' in page
    assert answer.status_code == 200, answer.text
    assert answer.content == PNG
    login = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert Provider.seen == [
        (f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM1/Media/ME1", f"Basic {login}"),
        ("/cdn/ME1.png", None),
    ]


@pytest.mark.parametrize(
    "where",
    [
        # Another origin than the configured Twilio API's.
        "http://127.0.0.1:{cdn_port}/2010-04-01/Accounts/" + TWILIO_SID + "/Messages/MM1/Media/ME1",
        # Another account's media on the Twilio API.
        "{provider}/2010-04-01/Accounts/AC" + "1" * 32 + "/Messages/MM1/Media/ME1",
    ],
)
def test_a_media_url_off_the_accounts_api_gets_no_login(db, app, provider, where):
    url = where.format(cdn_port=Provider.cdn_port, provider=provider)
    message_id = _sms_photo(db, url)
    with browser(app) as client:
        sign_in(client, AGENT)
        answer = client.get(f"/media/messages/{message_id}/0")
    assert answer.status_code == 502
    assert [said for _, said in Provider.seen] == [None]


def test_another_stores_agent_cannot_open_a_customers_file(db, app):
    message_id = whatsapp_photo(db, to=DEPLOYMENT_NUMBER)
    with browser(app) as client:
        sign_in(client, OTHER_ADMIN)
        answer = client.get(f"/media/messages/{message_id}/0")
        beyond = client.get(f"/media/messages/{message_id}/1")
    assert (answer.status_code, beyond.status_code) == (404, 404)
    assert Provider.seen == []


def _sms_photo(db, url: str) -> int:
    received = customer_writes(
        db,
        channel=ChannelKind.SMS,
        sender="+12025550143",
        text="",
        attachments=(Attachment(kind="image", url=url, mime_type="image/jpeg"),),
    )
    assert received.message_id is not None
    return received.message_id


def _conversation(db, message_id: int) -> int:
    from parley.messaging.models import Message

    with db.transaction() as session:
        conversation_id = session.get_one(Message, message_id).conversation_id
    assert conversation_id is not None
    return conversation_id


def test_only_the_configured_provider_origins_may_be_on_a_private_network(db, team, provider):
    """The demo's sandbox serves the providers on loopback: parley fetches from the
    origins it is configured to call anyway, and from nowhere else private."""
    app = web_app(db, whatsapp_base_url=provider, twilio_base_url=provider)
    photo = whatsapp_photo(db, to=DEPLOYMENT_NUMBER)
    twilio = _sms_photo(db, f"{provider}/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM1/Media/ME1")
    with browser(app) as client:
        sign_in(client, AGENT)
        shown = client.get(f"/media/messages/{photo}/0")
        # Twilio's answer redirects to its CDN, here on another loopback origin.
        elsewhere = client.get(f"/media/messages/{twilio}/0")
    assert shown.status_code == 200, shown.text
    assert elsewhere.status_code == 403
    assert elsewhere.text == "refused: the host is on a private or reserved network"
    assert [path for path, _ in Provider.seen][-1].startswith("/2010-04-01/")
