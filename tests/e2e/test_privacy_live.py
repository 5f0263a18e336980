"""Privacy requests against the running demo: Shopify's compliance webhooks are answered
at once and carried out by the demo's own worker, over loopback HTTP only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from parley.integrations.shopify import payloads
from parley.integrations.shopify.signature import sign
from support import SECRET, deliveries, where_found


def _compliance(demo, topic: str, payload: dict, webhook_id: str):
    body = json.dumps(payload).encode()
    headers = payloads.webhook_headers(
        topic, body, SECRET, shop_domain=payloads.DEMO_SHOP_DOMAIN, webhook_id=webhook_id
    )
    return demo.http.post("/webhooks/shopify/demo", content=body, headers=headers)


def _done(demo) -> list[dict]:
    requests = demo.api("GET", "/privacy-requests").json()["requests"]
    return [request for request in requests if request["status"] == "done"]


def test_a_customer_gathered_then_erased_by_the_running_demo(demo):
    placed, dispatched, *_ = deliveries("Ada")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    demo.wait_for(lambda: demo.captured(channel="whatsapp"), what="Ada's dispatch message")
    demo.wait_for(
        lambda: all(
            m["status"] == "delivered" for m in demo.messages() if m["channel"] == "whatsapp"
        ),
        what="the sandbox's receipts for it",
    )
    demo.wait_until_idle()
    ada = {"id": 7001, "email": "ada@example.com", "phone": "+447911123456"}

    access = _compliance(demo, "customers/data_request", {"customer": ada}, "access-1")
    assert access.json() == {"status": "accepted", "request": "access", "id": 1}
    [gathered] = demo.wait_for(lambda: _done(demo), what="the access request carried out")
    export = demo.api("GET", f"/privacy-requests/{gathered['id']}/export").json()
    assert sorted(message["channel"] for message in export["messages"]) == ["email", "whatsapp"]

    erasure = _compliance(demo, "customers/redact", {"customer": ada}, "erasure-1")
    assert erasure.json() == {"status": "accepted", "request": "erasure", "id": 2}
    demo.wait_for(lambda: len(_done(demo)) == 2, what="the erasure carried out")
    assert where_found(demo.db, "ada@example.com", "7911123456", "Lovelace") == []
    assert [
        m for m in demo.messages() if m["recipient"] in ("ada@example.com", "447911123456")
    ] == []
    assert demo.api("GET", f"/privacy-requests/{gathered['id']}/export").status_code == 404

    body = json.dumps({"customer": {"id": 7003}}).encode()
    refused = demo.http.post(
        "/webhooks/shopify/demo",
        content=body,
        headers={
            **payloads.webhook_headers(
                "customers/redact", body, SECRET, shop_domain="x", webhook_id="bad"
            ),
            "X-Shopify-Hmac-Sha256": sign(body, "not-the-secret"),
        },
    )
    assert refused.status_code == 401
    assert "bad or missing HMAC" in demo.stderr()


def _sms_sent(demo) -> list[dict]:
    return [m for m in demo.captured(channel="sms") if m.get("direction") != "inbound"]


def test_a_stop_outlives_the_erasure_in_the_running_demo(demo):
    """STOP, redact, the store imports her again "subscribed": no SMS reaches her."""
    placed, dispatched, *_ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    demo.wait_for(lambda: _sms_sent(demo), what="Grace's SMS dispatch message")
    stop = demo.http.post(
        "/sandbox/api/inbound", json={"channel": "sms", "from": "+12025550143", "text": "STOP"}
    )
    assert stop.status_code == 200, stop.text
    demo.wait_for(lambda: len(_sms_sent(demo)) == 2, what="the STOP confirmation")
    grace = {"id": 7002, "email": "grace@example.com", "phone": "+12025550143"}
    erasure = _compliance(demo, "customers/redact", {"customer": grace}, "erasure-grace")
    assert erasure.json()["status"] == "accepted"
    demo.wait_for(lambda: _done(demo), what="the erasure carried out")

    month_ago = datetime.now(UTC) - timedelta(days=30)
    again = payloads.customer_payload(
        customer={**grace, "first_name": "Grace", "sms_consent": True}, created_at=month_ago
    )
    assert _compliance(demo, "customers/create", again, "re-import").status_code == 200
    placed, dispatched, *_ = deliveries("Grace", order_id=503, number=1503)
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    demo.wait_for(
        lambda: [m for m in demo.captured(channel="email") if "1503" in json.dumps(m)][1:],
        what="her confirmation and dispatch by email",
    )
    demo.wait_until_idle()

    assert len(_sms_sent(demo)) == 2
    [skipped] = [m for m in demo.messages() if m["type"] == "dispatch" and m["channel"] == "sms"]
    assert (skipped["status"], skipped["reason"]) == ("skipped", "opted out: not sent on sms")
