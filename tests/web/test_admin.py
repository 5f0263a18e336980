"""The admin pages: admins only, credentials sealed and write-only, policies, journeys with
their templates and live preview, the team, the audit log and the customer export."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from parley.accounts import service as accounts
from parley.accounts.models import AuditEntry, Invite, LoginSession, Membership, User
from parley.channels.base import (
    AccountChannelError,
    ChannelKind,
    SendingAccount,
    TemplateReview,
    TransientChannelError,
)
from parley.channels.email_inbound import mailgun
from parley.channels.email_smtp.domain import DnsUnavailable, SendingDomain
from parley.channels.registry import ProviderCheck
from parley.clock import utc_now
from parley.customers.models import Customer
from parley.http.web.admin import channels as admin_channels
from parley.jobs import queue
from parley.jobs.models import Job
from parley.journeys.models import Journey
from parley.messaging import refusals
from parley.messaging.models import Message, MessageTemplate, SendingDomainCheck
from parley.messaging.quiet_hours import QuietHours
from parley.messaging.senders import sending_accounts
from parley.workspaces.models import ChannelAccount, Workspace
from support import (
    SECRET,
    RecordingAdapter,
    count,
    deliveries,
    drain,
    hold_next_send,
    make_worker,
    meta_holds,
    post,
    promotions_without_caps,
    recording_adapters,
    rows,
    signed,
)
from web_support import (
    ADMIN,
    AGENT,
    OTHER_ADMIN,
    browser,
    login_as,
    login_form_token,
    seed_team,
    sign_in,
    web_app,
)

HTML = {"accept": "text/html"}
NEW_KEY = "zq7k-signing-key-typed-by-the-admin"
NEW_SHOPIFY = "shopify-secret-typed-by-the-admin-91c2"

ADMIN_GETS = (
    "/admin",
    "/admin/channels",
    "/admin/policies",
    "/admin/journeys",
    "/admin/journeys/satisfaction_check",
    "/admin/journeys/dispatch/templates/dispatch/sms",
    "/admin/failed",
    "/admin/team",
    "/admin/privacy",
    "/admin/audit",
    "/admin/export/customers.csv",
)


def admin_posts(team) -> tuple[tuple[str, dict[str, str]], ...]:
    return (
        ("/admin/general", {"name": "Taken", "timezone": "UTC"}),
        ("/admin/quiet-hours", {"opens": "9", "closes": "20", "sundays": "on"}),
        ("/admin/frequency-caps", {"email": "0", "sms": "0", "whatsapp": "0", "instagram": "0"}),
        ("/admin/marketing-pause", {"paused": "on"}),
        ("/admin/marketing-rate", {"per_hour": "1"}),
        ("/admin/channels", {"provider": "twilio", "address": "+15550001", "auth_token": "x"}),
        ("/admin/channels/1/secrets", {"auth_token": "stolen"}),
        ("/admin/channels/1/active", {"is_active": "false"}),
        ("/admin/channels/1/check", {}),
        ("/admin/shopify", {"shopify_secret": "stolen"}),
        ("/admin/email-sender", {"address": "orders@north.example", "dkim_selector": ""}),
        ("/admin/email-sender/check", {}),
        ("/admin/email-sender/remove", {}),
        ("/admin/policies", {"title": "Hacked", "text": "x", "return_window_days": "1"}),
        ("/admin/journeys/dispatch/enabled", {"is_enabled": "false"}),
        ("/admin/journeys/satisfaction_check/timing", {"wait_0": "30"}),
        (
            "/admin/journeys/dispatch/templates/dispatch/sms",
            {"text": "changed"},
        ),
        ("/admin/journeys/preview", {"message": "dispatch", "channel": "sms", "text": "x"}),
        ("/admin/journeys/preview/email", {"message": "dispatch", "channel": "email", "text": "x"}),
        ("/admin/failed/retry", {}),
        ("/admin/failed/1/retry", {}),
        ("/admin/failed/held/1/arrived", {}),
        ("/admin/failed/held/1/send-again", {}),
        ("/admin/team/invite", {"email": "friend@example.com", "role": "admin"}),
        (f"/admin/team/{team.agent_id}/role", {"role": "admin"}),
        (f"/admin/team/{team.admin_id}/remove", {}),
        ("/admin/team/invites/1/revoke", {}),
    )


@pytest.fixture
def team(db):
    return seed_team(db)


@pytest.fixture
def app(db, team):
    return web_app(db)


def snapshot(db) -> tuple:
    """Everything an admin route could change, to prove a refusal changed nothing."""
    with db.transaction() as session:
        workspaces = [
            (w.name, w.shopify_secret, w.settings, w.timezone)
            for w in session.query(Workspace).order_by(Workspace.id)
        ]
        accounts = [
            (a.address, a.secrets, a.is_active)
            for a in session.query(ChannelAccount).order_by(ChannelAccount.id)
        ]
        journeys = [
            (j.key, j.is_enabled, j.version) for j in session.query(Journey).order_by(Journey.id)
        ]
        members = [(m.user_id, m.role) for m in session.query(Membership).order_by(Membership.id)]
        jobs = [(j.id, j.status, j.attempts) for j in session.query(Job).order_by(Job.id)]
    return (
        workspaces,
        accounts,
        journeys,
        members,
        jobs,
        count(db, MessageTemplate),
        count(db, Invite),
        count(db, AuditEntry, AuditEntry.action != "sign_in"),
        [(d.domain, d.verifications) for d in rows(db, SendingDomainCheck, order_by=_domain)],
    )


def _domain(model):
    return model.domain


def audit_actions(db, action: str) -> list[AuditEntry]:
    return rows(db, AuditEntry, AuditEntry.action == action)


def test_an_agent_gets_403_on_every_admin_route_and_nothing_changes(app, db, team):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, AGENT)
        for path in ADMIN_GETS:
            assert client.get(path, headers=HTML).status_code == 403, path
        for path, data in admin_posts(team):
            answer = client.post(path, data={**data, "csrf_token": csrf})
            assert answer.status_code == 403, path
    assert snapshot(db) == before


def test_an_admin_sees_every_admin_page_with_the_sub_navigation(app):
    with browser(app) as client:
        sign_in(client, ADMIN)
        for path in ADMIN_GETS[:-1]:
            answer = client.get(path, headers=HTML)
            assert answer.status_code == 200, path
            assert 'data-test="admin-nav"' in answer.text
            assert 'href="/admin/canned-replies"' in answer.text


def test_admin_writes_without_the_csrf_token_are_refused(app, db, team):
    before = snapshot(db)
    with browser(app) as client:
        sign_in(client, ADMIN)
        for path, data in admin_posts(team):
            assert client.post(path, data=data).status_code == 403, path
    assert snapshot(db) == before


# Credentials


def connect_mailgun(client, csrf: str, address: str = "help@demo-new.example") -> None:
    answer = client.post(
        "/admin/channels",
        data={
            "csrf_token": csrf,
            "provider": "mailgun",
            "address": address,
            "signing_key": NEW_KEY,
        },
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/admin/channels?done=connected"


def mailgun_post(client, slug: str, key: str, recipient: str):
    timestamp, token = str(int(time.time())), f"token-{time.time_ns()}"
    return client.post(
        f"/webhooks/email/{slug}",
        data={
            "sender": "grace@example.com",
            "recipient": recipient,
            "subject": "Hello",
            "body-plain": "Is my parcel on its way?",
            "Message-Id": f"<{token}@mail.example.com>",
            "timestamp": timestamp,
            "token": token,
            "signature": mailgun.sign(timestamp, token, key),
        },
    )


def raw_column(db, sql: str) -> list:
    with db.transaction() as session:
        return [row[0] for row in session.execute(text(sql))]


def test_a_connected_channels_secret_is_stored_encrypted_and_its_webhooks_verify(app, db):
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        connect_mailgun(client, csrf, "help@other.example")
        refused = mailgun_post(client, "other", "not-the-key", "help@other.example")
        accepted = mailgun_post(client, "other", NEW_KEY, "help@other.example")
    assert refused.status_code == 401
    assert accepted.status_code == 200, accepted.text
    stored = raw_column(db, "SELECT secrets FROM channel_accounts WHERE provider = 'mailgun'")
    assert len(stored) == 2
    assert all(isinstance(value, str) and value.startswith("gAAAA") for value in stored)
    assert not any(NEW_KEY in value or "signing_key" in value for value in stored)
    (account,) = rows(db, ChannelAccount, ChannelAccount.address == "help@other.example")
    assert account.secrets == {"signing_key": NEW_KEY}
    assert count(db, Message) == 1


def test_the_channels_page_never_shows_a_saved_secret(app, db):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        connect_mailgun(client, csrf)
        page = client.get("/admin/channels?done=connected", headers=HTML)
    assert page.status_code == 200
    assert "will not be shown again" in page.text
    assert NEW_KEY not in page.text
    assert NEW_KEY[:5] not in page.text
    for account in rows(db, ChannelAccount):
        for value in account.secrets.values():
            assert value not in page.text
    assert page.text.count('data-test="channel-account"') == 5
    assert 'data-field="signing_key"' in page.text
    assert 'type="password" name="signing_key"' in page.text
    assert 'value="' + NEW_KEY not in page.text


def test_connecting_writes_an_audit_row_with_field_names_and_no_values(app, db):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        connect_mailgun(client, csrf)
    (entry,) = audit_actions(db, "credentials_changed")
    assert entry.actor_email == ADMIN
    assert entry.detail == {
        "change": "connected",
        "provider": "mailgun",
        "address": "help@demo-new.example",
        "fields": ["signing_key"],
    }
    assert NEW_KEY not in str(entry.detail)


def test_replacing_a_secret_keeps_the_others_and_verifies_with_the_new_one(app, db, team):
    (account,) = rows(db, ChannelAccount, ChannelAccount.provider == "whatsapp_cloud")
    old = dict(account.secrets)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            f"/admin/channels/{account.id}/secrets",
            data={"csrf_token": csrf, "app_secret": "a-new-app-secret", "verify_token": ""},
        )
    assert answer.status_code == 303
    (after,) = rows(db, ChannelAccount, ChannelAccount.id == account.id)
    assert after.secrets == {"app_secret": "a-new-app-secret", "verify_token": old["verify_token"]}
    assert set(after.secret_fields) == {"app_secret", "verify_token"}
    assert after.secret_fields["app_secret"] > account.secret_fields["app_secret"]
    (entry,) = audit_actions(db, "credentials_changed")
    assert entry.detail["change"] == "replaced"
    assert entry.detail["fields"] == ["app_secret"]


def test_an_account_its_provider_refused_says_so_until_its_secrets_are_replaced(app, db, team):
    (account,) = rows(db, ChannelAccount, ChannelAccount.provider == "whatsapp_cloud")
    reason = "WhatsApp rejected the message (HTTP 401, error 190): Invalid OAuth access token."
    with db.transaction() as session:
        refused = session.get_one(ChannelAccount, account.id)
        refused.refused_at, refused.refused_reason = utc_now(), reason
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        before = client.get("/admin/channels", headers=HTML).text
        client.post(
            f"/admin/channels/{account.id}/secrets",
            data={"csrf_token": csrf, "access_token": "a-new-token"},
        )
        after = client.get("/admin/channels", headers=HTML).text
    warning = re.search(r'data-test="refused">(.*?)</p>', before, re.S)
    assert warning
    assert html.escape(reason) in warning[1]
    assert "Messages go on the next channel until a send from it goes through" in warning[1]
    assert 'data-test="refused"' not in after
    (cleared,) = rows(db, ChannelAccount, ChannelAccount.id == account.id)
    assert (cleared.refused_at, cleared.refused_reason) == (None, None)


def test_a_number_connected_to_receive_only_warns_that_replies_cannot_go_from_it(app, db):
    # Given the store receives on the deployment's WhatsApp number, and connects a number
    # of its own for its webhooks, without the token to send from it
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/channels",
            data={
                "csrf_token": csrf,
                "provider": "whatsapp_cloud",
                "address": "300000000000003",
                "app_secret": "own-app-secret",
                "verify_token": "own-verify",
            },
        )
        connected = client.get("/admin/channels", headers=HTML).text
        (own,) = rows(db, ChannelAccount, ChannelAccount.address == "300000000000003")
        client.post(
            f"/admin/channels/{own.id}/secrets",
            data={"csrf_token": csrf, "access_token": "own-token"},
        )
        sending = client.get("/admin/channels", headers=HTML).text

    # Then its row says its customers are answered from another number, which WhatsApp
    # lets send them only templates; the deployment's number's row says nothing of it;
    # and once the number holds its token the warning is gone
    assert answer.status_code == 303
    warnings = re.findall(r'data-address="(\d+)"[^>]*data-test="answered-elsewhere"', connected)
    assert warnings == ["300000000000003"]
    assert (
        "Customers who write to this number are answered from the deployment's, and "
        "WhatsApp lets that number send them only approved templates"
    ) in connected
    assert 'data-test="answered-elsewhere"' not in sending


NORTH_SID = "AC0123456789abcdef0123456789abcdef"


def test_a_store_enters_its_twilio_sid_and_its_texts_go_from_its_own_number(app, db):
    (account,) = rows(db, ChannelAccount, ChannelAccount.provider == "twilio")
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        before = client.get("/admin/channels", headers=HTML)
        answer = client.post(
            f"/admin/channels/{account.id}/secrets",
            data={"csrf_token": csrf, "account_sid": NORTH_SID, "auth_token": ""},
        )
        after = client.get("/admin/channels", headers=HTML)
    assert answer.status_code == 303
    assert before.text.count("receives only") == 1  # the inbound email address
    assert before.text.count("no: messages go from the deployment") == 3
    assert after.text.count("no: messages go from the deployment") == 2
    assert 'data-test="sends"><span class="badge ok">from this account' in after.text
    assert NORTH_SID not in after.text
    (saved,) = rows(db, ChannelAccount, ChannelAccount.id == account.id)
    assert saved.secrets == {**account.secrets, "account_sid": NORTH_SID}
    with db.transaction() as session:
        sends = sending_accounts(session, [account.workspace_id])[account.workspace_id]
    assert [(kind, found.address) for kind, found in sends.items()] == [
        (ChannelKind.SMS, account.address)
    ]
    (entry,) = audit_actions(db, "credentials_changed")
    assert entry.detail["fields"] == ["account_sid"]


class _Provider:
    """What the provider answers the Channels page's check, recorded."""

    def __init__(self, answer: ProviderCheck) -> None:
        self.answer = answer
        self.asked: list[tuple[ChannelKind, SendingAccount]] = []

    async def check_accounts(self, settings, accounts):
        self.asked.extend(accounts.items())
        return [self.answer]


def test_checking_a_sending_account_shows_the_providers_answer_on_its_row(app, db, monkeypatch):
    (account,) = rows(db, ChannelAccount, ChannelAccount.provider == "twilio")
    _connect_own_twilio_sid(db, account.id)
    said = f"the Twilio account {NORTH_SID} is active and {account.address} is one of its numbers"
    provider = _Provider(ProviderCheck(ChannelKind.SMS, True, said))
    monkeypatch.setattr(admin_channels, "check_accounts", provider.check_accounts)
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(f"/admin/channels/{account.id}/check", data={"csrf_token": csrf})
    assert answer.status_code == 200
    assert f'data-test="checked"><span class="badge ok">works</span> {said}' in answer.text
    [(kind, asked)] = provider.asked
    assert (kind, asked.provider, asked.address) == (ChannelKind.SMS, "twilio", account.address)
    assert snapshot(db) == before


def test_a_check_of_an_account_that_cannot_send_or_of_another_store_asks_no_provider(
    app, db, monkeypatch
):
    (whatsapp,) = rows(db, ChannelAccount, ChannelAccount.provider == "whatsapp_cloud")
    provider = _Provider(ProviderCheck(ChannelKind.WHATSAPP, True, "never"))
    monkeypatch.setattr(admin_channels, "check_accounts", provider.check_accounts)
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        other = client.post(f"/admin/channels/{whatsapp.id}/check", data={"csrf_token": csrf})
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        unsendable = client.post(f"/admin/channels/{whatsapp.id}/check", data={"csrf_token": csrf})
    assert other.status_code == 404
    assert unsendable.status_code == 422
    assert "enter its access_token first: it sends nothing without" in unsendable.text
    assert provider.asked == []


class _Dns:
    """What DNS answers the Channels page's "Check now", recorded."""

    def __init__(self, answer: Callable[[str, str | None], SendingDomain]) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str | None]] = []

    async def check_sending_domain(self, settings, domain, dkim_selector=None):
        self.asked.append((domain, dkim_selector))
        return self.answer(domain, dkim_selector)


def _published(*tokens: str) -> Callable[[str, str | None], SendingDomain]:
    def answer(domain: str, selector: str | None) -> SendingDomain:
        return SendingDomain(
            domain,
            ("v=spf1 include:relay.example -all",),
            selector,
            ("v=DKIM1; p=MIIB",),
            domain,
            ("v=DMARC1; p=none",),
            tokens,
        )

    return answer


def _email_sender_state(page: str) -> str:
    found = re.search(r'data-test="email-sender-state">(.*?)</p>', page, re.S)
    assert found, "no email sender state on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def test_a_store_sends_email_from_its_own_address_once_check_now_finds_its_records(
    app, db, monkeypatch
):
    workspace_id = rows(db, Workspace, Workspace.slug == "demo")[0].id
    dns = _Dns(_published())
    monkeypatch.setattr(admin_channels, "check_sending_domain", dns.check_sending_domain)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        # The admin enters the address: the page says what to publish, and nothing sends
        # from it yet
        saved = client.post(
            "/admin/email-sender",
            data={"csrf_token": csrf, "address": "Orders@North.example", "dkim_selector": "s1"},
        )
        assert saved.status_code == 303
        page = client.get("/admin/channels", headers=HTML).text
        token = re.search(r'data-test="verification-record">parley-verification=([^<]+)<', page)
        assert token
        assert _email_sender_state(page) == (
            "not yet Your email goes from orders@demo.parley.test until "
            "Orders@north.example is ready."
        )
        assert "Its domain has not been read yet" in page
        # Check now before publishing: read, and still not proven
        client.post("/admin/email-sender/check", data={"csrf_token": csrf})
        page = client.get("/admin/channels", headers=HTML).text
        assert _email_sender_state(page).startswith("not yet")
        assert f'no TXT record "parley-verification={token[1]}"' in html.unescape(page)
        # Published: Check now finds it, and email goes from the store's address
        dns.answer = _published(token[1])
        checked = client.post("/admin/email-sender/check", data={"csrf_token": csrf})
        assert checked.status_code == 303
        page = client.get("/admin/channels", headers=HTML).text
    assert _email_sender_state(page) == (
        "sending from it Your email goes from Orders@north.example , under your store's name."
    )
    assert dns.asked == [("north.example", "s1"), ("north.example", "s1")]
    with db.transaction() as session:
        sends = sending_accounts(session, [workspace_id])[workspace_id]
    assert sends[ChannelKind.EMAIL].address == "Orders@north.example"
    (entry,) = audit_actions(db, "settings_changed")
    assert entry.detail == {
        "page": "email sender",
        "address": "Orders@north.example",
        "dkim_selector": "s1",
    }


def test_a_malformed_sender_address_is_refused_with_the_reason_and_nothing_saved(app, db):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/email-sender",
            data={"csrf_token": csrf, "address": "orders@localhost", "dkim_selector": ""},
            headers=HTML,
        )
    assert answer.status_code == 422
    assert "enter the address to send from, on your own domain" in answer.text
    assert snapshot(db) == before


def test_check_now_when_dns_does_not_answer_says_so_and_keeps_nothing(app, db, monkeypatch):
    async def silent(settings, domain, dkim_selector=None):
        raise DnsUnavailable(f"DNS did not answer for {domain}: timed out")

    monkeypatch.setattr(admin_channels, "check_sending_domain", silent)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        client.post(
            "/admin/email-sender",
            data={"csrf_token": csrf, "address": "orders@north.example", "dkim_selector": ""},
        )
        before = snapshot(db)
        answer = client.post("/admin/email-sender/check", data={"csrf_token": csrf})
        unset = client.post("/admin/email-sender/remove", data={"csrf_token": csrf})
        nothing = client.post("/admin/email-sender/check", data={"csrf_token": csrf})
    assert answer.status_code == 503
    assert "DNS did not answer for north.example: timed out" in answer.text
    assert unset.status_code == 303
    assert nothing.status_code == 422
    assert "enter the address to send from first" in nothing.text
    assert snapshot(db)[-1] == before[-1] == []
    (workspace,) = rows(db, Workspace, Workspace.slug == "demo")
    assert "email_sender" not in workspace.settings


def _connect_own_twilio_sid(db, account_id: int) -> None:
    with db.transaction() as session:
        account = session.get_one(ChannelAccount, account_id)
        account.secrets = {**account.secrets, "account_sid": NORTH_SID}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(
            {"account_sid": "AC123"}, "account_sid must be AC and 32 hexadecimal digits", id="sid"
        ),
        pytest.param(
            {"business_account_id": "waba-1"},
            "business_account_id must be digits only",
            id="waba",
        ),
    ],
)
def test_a_malformed_sending_field_is_refused_with_the_reason_and_nothing_saved(
    app, db, data, reason
):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/channels",
            data={
                "csrf_token": csrf,
                "provider": "twilio" if "account_sid" in data else "whatsapp_cloud",
                "address": "+15005550199",
                "auth_token": "t",
                "app_secret": "a",
                "verify_token": "v",
                **data,
            },
        )
    assert answer.status_code == 422
    assert html.escape(reason) in answer.text
    assert snapshot(db) == before


def test_another_workspaces_channel_account_is_404_and_unchanged(app, db):
    (account,) = rows(db, ChannelAccount, ChannelAccount.provider == "twilio")
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        replaced = client.post(
            f"/admin/channels/{account.id}/secrets",
            data={"csrf_token": csrf, "auth_token": "hijacked"},
        )
        paused = client.post(
            f"/admin/channels/{account.id}/active", data={"csrf_token": csrf, "is_active": "false"}
        )
    assert (replaced.status_code, paused.status_code) == (404, 404)
    assert account.address not in replaced.text
    (after,) = rows(db, ChannelAccount, ChannelAccount.id == account.id)
    assert (after.secrets, after.is_active) == (account.secrets, True)
    assert audit_actions(db, "credentials_changed") == []


def test_the_shopify_secret_is_sealed_rotated_audited_and_verifies(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/shopify", data={"csrf_token": csrf, "shopify_secret": NEW_SHOPIFY}
        )
        assert answer.status_code == 303
        page = client.get("/admin/channels", headers=HTML)
        body, headers = signed("orders/create", {"id": 1}, webhook_id="w-new", secret=NEW_SHOPIFY)
        new_ok = client.post("/webhooks/shopify/demo", content=body, headers=headers)
        body, headers = signed("orders/create", {"id": 1}, webhook_id="w-old", secret=SECRET)
        old_ok = client.post("/webhooks/shopify/demo", content=body, headers=headers)
        body, headers = signed("orders/create", {"id": 1}, webhook_id="w-bad", secret="nope")
        bad = client.post("/webhooks/shopify/demo", content=body, headers=headers)
    assert NEW_SHOPIFY not in page.text
    assert SECRET not in page.text
    assert "still accepted until" in page.text
    # Past the signature, a bare {"id": 1} is judged as an order and refused (422, not 401).
    assert new_ok.status_code == 422
    assert old_ok.status_code == 422
    assert bad.status_code == 401
    stored = raw_column(db, "SELECT shopify_secret FROM workspaces ORDER BY id")
    assert all(value.startswith("gAAAA") for value in stored)
    assert not any(NEW_SHOPIFY in value or SECRET in value for value in stored)
    (entry,) = audit_actions(db, "credentials_changed")
    assert entry.detail == {
        "change": "rotated",
        "provider": "shopify",
        "fields": ["shopify_secret"],
    }


# Policies


def test_policies_can_be_edited_added_and_removed(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        page = client.get("/admin/policies", headers=HTML)
        assert "Returns policy" in page.text
        answer = client.post(
            "/admin/policies",
            data={
                "csrf_token": csrf,
                "return_window_days": "45",
                "title": ["Returns policy", "Shipping", "Gift wrapping"],
                "text": [
                    "Return within 45 days.\n\nFree in the UK.",
                    "We ship everywhere.",
                    "Add gift wrap at checkout for 3 pounds.",
                ],
                "remove": "1",
            },
        )
    assert answer.status_code == 303
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings["knowledge"] == [
        {"title": "Returns policy", "text": "Return within 45 days.\n\nFree in the UK."},
        {"title": "Gift wrapping", "text": "Add gift wrap at checkout for 3 pounds."},
    ]
    assert workspace.settings["return_window_days"] == 45
    (entry,) = audit_actions(db, "settings_changed")
    assert entry.detail == {"page": "policies", "sections": 2, "return_window_days": 45}


def test_a_store_that_takes_no_returns_sees_zero_days_after_saving_it(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/policies",
            data={
                "csrf_token": csrf,
                "return_window_days": "0",
                "title": "Returns policy",
                "text": "We take no returns.",
            },
        )
        page = client.get("/admin/policies", headers=HTML)
    assert answer.status_code == 303
    assert 'name="return_window_days" value="0"' in page.text


def test_a_section_without_text_is_refused_and_nothing_is_saved(app, db, team):
    (before,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/policies",
            data={"csrf_token": csrf, "return_window_days": "30", "title": "Empty", "text": ""},
            headers=HTML,
        )
    assert answer.status_code == 422
    assert "every section needs a title and some text" in answer.text
    (after,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert after.settings == before.settings


def test_quiet_hours_are_set_for_the_store_and_audited(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        page = client.get("/admin", headers=HTML)
        assert 'data-test="quiet-hours-form"' in page.text
        assert '<option value="8" selected>08:00</option>' in page.text
        assert '<option value="21" selected>21:00</option>' in page.text
        answer = client.post(
            "/admin/quiet-hours", data={"csrf_token": csrf, "opens": "9", "closes": "20"}
        )
        assert answer.status_code == 303
        again = client.get("/admin", headers=HTML)
    assert '<option value="9" selected>09:00</option>' in again.text
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings["quiet_hours"] == {
        "opens": 9,
        "closes": 20,
        "sundays": False,
        "holidays": False,
    }
    (entry,) = audit_actions(db, "settings_changed")
    assert entry.detail == {
        "page": "quiet hours",
        "opens": 9,
        "closes": 20,
        "sundays": False,
        "holidays": False,
    }


def test_a_store_can_keep_marketing_texts_off_public_holidays(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        before = client.get("/admin", headers=HTML)
        answer = client.post(
            "/admin/quiet-hours",
            data={"csrf_token": csrf, "opens": "8", "closes": "21", "sundays": "on"},
        )
        after = client.get("/admin", headers=HTML)
    assert '<input type="checkbox" name="holidays" checked>' in before.text
    assert answer.status_code == 303
    assert '<input type="checkbox" name="holidays" >' in after.text
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert QuietHours.of(workspace.settings) == QuietHours(holidays=False)


@pytest.mark.parametrize(("opens", "closes"), [("21", "8"), ("9", "9"), ("x", "20"), ("8", "")])
def test_a_quiet_hours_window_that_does_not_open_before_it_closes_is_refused(
    app, db, team, opens, closes
):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/quiet-hours",
            data={"csrf_token": csrf, "opens": opens, "closes": closes, "sundays": "on"},
            headers=HTML,
        )
    assert answer.status_code == 422
    assert "choose the hour marketing texts start and a later hour they stop" in answer.text
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("opens", "closes"),
    [("0", "24"), ("7", "20"), ("9", "22")],
    ids=["all_day_case", "early_case", "late_case"],
)
def test_a_quiet_hours_window_wider_than_the_law_allows_is_refused(app, db, team, opens, closes):
    """S8: a store may narrow 8:00 to 21:00, never widen it."""
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/quiet-hours",
            data={"csrf_token": csrf, "opens": opens, "closes": closes, "sundays": "on"},
            headers=HTML,
        )
    assert answer.status_code == 422
    assert (
        "marketing texts may reach customers only between 08:00 and 21:00 in their own time"
        " zone; choose a window inside those hours" in answer.text
    )
    assert snapshot(db) == before
    assert audit_actions(db, "settings_changed") == []


def test_the_quiet_hours_form_offers_only_hours_inside_the_law_and_shows_a_wider_one_narrowed(
    app, db, team
):
    with db.transaction() as session:
        workspace = session.get_one(Workspace, team.workspace_id)
        workspace.settings = {**workspace.settings, "quiet_hours": {"opens": 0, "closes": 24}}
    with browser(app) as client:
        sign_in(client, ADMIN)
        page = client.get("/admin", headers=HTML).text
    form = page[page.index('data-test="quiet-hours-form"') :]
    form = form[: form.index("</form>")]
    assert re.findall(r'name="opens">(.*?)</select>', form, re.S)[0].count("<option") == 13
    assert '<option value="7"' not in form
    assert '<option value="22"' not in form
    assert '<option value="8" selected>08:00</option>' in form
    assert '<option value="21" selected>21:00</option>' in form


def _general(postal: str) -> dict[str, str]:
    return {
        "name": "Juniper & Pine",
        "store_url": "https://juniper-and-pine.example",
        "support_email": "help@juniper-and-pine.example",
        "postal_address": postal,
        "timezone": "Europe/London",
    }


def test_the_stores_postal_address_is_saved_with_its_details(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        saved = client.post(
            "/admin/general",
            data={
                "csrf_token": csrf,
                **_general("  Juniper & Pine\r\n 1 Quay   Road, Bristol BS1 \n"),
            },
        )
        page = client.get("/admin", headers=HTML)

    assert saved.status_code == 303
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings["postal_address"] == "Juniper & Pine\n1 Quay Road, Bristol BS1"
    assert "1 Quay Road, Bristol BS1</textarea>" in page.text
    assert [e.detail for e in audit_actions(db, "settings_changed")] == [{"page": "general"}]


def test_a_postal_address_too_long_is_refused_and_changes_nothing(app, db, team):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/general", data={"csrf_token": csrf, **_general("x" * 501)}, headers=HTML
        )

    assert answer.status_code == 422
    assert "the postal address is longer than 500 characters" in answer.text
    assert snapshot(db) == before


def test_the_stores_review_page_is_saved_and_shown(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        review = " https://juniper-and-pine.example/pages/reviews "
        data = {"csrf_token": csrf, **_general("1 Quay Road"), "review_url": review}
        saved = client.post("/admin/general", data=data)
        page = client.get("/admin", headers=HTML)

    assert saved.status_code == 303
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings["review_url"] == "https://juniper-and-pine.example/pages/reviews"
    assert 'value="https://juniper-and-pine.example/pages/reviews"' in page.text


def test_a_review_page_that_is_not_a_web_address_is_refused_and_changes_nothing(app, db, team):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        data = {"csrf_token": csrf, **_general("1 Quay Road"), "review_url": "javascript:x"}
        answer = client.post("/admin/general", data=data, headers=HTML)

    assert answer.status_code == 422
    assert "the review page&#39;s address must start with https://" in answer.text
    assert snapshot(db) == before


def test_frequency_caps_are_set_for_the_store_and_audited(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        page = client.get("/admin", headers=HTML)
        assert '<input type="number" name="email" value="16"' in page.text
        answer = client.post(
            "/admin/frequency-caps",
            data={
                "csrf_token": csrf,
                "email": "24",
                "sms": "48",
                "whatsapp": "0",
                "instagram": "12.5",
            },
        )
        assert answer.status_code == 303
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    caps = {"email": 24.0, "sms": 48.0, "whatsapp": 0.0, "instagram": 12.5}
    assert workspace.settings["frequency_caps"] == caps
    (entry,) = audit_actions(db, "settings_changed")
    assert entry.detail == {"page": "frequency caps", **caps}


def test_an_admin_pauses_and_resumes_marketing_from_settings(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        before = client.get("/admin", headers=HTML)
        paused = client.post("/admin/marketing-pause", data={"csrf_token": csrf, "paused": "on"})
        shown = client.get(paused.headers["location"], headers=HTML)
        (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
        settings_while_paused = dict(workspace.settings)
        resumed = client.post("/admin/marketing-pause", data={"csrf_token": csrf})
        after = client.get("/admin", headers=HTML)

    assert "Pause all marketing" in before.text
    assert (paused.status_code, resumed.status_code) == (303, 303)
    assert "Marketing is paused" in shown.text
    assert f"by {ADMIN}" in shown.text
    assert settings_while_paused["marketing_paused"]["by"] == ADMIN
    assert "Pause all marketing" in after.text
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings["marketing_paused"] is None
    assert [e.action for e in audit_actions(db, "marketing_paused")] == ["marketing_paused"]
    assert [e.action for e in audit_actions(db, "marketing_resumed")] == ["marketing_resumed"]


def test_an_admin_sets_the_marketing_rate_and_it_is_audited(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        before = client.get("/admin", headers=HTML)
        saved = client.post("/admin/marketing-rate", data={"csrf_token": csrf, "per_hour": "1,500"})
        after = client.get("/admin", headers=HTML)

    assert 'name="per_hour" value=""' in before.text
    assert "Nothing is waiting" in before.text
    assert saved.status_code == 303
    assert 'name="per_hour" value="1500"' in after.text
    (workspace,) = rows(db, Workspace, Workspace.id == team.workspace_id)
    assert workspace.settings["marketing_rate"] == {"per_hour": 1500}
    (entry,) = audit_actions(db, "marketing_rate_changed")
    assert (entry.actor_email, entry.detail) == (ADMIN, {"from": None, "to": 1500, "replanned": 0})


def test_the_sends_waiting_are_shown_by_what_they_wait_for(app, db, team):
    promotions_without_caps(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        client.post("/admin/marketing-rate", data={"csrf_token": csrf, "per_hour": "60"})
        for number in (1, 2, 3):
            placed, *_ = deliveries("Ada", order_id=600 + number, number=1600 + number)
            post(db, placed)
        drain(make_worker(db, recording_adapters()))
        page = client.get("/admin", headers=HTML)

    row = re.search(r'<tr data-waiting="marketing_rate">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "Its turn at the store&#39;s marketing rate</td><td>2</td>" in row.group(1)


@pytest.mark.parametrize("typed", ["soon", "0.5", "-3", "1000001"])
def test_a_marketing_rate_that_is_not_a_whole_number_in_range_is_refused(app, db, team, typed):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/marketing-rate", data={"csrf_token": csrf, "per_hour": typed}, headers=HTML
        )

    assert answer.status_code == 422
    assert "marketing rate: enter a whole number of messages an hour from 1 to 1,000,000" in (
        answer.text
    )
    assert snapshot(db) == before


@pytest.mark.parametrize("email", ["-1", "721", "", "nan", "soon"])
def test_a_frequency_cap_out_of_bounds_is_refused(app, db, team, email):
    before = snapshot(db)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/frequency-caps",
            data={
                "csrf_token": csrf,
                "email": email,
                "sms": "24",
                "whatsapp": "24",
                "instagram": "24",
            },
            headers=HTML,
        )
    assert answer.status_code == 422
    assert "frequency caps: enter hours between 0 and 720 for each channel" in answer.text
    assert snapshot(db) == before


# Journeys


def journey(db, workspace_id: int, key: str) -> Journey:
    (found,) = rows(db, Journey, Journey.workspace_id == workspace_id, Journey.key == key)
    return found


def test_switching_a_journey_off_and_on_takes_effect(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        off = client.post(
            "/admin/journeys/dispatch/enabled", data={"csrf_token": csrf, "is_enabled": "false"}
        )
        assert off.status_code == 303
        assert journey(db, team.workspace_id, "dispatch").is_enabled is False
        page = client.get("/admin/journeys", headers=HTML)
        assert "Switch on" in page.text
        client.post(
            "/admin/journeys/dispatch/enabled", data={"csrf_token": csrf, "is_enabled": "true"}
        )
    assert journey(db, team.workspace_id, "dispatch").is_enabled is True
    assert journey(db, team.other_workspace_id, "dispatch").is_enabled is True
    assert [e.detail for e in audit_actions(db, "journey_changed")] == [
        {"journey": "dispatch", "is_enabled": False},
        {"journey": "dispatch", "is_enabled": True},
    ]


def test_a_wait_is_changed_within_its_bounds_and_refused_outside_them(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        saved = client.post(
            "/admin/journeys/satisfaction_check/timing", data={"csrf_token": csrf, "wait_0": "36"}
        )
        refused = client.post(
            "/admin/journeys/satisfaction_check/timing",
            data={"csrf_token": csrf, "wait_0": "72"},
            headers=HTML,
        )
    assert saved.status_code == 303
    assert refused.status_code == 422
    assert "between 24 and 48 hours" in refused.text
    changed = journey(db, team.workspace_id, "satisfaction_check")
    assert changed.definition["steps"][0]["hours"] == 36
    assert changed.version == 2


def test_how_long_a_late_message_still_goes_is_set_per_send_and_bounded(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        listed = client.get("/admin/journeys", headers=HTML).text
        saved = client.post(
            "/admin/journeys/dispatch/timing", data={"csrf_token": csrf, "expiry_1": "6"}
        )
        refused = [
            client.post(
                "/admin/journeys/dispatch/timing",
                data={"csrf_token": csrf, field: value},
                headers=HTML,
            )
            for field, value in (("expiry_1", "0"), ("expiry_1", "2161"), ("expiry_0", "6"))
        ]
    assert 'name="expiry_1" value="48"' in listed  # dispatch's default
    assert saved.status_code == 303
    assert [answer.status_code for answer in refused] == [422, 422, 422]
    assert "up to 2160 hours after it is due, not 0" in refused[0].text
    assert "is not a send" in refused[2].text
    changed = journey(db, team.workspace_id, "dispatch")
    assert changed.definition["steps"][1] == {
        "type": "send",
        "message": "dispatch",
        "expires_after_hours": 6,
    }
    assert journey(db, team.other_workspace_id, "dispatch").definition["steps"][1] == {
        "type": "send",
        "message": "dispatch",
    }
    assert [e.detail for e in audit_actions(db, "journey_changed")] == [
        {"journey": "dispatch", "waits_hours": {}, "expires_after_hours": {"1": 6.0}}
    ]


def test_the_preview_renders_the_edited_template_on_the_sample_customer(app):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/journeys/preview",
            data={
                "message": "dispatch",
                "channel": "email",
                "subject": "{{ customer.first_name }}, {{ order.number }} is on its way",
                "text": "Hi {{ customer.first_name }}, {{ order.total|money(order.currency) }}",
                "html": "<p>{{ store.name }}</p>",
            },
            headers={"x-csrf-token": csrf, "accept": "application/json"},
        )
    assert answer.status_code == 200
    assert answer.json() == {
        "ok": True,
        "subject": "Maya, #1042 is on its way",
        "text": "Hi Maya, £86.50",
        "has_html": True,
        "whatsapp": None,
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("Hi {{ customer.first_name", "text, line 1:", id="syntax_case"),
        pytest.param(
            "{{ customer.__class__.__mro__ }}", "not allowed in a template", id="sandbox_case"
        ),
        pytest.param("{{ 'x' * 100000 }}", "larger than", id="output_cap_case"),
    ],
)
def test_the_preview_explains_a_broken_template_without_failing(app, source, expected):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/journeys/preview",
            data={"message": "dispatch", "channel": "sms", "text": source},
            headers={"x-csrf-token": csrf, "accept": "application/json"},
        )
    assert answer.status_code == 200
    assert answer.json()["ok"] is False
    assert expected in answer.json()["error"]


def test_the_email_preview_is_served_with_its_own_strict_policy(app):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        editor = client.get("/admin/journeys/dispatch/templates/dispatch/email", headers=HTML)
        frame = client.post(
            "/admin/journeys/preview/email",
            data={
                "csrf_token": csrf,
                "message": "dispatch",
                "channel": "email",
                "subject": "s",
                "text": "t",
                "html": '<p style="color:red">{{ customer.first_name }}</p>',
            },
        )
    assert "frame-src 'self'" in editor.headers["content-security-policy"]
    assert 'sandbox title="Email preview"' in editor.text
    assert frame.status_code == 200
    assert frame.text == '<p style="color:red">Maya</p>'
    policy = frame.headers["content-security-policy"]
    assert "script-src" not in policy
    assert "default-src 'none'" in policy
    assert "sandbox" in policy
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"


def test_saving_a_template_stores_it_and_a_broken_one_is_refused(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        path = "/admin/journeys/dispatch/templates/dispatch/sms"
        saved = client.post(
            path, data={"csrf_token": csrf, "text": "{{ store.name }}: {{ order.number }} shipped"}
        )
        refused = client.post(path, data={"csrf_token": csrf, "text": "{% for %}"}, headers=HTML)
    assert saved.status_code == 303
    assert refused.status_code == 422
    assert "text, line 1" in refused.text
    (template,) = rows(db, MessageTemplate)
    assert (template.workspace_id, template.message_type, template.channel) == (
        team.workspace_id,
        "dispatch",
        "sms",
    )
    assert template.content["text"] == "{{ store.name }}: {{ order.number }} shipped"
    assert len(audit_actions(db, "template_changed")) == 1


def test_the_whatsapp_editor_shows_what_meta_says_of_its_template(app, db, team):
    path = "/admin/journeys/dispatch/templates/dispatch/whatsapp"
    with browser(app) as client:
        sign_in(client, ADMIN)
        unread = client.get(path, headers=HTML)
        meta_holds(
            db,
            TemplateReview("order_dispatched", "en", "APPROVED", "MARKETING"),
            workspace_id=team.workspace_id,
        )
        marketing = client.get(path, headers=HTML)
        meta_holds(
            db,
            TemplateReview("order_delivered", "en", "APPROVED", "UTILITY"),
            workspace_id=team.workspace_id,
        )
        missing = client.get(path, headers=HTML)

    assert 'data-test="template-at-meta"' not in unread.text
    assert "At Meta: approved, marketing. Meta classes it as marketing" in marketing.text
    assert "Meta does not list this template for your WhatsApp account" in missing.text


def test_an_unknown_journey_message_or_channel_is_404(app):
    with browser(app) as client:
        sign_in(client, ADMIN)
        for path in (
            "/admin/journeys/nope",
            "/admin/journeys/dispatch/templates/win_back/email",
            "/admin/journeys/dispatch/templates/dispatch/fax",
            "/admin/journeys/order_confirmation/templates/order_confirmation/sms",
        ):
            assert client.get(path, headers=HTML).status_code == 404, path


# Team


def test_an_invite_shows_its_link_once_and_is_audited(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/team/invite",
            data={"csrf_token": csrf, "email": "New.Agent@Example.com", "role": "agent"},
        )
        later = client.get("/admin/team", headers=HTML)
    assert answer.status_code == 200
    assert "https://testserver/invite/demo/" in answer.text
    assert "/invite/demo/" not in later.text
    (invite,) = rows(db, Invite)
    assert (invite.workspace_id, invite.email, invite.role) == (
        team.workspace_id,
        "new.agent@example.com",
        "agent",
    )
    (entry,) = audit_actions(db, "invited")
    assert entry.detail == {"email": "new.agent@example.com", "role": "agent"}


def test_an_admin_changes_a_role_and_removes_a_member(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        role = client.post(
            f"/admin/team/{team.agent_id}/role", data={"csrf_token": csrf, "role": "admin"}
        )
        removed = client.post(f"/admin/team/{team.agent_id}/remove", data={"csrf_token": csrf})
    assert (role.status_code, removed.status_code) == (303, 303)
    assert count(db, Membership, Membership.user_id == team.agent_id) == 0
    assert [e.detail for e in audit_actions(db, "role_changed")] == [
        {"user_id": team.agent_id, "from": "agent", "to": "admin"}
    ]
    assert len(audit_actions(db, "member_removed")) == 1


def test_another_workspaces_member_is_404_and_keeps_their_role(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        role = client.post(
            f"/admin/team/{team.other_admin_id}/role", data={"csrf_token": csrf, "role": "agent"}
        )
        removed = client.post(
            f"/admin/team/{team.other_admin_id}/remove", data={"csrf_token": csrf}
        )
    assert (role.status_code, removed.status_code) == (404, 404)
    assert OTHER_ADMIN not in role.text
    (membership,) = rows(db, Membership, Membership.user_id == team.other_admin_id)
    assert membership.role == "admin"


def test_the_last_admin_cannot_demote_themselves(app, db, team):
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            f"/admin/team/{team.admin_id}/role",
            data={"csrf_token": csrf, "role": "agent"},
            headers=HTML,
        )
    assert answer.status_code == 409
    assert "at least one admin" in answer.text
    assert audit_actions(db, "role_changed") == []


def _admin_who_invites(db, team, email: str) -> tuple[int, str]:
    """A second admin of the demo store, and the token of the admin invitation they made."""
    with db.transaction() as session:
        user = accounts.create_user(
            session, email="second.admin@example.com", name="Sam", password="x" * 16, now=utc_now()
        )
        accounts.add_member(
            session, workspace_id=team.workspace_id, user_id=user.id, role="admin", now=utc_now()
        )
        invitation = accounts.invite(
            session,
            login=login_as(session, team.workspace_id, user.id),
            email=email,
            role="admin",
            ip="198.51.100.7",
            now=utc_now(),
            valid_for=timedelta(days=7),
        )
        return user.id, invitation.token


def _redeem(app, token: str) -> tuple[int, int]:
    """Open the invitation, then try to join with it: both answers' status codes."""
    with browser(app) as stranger:
        csrf = login_form_token(stranger)
        opened = stranger.get(f"/invite/demo/{token}", headers=HTML)
        joined = stranger.post(
            f"/invite/demo/{token}",
            data={"name": "Rogue", "password": "another long password", "csrf_token": csrf},
        )
    return opened.status_code, joined.status_code


@pytest.mark.parametrize(
    ("move", "data"), [("remove", {}), ("role", {"role": "agent"})], ids=["remove", "demote"]
)
def test_an_admins_pending_invitations_are_revoked_with_their_admin_role(app, db, team, move, data):
    """An admin about to lose their role cannot leave a way back in behind them."""
    rogue_id, backdoor = _admin_who_invites(db, team, "rogue.alt@example.net")
    with browser(app) as owner:
        csrf = sign_in(owner, ADMIN)
        kept = owner.post(
            "/admin/team/invite",
            data={"csrf_token": csrf, "email": "new.agent@example.com", "role": "agent"},
        )
        answer = owner.post(f"/admin/team/{rogue_id}/{move}", data={**data, "csrf_token": csrf})
        listed = owner.get("/admin/team", headers=HTML).text
    assert (kept.status_code, answer.status_code) == (200, 303)
    assert _redeem(app, backdoor) == (404, 404)
    assert [(i.email, i.invited_by_id) for i in rows(db, Invite)] == [
        ("new.agent@example.com", team.admin_id)
    ]
    assert "rogue.alt@example.net" not in listed
    assert count(db, User, User.email == "rogue.alt@example.net") == 0
    assert [(e.actor_id, e.detail) for e in audit_actions(db, "invite_revoked")] == [
        (team.admin_id, {"email": "rogue.alt@example.net", "role": "admin", "invited_by": rogue_id})
    ]


def test_an_invitation_is_void_once_its_inviter_is_no_longer_an_admin_there(app, db, team):
    """Checked again when the link is used, whatever took the inviter's role away."""
    rogue_id, backdoor = _admin_who_invites(db, team, "rogue.alt@example.net")
    with db.transaction() as session:
        session.execute(
            update(Membership).where(Membership.user_id == rogue_id).values(role="agent")
        )
    assert _redeem(app, backdoor) == (404, 404)
    assert count(db, User, User.email == "rogue.alt@example.net") == 0
    assert [i.accepted_at for i in rows(db, Invite)] == [None]
    assert count(db, LoginSession) == 0


def _invited(db, team, email: str, *, days_ago: int = 0) -> int:
    """An agent invitation the demo admin made ``days_ago`` (they last 7 days)."""
    with db.transaction() as session:
        return accounts.invite(
            session,
            login=login_as(session, team.workspace_id, team.admin_id),
            email=email,
            role="agent",
            ip="127.0.0.1",
            now=utc_now() - timedelta(days=days_ago),
            valid_for=timedelta(days=7),
        ).invite.id


def test_the_team_page_lists_pending_invitations_and_an_admin_revokes_one(app, db, team):
    _invited(db, team, "old.friend@example.com", days_ago=8)
    joined = _invited(db, team, "joined@example.com")
    pending = _invited(db, team, "new.agent@example.com")
    with db.transaction() as session:
        session.get_one(Invite, joined).accepted_at = utc_now()
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        page = client.get("/admin/team", headers=HTML).text
        revoked = client.post(f"/admin/team/invites/{pending}/revoke", data={"csrf_token": csrf})
        again = client.post(f"/admin/team/invites/{pending}/revoke", data={"csrf_token": csrf})
        after = client.get("/admin/team?done=invite_revoked", headers=HTML).text
    listed = re.findall(r'data-test="pending-invite" data-invite-id="(\d+)"', page)
    assert listed == [str(pending)]
    assert "new.agent@example.com" in page
    assert "old.friend@example.com" not in page
    assert "joined@example.com" not in page
    assert (revoked.status_code, revoked.headers["location"]) == (
        303,
        "/admin/team?done=invite_revoked",
    )
    assert again.status_code == 404
    assert 'data-test="pending-invite"' not in after
    assert "Invitation revoked" in after
    assert sorted(i.email for i in rows(db, Invite)) == [
        "joined@example.com",
        "old.friend@example.com",
    ]
    assert [(e.actor_id, e.detail) for e in audit_actions(db, "invite_revoked")] == [
        (
            team.admin_id,
            {"email": "new.agent@example.com", "role": "agent", "invited_by": team.admin_id},
        )
    ]


# Audit log and export


def test_the_audit_log_lists_this_workspaces_entries_newest_first_in_pages(app, db, team):
    with browser(app) as client:
        sign_in(client, OTHER_ADMIN)
        client.post("/logout", data={"csrf_token": ""})
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        for index in range(55):
            client.post(
                "/admin/journeys/dispatch/enabled",
                data={"csrf_token": csrf, "is_enabled": "false" if index % 2 else "true"},
            )
        first = client.get("/admin/audit", headers=HTML)
        older = client.get(
            "/admin/audit?before=" + first.text.split("/admin/audit?before=")[1].split('"')[0],
            headers=HTML,
        )
    assert first.text.count('data-test="audit-row"') == 50
    assert older.text.count('data-test="audit-row"') == 6  # 5 changes and the sign-in
    assert 'data-action="sign_in"' in older.text
    assert OTHER_ADMIN not in first.text + older.text


def test_the_export_has_only_this_workspaces_customers_safely_and_is_audited(app, db, team):
    now = utc_now()
    with db.transaction() as session:
        session.add_all(
            [
                Customer(
                    workspace_id=team.workspace_id,
                    first_name='=HYPERLINK("http://evil")',
                    last_name="@SUM(1)",
                    email="formula@example.com",
                    created_at=now,
                    updated_at=now,
                ),
                Customer(
                    workspace_id=team.other_workspace_id,
                    first_name="Other",
                    email="someone@other.example",
                    created_at=now,
                    updated_at=now,
                ),
            ]
        )
    ours = count(db, Customer, Customer.workspace_id == team.workspace_id)
    with browser(app) as client:
        sign_in(client, ADMIN)
        answer = client.get("/admin/export/customers.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(answer.text)))
    assert table[0][:5] == ["customer_id", "first_name", "last_name", "email", "phone"]
    assert len(table) - 1 == ours
    assert "someone@other.example" not in answer.text
    (formula,) = [row for row in table if row[3] == "formula@example.com"]
    assert formula[1:3] == ['\'=HYPERLINK("http://evil")', "'@SUM(1)"]
    (entry,) = audit_actions(db, "export")
    assert (entry.workspace_id, entry.detail) == (
        team.workspace_id,
        {"what": "customers", "rows": ours},
    )


# Failed sends


def dead_dispatches(db, clock, *names: str) -> list[Job]:
    """Each shopper's dispatch SMS refused with a 503 at all 8 attempts: its job dead."""
    adapters = recording_adapters()
    adapters[ChannelKind.SMS].script = [TransientChannelError("503 from provider")] * 8 * len(names)
    worker = make_worker(db, adapters)
    for n, name in enumerate(names):
        placed, dispatched, *_ = deliveries(name, order_id=601 + n, number=1601 + n)
        post(db, placed)
        post(db, dispatched)
    for _ in range(20 * len(names)):
        drain(worker)
        pending = rows(db, Job, Job.status == "pending")
        if not pending:
            break
        clock.advance(max(min(j.due_at for j in pending) - clock.now, timedelta(0)))
    dead = rows(db, Job, Job.status == "dead")
    assert len(dead) == len(names)
    return dead


def test_an_admin_sees_a_failed_dispatch_and_sends_it_again(frozen_clock, app, db, team):
    [dead] = dead_dispatches(db, frozen_clock, "Grace")
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        listed = client.get("/admin/failed", headers=HTML)
        assert listed.status_code == 200
        assert listed.text.count('data-test="failed-send"') == 1
        assert f'data-job-id="{dead.id}"' in listed.text
        for shown in ("Dispatch", "Grace", "+12025550143", "dead letter after 8 attempts: 503"):
            assert shown in listed.text, shown

        answer = client.post(f"/admin/failed/{dead.id}/retry", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/failed?done=retried"
        [job] = rows(db, Job, Job.id == dead.id)
        assert (job.status, job.attempts, job.payload["redrive"]) == ("pending", 0, 1)
        (entry,) = audit_actions(db, "dead_letter_retried")
        assert (entry.workspace_id, entry.detail) == (
            team.workspace_id,
            {"count": 1, "jobs": [dead.id]},
        )

        adapters = recording_adapters()
        drain(make_worker(db, adapters))
        assert [sms.to for sms in adapters[ChannelKind.SMS].sent] == ["+12025550143"]
        after = client.get("/admin/failed?done=retried", headers=HTML)
    assert "Sent back to the queue" in after.text
    assert 'data-test="no-failed-sends"' in after.text


def test_send_all_again_re_drives_the_whole_dead_letter_in_one_audited_step(
    frozen_clock, app, db, team
):
    dead = dead_dispatches(db, frozen_clock, "Grace", "Grace")
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post("/admin/failed/retry", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert {job.status for job in rows(db, Job, Job.id.in_([j.id for j in dead]))} == {"pending"}
    (entry,) = audit_actions(db, "dead_letter_retried")
    assert entry.detail["count"] == 2
    assert sorted(entry.detail["jobs"]) == sorted(job.id for job in dead)


def test_another_stores_admin_neither_sees_nor_re_drives_a_failed_send(frozen_clock, app, db, team):
    [dead] = dead_dispatches(db, frozen_clock, "Grace")
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        listed = client.get("/admin/failed", headers=HTML)
        refused = client.post(f"/admin/failed/{dead.id}/retry", data={"csrf_token": csrf})
        all_of_theirs = client.post("/admin/failed/retry", data={"csrf_token": csrf})
    assert 'data-test="no-failed-sends"' in listed.text
    assert refused.status_code == 404
    assert all_of_theirs.status_code == 303
    assert rows(db, Job, Job.id == dead.id)[0].status == "dead"
    assert audit_actions(db, "dead_letter_retried") == []


def test_a_send_already_sent_back_is_refused_with_the_reason_and_nothing_audited(
    frozen_clock, app, db, team
):
    [dead] = dead_dispatches(db, frozen_clock, "Grace")
    with db.transaction() as session:
        queue.redrive(session, dead.id)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(f"/admin/failed/{dead.id}/retry", data={"csrf_token": csrf})
    assert answer.status_code == 409
    assert f"job {dead.id} is pending: only dead or failed jobs are re-driven" in answer.text
    assert audit_actions(db, "dead_letter_retried") == []


# Messages held for review


def held_dispatch(db, clock) -> tuple[Message, dict[ChannelKind, RecordingAdapter]]:
    """Grace's dispatch SMS, handed to the provider by a worker that stopped before
    recording the answer: held for review."""
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    drain(worker)
    post(db, dispatched)
    hold_next_send(worker, clock)
    [held] = rows(db, Message, Message.status == "held")
    return held, adapters


def test_an_admin_sends_again_a_held_dispatch_the_provider_never_took(frozen_clock, app, db, team):
    held, adapters = held_dispatch(db, frozen_clock)
    assert len(adapters[ChannelKind.SMS].sent) == 1  # handed over before the stop
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        listed = client.get("/admin/failed", headers=HTML)
        assert listed.text.count('data-test="held-message"') == 1
        assert f'data-message-id="{held.id}"' in listed.text
        for shown in ("Held for review", "Dispatch", "Grace", "+12025550143"):
            assert shown in listed.text, shown

        answer = client.post(f"/admin/failed/held/{held.id}/send-again", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/failed?done=retried"
        drain(make_worker(db, adapters))
        after = client.get("/admin/failed", headers=HTML)

    assert [sms.to for sms in adapters[ChannelKind.SMS].sent] == ["+12025550143"] * 2
    [message] = rows(db, Message, Message.id == held.id)
    assert (message.status, message.status_reason) == (
        "failed",
        "held for review, then found not delivered by Avery Admin: sent again",
    )
    [again] = rows(db, Message, Message.idempotency_key == f"{held.idempotency_key}:r1")
    assert (again.channel, again.status) == ("sms", "sent")
    (entry,) = audit_actions(db, "held_message_reviewed")
    assert (entry.workspace_id, entry.detail) == (
        team.workspace_id,
        {"message": held.id, "arrived": False},
    )
    assert 'data-test="held-message"' not in after.text


def test_an_admin_marks_a_held_dispatch_arrived_and_nothing_is_sent(frozen_clock, app, db, team):
    held, adapters = held_dispatch(db, frozen_clock)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(f"/admin/failed/held/{held.id}/arrived", data={"csrf_token": csrf})
        again = client.post(f"/admin/failed/held/{held.id}/send-again", data={"csrf_token": csrf})
        drain(make_worker(db, adapters))

    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/failed?done=arrived"
    assert again.status_code == 409
    assert f"message {held.id} is sent: only held messages are reviewed" in again.text
    assert len(adapters[ChannelKind.SMS].sent) == 1
    [message] = rows(db, Message, Message.id == held.id)
    assert message.status == "sent"
    assert [e.detail for e in audit_actions(db, "held_message_reviewed")] == [
        {"message": held.id, "arrived": True}
    ]


def test_another_stores_admin_neither_sees_nor_reviews_a_held_message(frozen_clock, app, db, team):
    held, _ = held_dispatch(db, frozen_clock)
    with browser(app) as client:
        csrf = sign_in(client, OTHER_ADMIN)
        listed = client.get("/admin/failed", headers=HTML)
        answers = [
            client.post(f"/admin/failed/held/{held.id}/{action}", data={"csrf_token": csrf})
            for action in ("arrived", "send-again")
        ]
    assert 'data-test="held-message"' not in listed.text
    assert [answer.status_code for answer in answers] == [404, 404]
    assert rows(db, Message, Message.id == held.id)[0].status == "held"
    assert audit_actions(db, "held_message_reviewed") == []


def refused_grace_sms(db) -> None:
    """Grace's dispatch SMS refused with Twilio 20003: it falls back to email."""
    adapters = recording_adapters()
    adapters[ChannelKind.SMS].script = [
        AccountChannelError(
            "Twilio rejected the SMS (HTTP 401, error 20003): Authenticate", provider_code="20003"
        )
    ]
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    post(db, dispatched)
    drain(worker)
    assert [email.to for email in adapters[ChannelKind.EMAIL].sent] == ["grace@example.com"] * 2


def test_a_provider_refusing_the_stores_login_is_warned_of_for_an_hour(frozen_clock, app, db, team):
    refused_grace_sms(db)
    with browser(app) as client:
        sign_in(client, ADMIN)
        warned = client.get("/admin/failed", headers=HTML).text
        frozen_clock.advance(timedelta(minutes=61))
        later = client.get("/admin/failed", headers=HTML).text
    with browser(app) as client:
        sign_in(client, OTHER_ADMIN)
        elsewhere = client.get("/admin/failed", headers=HTML).text

    assert warned.count('data-test="refused-account"') == 1
    assert 'data-channel="sms"' in warned
    assert "(1 time in the last hour" in warned
    assert "Twilio rejected the SMS (HTTP 401, error 20003): Authenticate" in warned
    assert 'data-test="refused-account"' not in later
    assert 'data-test="refused-account"' not in elsewhere


def test_a_refusal_count_past_what_is_read_is_shown_as_a_floor(
    frozen_clock, app, db, team, monkeypatch
):
    monkeypatch.setattr(refusals, "READ_AT_MOST", 1)
    refused_grace_sms(db)
    with browser(app) as client:
        sign_in(client, ADMIN)
        warned = client.get("/admin/failed", headers=HTML).text
    assert "(1+ times in the last hour" in warned


def test_a_stores_sends_running_late_are_shown_to_its_own_admins_alone(frozen_clock, app, db, team):
    post(db, deliveries("Ada")[0])
    post(db, deliveries("Grace", order_id=502, number=1502)[0])
    frozen_clock.advance(timedelta(seconds=119))
    with browser(app) as client:
        sign_in(client, ADMIN)
        on_time = client.get("/admin/failed", headers=HTML).text
        frozen_clock.advance(timedelta(minutes=3, seconds=1))
        late = client.get("/admin/failed", headers=HTML).text
    with browser(app) as client:
        sign_in(client, OTHER_ADMIN)
        elsewhere = client.get("/admin/failed", headers=HTML).text

    assert 'data-test="running-late"' not in on_time
    assert late.count('data-test="running-late"') == 1
    assert 'data-lane="transactional"' in late
    assert (
        "<strong>Order updates are going out late</strong>: 2 due now, the oldest waiting 5 min."
    ) in late
    assert 'data-test="running-late"' not in elsewhere


def test_no_lateness_is_shown_while_the_lateness_alert_is_off(frozen_clock, db, team):
    post(db, deliveries("Ada")[0])
    frozen_clock.advance(timedelta(hours=1))
    with browser(web_app(db, alert_late_seconds=0)) as client:
        sign_in(client, ADMIN)
        page = client.get("/admin/failed", headers=HTML).text

    assert 'data-test="running-late"' not in page


def test_a_store_cannot_take_the_deployments_own_domain_nor_record_a_reading_of_it(
    app, db, monkeypatch
):
    """A reading is kept by domain. A store naming the deployment's From domain with a
    selector it made up would record a failing reading of it, and every store's marketing
    email would wait for the next hourly check."""
    dns = _Dns(_published())
    monkeypatch.setattr(admin_channels, "check_sending_domain", dns.check_sending_domain)
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        before = snapshot(db)
        saved = client.post(
            "/admin/email-sender",
            data={"csrf_token": csrf, "address": "news@Demo.parley.test", "dkim_selector": "x"},
            headers=HTML,
        )
        assert saved.status_code == 422
        assert (
            "demo.parley.test is the deployment's own domain: your email goes from it already"
            in html.unescape(saved.text)
        )
        assert snapshot(db) == before
        # One saved before this rule: Check now reads nothing and keeps nothing.
        with db.transaction() as session:
            workspace = session.get_one(Workspace, 1)
            workspace.settings = {
                **workspace.settings,
                "email_sender": {
                    "address": "news@demo.parley.test",
                    "token": "t",
                    "dkim_selector": "x",
                },
            }
        checked = client.post("/admin/email-sender/check", data={"csrf_token": csrf}, headers=HTML)
    assert checked.status_code == 422
    assert dns.asked == []
    assert count(db, SendingDomainCheck) == 0


def test_a_subject_over_two_thousand_characters_is_refused_not_cut(app, db, team):
    """Cut silently, the saved wording would end mid-word, or mid-tag."""
    with browser(app) as client:
        csrf = sign_in(client, ADMIN)
        answer = client.post(
            "/admin/journeys/order_confirmation/templates/order_confirmation/email",
            data={"csrf_token": csrf, "subject": "x" * 2_001, "text": "Thanks"},
            headers=HTML,
        )
    assert answer.status_code == 422
    assert "subject: at most 2,000 characters" in html.unescape(answer.text)
    assert rows(db, MessageTemplate) == []
