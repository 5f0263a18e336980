"""WhatsApp templates in the running demo: its worker reads the sandbox account's
templates over the Graph API's wire format, and Meta's re-classing (played by the
sandbox, told by a signed webhook) keeps a marketing template from a customer who took
only order updates on WhatsApp, who then gets the SMS."""

from __future__ import annotations

from sqlalchemy import select

from parley.messaging.models import WhatsAppTemplate
from support import deliveries, shopper

FRIDA = shopper("Frida").phone


def _held(demo) -> dict[str, tuple[str, str]]:
    with demo.db.transaction() as session:
        return {t.name: (t.status, t.category) for t in session.scalars(select(WhatsAppTemplate))}


def test_a_template_meta_reclasses_as_marketing_sends_frida_an_sms_instead(demo):
    held = demo.wait_for(
        lambda: len(_held(demo)) >= 4 and _held(demo),
        what="the templates read from the sandbox's WhatsApp account",
    )
    assert held["order_dispatched"] == ("APPROVED", "UTILITY")

    placed, dispatched, *_ = deliveries("Ada")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    [to_ada] = demo.wait_for(
        lambda: demo.captured(channel="whatsapp"), what="Ada's dispatch on WhatsApp"
    )
    assert to_ada["template"]["name"] == "order_dispatched"

    review = demo.http.post(
        "/sandbox/api/whatsapp-templates",
        json={"name": "order_dispatched", "language": "en", "category": "MARKETING"},
    )
    assert review.status_code == 200
    demo.wait_for(
        lambda: _held(demo)["order_dispatched"] == ("APPROVED", "MARKETING"),
        what="Meta's category update applied",
    )

    placed, dispatched, *_ = deliveries("Frida", order_id=502, number=1502)
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    [to_frida] = demo.wait_for(
        lambda: demo.captured(channel="sms", to=FRIDA), what="Frida's dispatch by SMS"
    )
    demo.wait_until_idle()

    assert "#" in to_frida["body"]
    assert [m for m in demo.captured(channel="whatsapp") if m["to"] == FRIDA.lstrip("+")] == []
    [decided] = [m for m in demo.messages() if m["type"] == "dispatch" and m["channel"] == "sms"]
    assert decided["decision"] == [
        "whatsapp: template order_dispatched (en) is marketing at Meta; no marketing consent"
    ]
