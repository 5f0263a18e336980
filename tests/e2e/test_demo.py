"""The demo, end to end: signed Shopify webhooks in, real adapters out, the sandbox captures.

Each test starts the real ``parley demo`` (see ``conftest.py``) on SQLite and on
PostgreSQL and talks to it only over loopback HTTP, as a newcomer would: webhooks, the
sandbox's JSON API and ``/api/v1``. The job table is read directly only to know when the
worker has nothing left to do, so "no second message" is checked once nothing can send one.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from itertools import pairwise

import httpx2
import pytest
from sqlalchemy import select

from e2e.demo_server import DemoServer, parley_command
from parley.commerce.models import Order
from parley.integrations.shopify.signature import sign
from parley.jobs.models import Job
from parley.journeys.models import JourneyRun
from parley.messaging.models import DeliveryAttempt
from parley.store_events.models import StoreEvent, WebhookDelivery
from support import SECRET, count, deliveries

UPS_TRACKING_URL = "https://www.ups.com/track?tracknum=1Z999AA100001501"
ACCEPTED = {"status": "accepted", "events": 1, "journeys_started": 1}


def _channels(server: DemoServer) -> list[tuple[str, str]]:
    return sorted((message["channel"], message["to"]) for message in server.captured())


def _dispatch_message(server: DemoServer) -> dict:
    [message] = [m for m in server.messages() if m["type"] == "dispatch"]
    return message


def test_signed_order_sends_the_confirmation_email_within_two_seconds(demo):
    placed = deliveries("Alan")[0]

    started = time.monotonic()
    response = demo.post_webhook(placed)
    [email] = demo.wait_for(
        lambda: demo.captured(channel="email"), timeout=10.0, what="the confirmation email"
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json() == ACCEPTED
    assert elapsed < 2.0, f"confirmation email took {elapsed:.2f} s"
    assert (email["to"], email["subject"], email["sender"]) == (
        "alan@example.com",
        "Your Juniper & Pine order #1501 is confirmed",
        "Juniper & Pine <orders@demo.parley.test>",
    )
    assert email["body"].startswith("Hi Alan,\n\nThank you for your order! We've received order")
    demo.wait_until_idle()
    assert _channels(demo) == [("email", "alan@example.com")]


def test_dispatch_goes_by_whatsapp_template_to_a_whatsapp_opt_in(demo):
    placed, dispatched, *_ = deliveries("Ada")

    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED
    [whatsapp] = demo.wait_for(
        lambda: demo.captured(channel="whatsapp"), what="the WhatsApp dispatch message"
    )
    demo.wait_until_idle()

    assert whatsapp["to"] == "447911123456"
    assert whatsapp["template"] == {
        "name": "order_dispatched",
        "language": "en",
        "parameters": ["Ada", "#1501", "UPS", UPS_TRACKING_URL],
    }
    assert demo.captured(channel="sms") == []
    assert _channels(demo) == [("email", "ada@example.com"), ("whatsapp", "447911123456")]
    message = _dispatch_message(demo)
    assert (message["channel"], message["recipient"], message["status"], message["attempts"]) == (
        "whatsapp",
        "+447911123456",
        "sent",
        1,
    )
    assert message["provider_message_id"] == whatsapp["provider_message_id"]


def test_dispatch_goes_by_sms_to_an_sms_only_customer(demo):
    placed, dispatched, *_ = deliveries("Grace")

    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED
    [sms] = demo.wait_for(lambda: demo.captured(channel="sms"), what="the SMS dispatch message")
    demo.wait_until_idle()

    assert (sms["to"], sms["sender"], sms["body"]) == (
        "+12025550143",
        "+15005550006",
        f"Juniper & Pine: Hi Grace, your order #1501 is on its way with UPS! "
        f"Track it: {UPS_TRACKING_URL}",
    )
    assert demo.captured(channel="whatsapp") == []
    assert _channels(demo) == [("email", "grace@example.com"), ("sms", "+12025550143")]


def test_sms_falling_due_together_leave_a_second_apart_as_a_us_long_code_takes_them(demo):
    """The demo's Twilio number is paced as the default sender is: one segment a second."""
    for n in range(3):
        placed, dispatched, *_ = deliveries("Grace", order_id=800 + n, number=1800 + n)
        assert demo.post_webhook(placed).json() == ACCEPTED
        assert demo.post_webhook(dispatched).json() == ACCEPTED

    demo.wait_for(lambda: len(demo.captured(channel="sms")) >= 3, what="three SMS")
    demo.wait_until_idle()

    orders = sorted(re.findall(r"#\d+", sms["body"])[0] for sms in demo.captured(channel="sms"))
    assert orders == ["#1800", "#1801", "#1802"]
    with demo.db.transaction() as session:
        handed_over = session.scalars(
            select(DeliveryAttempt.started_at)
            .where(DeliveryAttempt.channel == "sms")
            .order_by(DeliveryAttempt.started_at)
        ).all()
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(handed_over)]
    assert len(gaps) == 2
    assert min(gaps) >= 1.0


def test_bad_hmac_is_refused_with_401_and_nothing_is_stored_or_sent(demo):
    placed = deliveries("Ada")[0]
    forged = {**placed.headers, "X-Shopify-Hmac-Sha256": sign(placed.body, "not-the-secret")}

    response = demo.http.post("/webhooks/shopify/demo", content=placed.body, headers=forged)

    assert response.status_code == 401
    assert response.json() == {"error": "HMAC signature does not match"}
    assert demo.messages() == []
    assert (
        count(demo.db, WebhookDelivery),
        count(demo.db, StoreEvent),
        count(demo.db, Order),
        count(demo.db, JourneyRun),
        count(demo.db, Job, Job.workspace_id.is_not(None)),
    ) == (0, 0, 0, 0, 0)
    assert demo.captured() == []


def test_ten_identical_deliveries_send_one_message(demo):
    placed = deliveries("Alan")[0]
    answers: list[tuple[int, dict]] = []
    barrier = threading.Barrier(10)

    def deliver() -> None:
        with httpx2.Client(base_url=demo.base_url, timeout=30.0) as client:
            barrier.wait(timeout=10)
            response = client.post(
                "/webhooks/shopify/demo", content=placed.body, headers=placed.headers
            )
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=40)
    demo.wait_for(lambda: demo.captured(), what="the confirmation email")
    demo.wait_until_idle()

    assert sorted(answers, key=str) == sorted(
        [(200, ACCEPTED)] + [(200, {"status": "duplicate"})] * 9, key=str
    )
    assert _channels(demo) == [("email", "alan@example.com")]
    assert len(demo.messages()) == 1
    assert (
        count(demo.db, WebhookDelivery),
        count(demo.db, JourneyRun),
        count(demo.db, Job, Job.workspace_id.is_not(None)),
    ) == (1, 1, 1)


@pytest.mark.parametrize(
    ("fault", "settings"),
    [
        pytest.param({"status": 503}, {}, id="503_case"),
        pytest.param({"status": 429}, {}, id="429_case"),
        pytest.param(
            {"status": 503, "delay_seconds": 1.5},
            {"PARLEY_PROVIDER_TIMEOUT_SECONDS": "0.5"},
            id="timeout_case",
        ),
    ],
)
def test_provider_outage_is_retried_until_the_sms_goes_out_once(start_demo, fault, settings):
    demo = start_demo(PARLEY_JOB_BACKOFF_BASE_SECONDS="0.2", **settings)
    demo.inject_fault(channel="sms", count=2, **fault)
    placed, dispatched, *_ = deliveries("Grace")

    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED
    demo.wait_for(lambda: demo.captured(channel="sms"), what="the SMS after retries")
    demo.wait_until_idle()

    assert [m["to"] for m in demo.captured(channel="sms")] == ["+12025550143"]
    message = _dispatch_message(demo)
    assert (message["channel"], message["status"], message["attempts"], message["reason"]) == (
        "sms",
        "sent",
        3,
        None,
    )
    assert demo.http.get("/sandbox/api/faults").json() == {"faults": []}
    assert demo.api("GET", "/jobs/dead").json() == {"jobs": []}


def _wait_for_dispatch_to_settle(demo: DemoServer, max_attempts: int) -> dict:
    """The dispatch message once it failed, or as soon as it went past ``max_attempts``."""

    def settled() -> dict | None:
        found = [m for m in demo.messages() if m["type"] == "dispatch"]
        if found and (found[0]["status"] == "failed" or found[0]["attempts"] > max_attempts):
            return found[0]
        return None

    return demo.wait_for(settled, timeout=30.0, what="the dispatch message to fail")


# PARLEY_JOB_MAX_ATTEMPTS is what a deploying engineer sets to ride out a longer outage
# or give up sooner; the deployment's default is 12 (1.2 to 2.4 hours at the default
# backoff, too long to wait for here).
@pytest.mark.parametrize("max_attempts", [3, 8, 10], ids=lambda n: f"{n}_case")
def test_permanent_outage_ends_in_the_dead_letter_after_max_attempts(start_demo, max_attempts):
    demo = start_demo(
        PARLEY_JOB_BACKOFF_BASE_SECONDS="0.01", PARLEY_JOB_MAX_ATTEMPTS=str(max_attempts)
    )
    demo.inject_fault(channel="sms", status=503, count=-1)
    placed, dispatched, *_ = deliveries("Grace")

    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED
    message = _wait_for_dispatch_to_settle(demo, max_attempts)
    demo.wait_until_idle()

    twilio_503 = "Twilio could not take the SMS (HTTP 503, error 20503)"
    assert (message["status"], message["attempts"]) == ("failed", max_attempts), (
        f"PARLEY_JOB_MAX_ATTEMPTS={max_attempts} was not honoured"
    )
    assert message["reason"].startswith(f"dead letter after {max_attempts} attempts: {twilio_503}")
    [job] = demo.api("GET", "/jobs/dead").json()["jobs"]
    assert (job["kind"], job["attempts"]) == ("journeys.advance", max_attempts)
    assert job["last_error"].startswith(f"gave up after {max_attempts} attempts: {twilio_503}")
    assert demo.captured(channel="sms") == []


def test_a_dead_lettered_sms_goes_out_once_when_retried_after_the_outage(start_demo):
    demo = start_demo(PARLEY_JOB_BACKOFF_BASE_SECONDS="0.01", PARLEY_JOB_MAX_ATTEMPTS="3")
    demo.inject_fault(channel="sms", status=503, count=-1)
    placed, dispatched, *_ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    _wait_for_dispatch_to_settle(demo, 3)
    demo.wait_until_idle()
    [dead] = demo.api("GET", "/jobs/dead").json()["jobs"]

    assert demo.http.delete("/sandbox/api/faults").status_code == 204
    retried = demo.api("POST", f"/jobs/dead/{dead['id']}/retry")
    assert retried.status_code == 200, retried.text
    demo.wait_for(lambda: demo.captured(channel="sms"), what="the re-sent SMS")
    demo.wait_until_idle()

    assert [m["to"] for m in demo.captured(channel="sms")] == ["+12025550143"]
    dispatches = [m for m in demo.messages() if m["type"] == "dispatch"]
    assert sorted((m["channel"], m["status"], m["attempts"]) for m in dispatches) == [
        ("sms", "failed", 3),
        ("sms", "sent", 1),
    ]
    assert demo.api("GET", "/jobs/dead").json() == {"jobs": []}


def test_a_refused_twilio_login_falls_back_to_email_which_waits_out_a_refused_smtp_login(
    start_demo,
):
    demo = start_demo(PARLEY_JOB_BACKOFF_BASE_SECONDS="0.01")
    placed, dispatched, *_ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.wait_for(lambda: demo.captured(channel="email"), what="the confirmation")
    demo.wait_until_idle()
    demo.inject_fault(channel="sms", status=401, count=-1)
    demo.inject_fault(channel="email", status=535, count=2)

    demo.post_webhook(dispatched)
    demo.wait_for(lambda: len(demo.captured(channel="email")) == 2, what="the dispatch email")
    demo.wait_until_idle()

    assert demo.captured(channel="sms") == []
    [_, email] = demo.captured(channel="email")
    assert email["to"] == "grace@example.com"
    dispatches = {m["channel"]: m for m in demo.messages() if m["type"] == "dispatch"}
    assert {c: (m["status"], m["attempts"]) for c, m in dispatches.items()} == {
        "sms": ("failed", 1),
        "email": ("sent", 3),
    }
    assert dispatches["sms"]["reason"] == (
        "Twilio rejected the SMS (HTTP 401, error 20003): Twilio rejected the account"
        " credentials - Authenticate"
    )
    assert demo.api("GET", "/jobs/dead").json() == {"jobs": []}


def _check_providers(demo, *channels: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*parley_command(), "providers", "check", *channels],
        env={**demo.env, "PARLEY_SANDBOX": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_providers_check_asks_each_sandbox_provider_and_sends_nothing(demo):
    result = _check_providers(demo)

    assert result.returncode == 0, result.stdout + result.stderr
    smtp_port = demo.env["PARLEY_SANDBOX_SMTP_PORT"]
    assert result.stdout.splitlines() == [
        f"email      ok      the mail server at 127.0.0.1:{smtp_port} took the connection"
        " (no login configured); sending domain demo.parley.test: SPF, DKIM (parley) and"
        " DMARC (none) in place",
        "sms        ok      the Twilio account ACsandbox00000000000000000000000000 is active"
        " and +15005550006 is one of its numbers",
        "whatsapp   ok      the token reads the WhatsApp number +15550100001 (parley sandbox)"
        " and 4 templates of its business account (4 approved, 0 marketing)",
        "instagram  ok      the token is the Instagram account @parley_sandbox's",
        "webchat    ok      served by parley itself: nothing to check",
    ]
    assert demo.captured() == []


def test_providers_check_names_a_refused_token_and_a_sender_not_on_the_account(demo):
    result = _check_providers(
        demo,
        "sms",
        "whatsapp",
        PARLEY_WHATSAPP_ACCESS_TOKEN="revoked-token",
        PARLEY_TWILIO_FROM_NUMBER="+15551234567",
    )

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "sms        FAILED  +15551234567 (PARLEY_TWILIO_FROM_NUMBER) is not a number of the"
        " Twilio account ACsandbox00000000000000000000000000 (check the credentials and sender)",
        "whatsapp   FAILED  WhatsApp refused the settings (HTTP 401, error 190): Invalid OAuth"
        " access token. (check the credentials and sender)",
    ]


def _connect_twilio(
    demo: DemoServer, number: str, account: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``parley workspace connect`` of a Twilio number to the demo store, with the
    account's SID as well as its auth token: the store's texts go from it."""
    return subprocess.run(
        [
            *parley_command(),
            "workspace",
            "connect",
            "--slug",
            "demo",
            "--provider",
            "twilio",
            "--address",
            number,
            "--secret",
            f"auth_token={account['auth_token']}",
            "--secret",
            f"account_sid={account['account_sid']}",
        ],
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_store_that_connects_its_own_twilio_account_texts_from_its_number(demo):
    # Given a Twilio account the store signed up for (at the sandbox, standing in for
    # Twilio), connected with its SID as well as its auth token
    signed_up = demo.http.post("/sandbox/api/accounts/twilio")
    assert signed_up.status_code == 201
    account = signed_up.json()
    sid, number = account["account_sid"], account["phone_number"]
    connected = _connect_twilio(demo, number, account)
    assert connected.returncode == 0, connected.stderr
    checked = _check_providers(demo, "sms", "--workspace", "demo")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        f"sms        ok      the Twilio account {sid} is active and {number} is one of its numbers"
    ]

    # When Grace's order ships
    placed, dispatched, *_ = deliveries("Grace")
    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED

    # Then the text went from the store's own number, and Twilio's receipts for it, signed
    # with that account's token, reached the store: the dispatch reads delivered
    [sms] = demo.wait_for(lambda: demo.captured(channel="sms"), what="the SMS dispatch")
    assert (sms["sender"], sms["to"]) == (number, "+12025550143")
    demo.wait_for(
        lambda: [
            m for m in demo.messages() if m["type"] == "dispatch" and m["status"] == "delivered"
        ],
        what="the delivered receipt",
    )


def test_a_store_that_connects_its_own_whatsapp_number_sends_from_it_and_hears_its_receipts(
    demo,
):
    # Given a WhatsApp number the store signed up for, whose webhooks its Meta app signs
    signed_up = demo.http.post(
        "/sandbox/api/accounts/whatsapp", json={"app_secret": "store-own-meta-app-secret"}
    )
    assert signed_up.status_code == 201
    number = signed_up.json()
    connected = subprocess.run(
        [
            *parley_command(),
            "workspace",
            "connect",
            "--slug",
            "demo",
            "--provider",
            "whatsapp_cloud",
            "--address",
            number["phone_number_id"],
            "--secret",
            "app_secret=store-own-meta-app-secret",
            "--secret",
            "verify_token=store-own-verify-token",
            "--secret",
            f"access_token={number['access_token']}",
        ],
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert connected.returncode == 0, connected.stderr

    # When Ada's order ships
    placed, dispatched, *_ = deliveries("Ada")
    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED

    # Then it went from the store's own number, and Meta's statuses for it (naming that
    # number, signed with the store's app secret) brought the dispatch to delivered
    [whatsapp] = demo.wait_for(lambda: demo.captured(channel="whatsapp"), what="the dispatch")
    assert (whatsapp["sender"], whatsapp["to"]) == (number["phone_number_id"], "447911123456")
    demo.wait_for(
        lambda: [
            m for m in demo.messages() if m["type"] == "dispatch" and m["status"] == "delivered"
        ],
        what="the delivered receipt",
    )


def test_a_store_emails_from_its_own_domain_once_its_records_are_published(demo):
    # Given the store asks for its email to go from orders@juniper.example
    saved = subprocess.run(
        [
            *parley_command(),
            *("workspace", "email-sender", "--slug", "demo"),
            *("--address", "orders@juniper.example", "--dkim-selector", "s1"),
        ],
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert saved.returncode == 0, saved.stderr
    token = re.search(r'juniper\.example TXT "parley-verification=([^"]+)"', saved.stdout)
    assert token, saved.stdout
    unpublished = _check_providers(demo, "email", "--workspace", "demo")
    assert unpublished.returncode == 1
    assert "email      FAILED  email goes from the deployment's address" in unpublished.stdout

    # When it publishes its records at its DNS host (the sandbox's, standing in for it),
    # and the check reads them
    records = {
        "juniper.example": ["v=spf1 ip4:127.0.0.1 -all", f"parley-verification={token[1]}"],
        "s1._domainkey.juniper.example": ["v=DKIM1; k=rsa; p=MIIBIjANBgkq"],
        "_dmarc.juniper.example": ["v=DMARC1; p=none"],
    }
    for name, txt in records.items():
        assert demo.http.put(f"/sandbox/api/dns/{name}", json={"txt": txt}).status_code == 200
    checked = _check_providers(demo, "email", "--workspace", "demo")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        "email      ok      email goes from orders@juniper.example: juniper.example is this"
        " store's and set up"
    ]

    # Then Alan's confirmation goes from the store's own address, under its name
    assert demo.post_webhook(deliveries("Alan")[0]).json() == ACCEPTED
    [email] = demo.wait_for(lambda: demo.captured(channel="email"), what="the confirmation")
    assert (email["to"], email["sender"]) == (
        "alan@example.com",
        "Juniper & Pine <orders@juniper.example>",
    )


def test_providers_check_of_a_store_names_a_number_that_is_not_its_accounts(demo):
    account = demo.http.post("/sandbox/api/accounts/twilio").json()
    assert _connect_twilio(demo, "+15005559999", account).returncode == 0

    checked = _check_providers(demo, "--workspace", "demo")

    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [
        "sms        FAILED  +15005559999 (the store's account on Settings → Channels) is not a"
        f" number of the Twilio account {account['account_sid']} (check the credentials and"
        " sender)"
    ]
    assert demo.captured() == []


def test_simulate_against_the_live_demo_captures_eight_messages(demo):
    """At simulate's own pace (a second between deliveries) every update is news when the
    worker gets to it, so each of the four is sent (all at once, only the latest would be)."""
    env = {**demo.env, "PARLEY_DEMO_SHOPIFY_SECRET": SECRET}
    result = subprocess.run(
        [*parley_command(), "simulate", "--url", demo.base_url, "--orders", "2", "--delay", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    demo.wait_for(lambda: len(demo.captured()) >= 8, timeout=20.0, what="eight messages")
    demo.wait_until_idle()

    lines = result.stdout.splitlines()
    assert len([line for line in lines if "→ 200 " in line]) == 8
    assert lines[-1] == f"done: see {demo.base_url}/sandbox/"
    assert Counter(_channels(demo)) == Counter(
        {
            ("email", "ada@example.com"): 1,
            ("whatsapp", "447911123456"): 3,
            ("email", "grace@example.com"): 1,
            ("sms", "+12025550143"): 3,
        }
    )
    templates = sorted(m["template"]["name"] for m in demo.captured(channel="whatsapp"))
    assert templates == ["order_delivered", "order_dispatched", "order_out_for_delivery"]


def _outbound(server: DemoServer, channel: str) -> list[dict]:
    return [m for m in server.captured(channel=channel) if m.get("direction") != "inbound"]


def test_a_whatsapp_reply_to_a_dispatch_is_answered_with_its_tracking_link_within_a_second(
    demo,
):
    placed, dispatched, *_ = deliveries("Ada")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    demo.wait_for(lambda: _outbound(demo, "whatsapp"), what="the WhatsApp dispatch message")

    started = time.monotonic()
    response = demo.http.post(
        "/sandbox/api/inbound",
        json={"channel": "whatsapp", "from": "+447911123456", "text": "where is my order?"},
    )
    [reply] = demo.wait_for(
        lambda: [
            m
            for m in _outbound(demo, "whatsapp")
            if m["template"] is None and UPS_TRACKING_URL in m["body"]
        ],
        timeout=10.0,
        what="the assistant's reply",
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 200, response.text
    assert elapsed < 1.0, f"the assistant answered after {elapsed:.2f} s"
    assert reply["to"] == "447911123456"
    assert "#1501" in reply["body"]
    assert "UPS" in reply["body"]
    by_type = Counter(m["type"] for m in demo.messages())
    assert by_type["dispatch"] == 1
    assert by_type["reply"] == 1


def test_stop_by_sms_in_the_demo_keeps_the_next_shipping_update_off_sms(
    demo,
):
    placed, dispatched, out_for_delivery, _ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    demo.wait_for(lambda: _outbound(demo, "sms"), what="the SMS dispatch message")

    stop = demo.http.post(
        "/sandbox/api/inbound", json={"channel": "sms", "from": "+12025550143", "text": "STOP"}
    )
    assert stop.status_code == 200, stop.text
    demo.wait_for(lambda: len(_outbound(demo, "sms")) == 2, what="the STOP confirmation")
    demo.post_webhook(out_for_delivery)
    demo.wait_until_idle()

    texts = [m["body"] for m in _outbound(demo, "sms")]
    assert len(texts) == 2
    assert "unsubscribed" in texts[1]
    skipped = [
        m for m in demo.messages() if m["type"] == "out_for_delivery" and m["channel"] == "sms"
    ]
    assert [(m["status"], m["reason"]) for m in skipped] == [
        ("skipped", "opted out: not sent on sms")
    ]


def test_webhooks_are_answered_while_a_send_hangs_at_the_provider(start_demo):
    """The answer never waits for a send (RELIABILITY W4): with Grace's dispatch SMS
    hanging at the provider, her order's next deliveries and another store order are each
    stored and answered while that SMS is still in flight."""
    demo = start_demo(PARLEY_PROVIDER_TIMEOUT_SECONDS="30")
    demo.inject_fault(channel="sms", status=503, delay_seconds=30)
    placed, dispatched, out_for_delivery, delivered = deliveries("Grace")
    assert demo.post_webhook(placed).json() == ACCEPTED
    assert demo.post_webhook(dispatched).json() == ACCEPTED
    demo.wait_for(lambda: _dispatch_sending(demo), what="the dispatch SMS in flight")

    answers = [
        demo.post_webhook(delivery).json()["status"]
        for delivery in (out_for_delivery, delivered, deliveries("Alan", order_id=502)[0])
    ]

    assert answers == ["accepted"] * 3
    assert _dispatch_sending(demo)
    assert demo.captured(channel="sms") == []
    assert count(demo.db, WebhookDelivery) == 5


def _dispatch_sending(demo: DemoServer) -> bool:
    return any(m["type"] == "dispatch" and m["status"] == "sending" for m in demo.messages())
