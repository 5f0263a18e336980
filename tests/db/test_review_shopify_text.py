"""A Shopify delivery whose text holds what no database keeps (JSON's ``\\u0000``, half a
surrogate pair) is taken in with those characters replaced, on both engines: refused or
failed, every one of Shopify's retries would fail the same way and the event be lost."""

from __future__ import annotations

import json

from parley.clock import utc_now
from parley.customers.models import Customer
from parley.demo.simulate import shopper_dict
from parley.integrations.shopify import payloads
from parley.store_events.models import StoreEvent, WebhookDelivery
from support import SECRET, count, post, rows, seed, shopper


def _order_from(first_name: str) -> tuple[bytes, dict[str, str]]:
    buyer = shopper_dict(shopper("Ada"))
    buyer["first_name"] = first_name
    payload = payloads.order_payload(
        order_id=9001,
        number=1901,
        customer=buyer,
        line_items=[{"title": "Mug", "quantity": 1, "price": "10.00", "sku": "MUG"}],
        created_at=utc_now(),
    )
    # As Shopify escapes them: ASCII JSON, so the body itself is storable text.
    body = json.dumps(payload).encode()
    headers = payloads.webhook_headers(
        "orders/create", body, SECRET, shop_domain=payloads.DEMO_SHOP_DOMAIN, webhook_id="w-nul"
    )
    return body, headers


def test_an_order_naming_its_shopper_with_a_nul_is_kept_with_it_replaced(db):
    seed(db)
    body, headers = _order_from("Ada\u0000")

    answer = post(db, None, body=body, headers=headers)

    assert answer == {"status": "accepted", "events": 1, "journeys_started": 1}
    assert count(db, WebhookDelivery) == 1
    assert count(db, StoreEvent) == 1
    assert "Ada\ufffd" in [customer.first_name for customer in rows(db, Customer)]


def test_an_order_naming_its_shopper_with_half_a_surrogate_pair_is_kept_with_it_replaced(db):
    seed(db)
    body, headers = _order_from("Ada\ud800")

    answer = post(db, None, body=body, headers=headers)

    assert answer == {"status": "accepted", "events": 1, "journeys_started": 1}
    assert "Ada\ufffd" in [customer.first_name for customer in rows(db, Customer)]
