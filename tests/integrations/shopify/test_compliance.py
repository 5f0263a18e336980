"""Shopify's published samples of the compliance topics, read into privacy requests."""

from __future__ import annotations

import json

import pytest

from conftest import shared_data
from parley.integrations.shopify.compliance import read_request
from parley.integrations.shopify.mapping import MalformedPayload
from parley.privacy.models import RequestKind
from parley.privacy.service import CustomerRequest, StoreErasure, Subject

SAMPLE_CUSTOMER = Subject(
    platform_customer_id="191167",
    email="john@example.com",
    phone="555-625-1199",
    orders=("299938", "280263", "220458"),
)


def _sample(name: str) -> object:
    return json.loads(shared_data(f"webhooks/shopify/{name}").read_text())


def test_customers_redact_sample_is_an_erasure_of_the_customer_and_their_orders():
    request = read_request("customers/redact", _sample("customers__redact.json"))
    assert request == CustomerRequest(
        kind=RequestKind.ERASURE, subject=SAMPLE_CUSTOMER, shop_domain="{shop}.myshopify.com"
    )


def test_customers_data_request_sample_is_an_access_request_with_shopify_request_id():
    request = read_request("customers/data_request", _sample("customers__data_request.json"))
    assert request == CustomerRequest(
        kind=RequestKind.ACCESS,
        subject=SAMPLE_CUSTOMER,
        shop_domain="{shop}.myshopify.com",
        platform_request_id="9999",
    )


def test_shop_redact_sample_is_the_store_erasure():
    request = read_request("shop/redact", _sample("shop__redact.json"))
    assert request == StoreErasure(shop_domain="{shop}.myshopify.com")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"customer": {"id": True}}, "customers/redact: 'customer.id' is not an id"),
        ({"customer": {"email": 3}}, "customers/redact: 'customer.email' is not text"),
        ({"customer": "x"}, "customers/redact: 'customer' is not an object"),
        (
            {"customer": {"id": 1}, "orders_to_redact": [1, None]},
            "customers/redact: 'orders_to_redact[1]' is not an id",
        ),
    ],
)
def test_a_malformed_request_names_the_field(payload, reason):
    with pytest.raises(MalformedPayload) as refused:
        read_request("customers/redact", payload)
    assert str(refused.value) == reason


def test_other_topics_are_not_compliance_requests():
    with pytest.raises(ValueError, match="not a compliance topic"):
        read_request("orders/create", {})
