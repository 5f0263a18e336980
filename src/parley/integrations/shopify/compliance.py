"""Shopify's mandatory compliance topics, read into parley's privacy requests.

Every Shopify app must answer ``customers/data_request`` (gather what is held on a
customer for the store owner), ``customers/redact`` (delete it) and ``shop/redact`` (sent
48 hours after a store uninstalls: delete everything of the store). They carry no event
for a store's timeline, so they are not mapped to events (:mod:`.mapping`): they become
:mod:`parley.privacy` requests, carried out by a job after the delivery is acknowledged.
"""

from __future__ import annotations

from parley.integrations.shopify.mapping import Fields, MalformedPayload
from parley.privacy.models import RequestKind
from parley.privacy.service import CustomerRequest, StoreErasure, Subject

CUSTOMER_TOPICS = {
    "customers/redact": RequestKind.ERASURE,
    "customers/data_request": RequestKind.ACCESS,
}
SHOP_REDACT = "shop/redact"
TOPICS = frozenset({*CUSTOMER_TOPICS, SHOP_REDACT})


def read_request(topic: str, payload: object) -> CustomerRequest | StoreErasure:
    """The request a compliance delivery makes; :class:`MalformedPayload` names what is
    missing (a request parley could not carry out is refused, never acknowledged)."""
    if topic not in TOPICS:
        raise ValueError(f"{topic!r} is not a compliance topic")
    if not isinstance(payload, dict):
        raise MalformedPayload(f"{topic}: the body is not a JSON object")
    fields = Fields(payload, topic=topic)
    shop_domain = fields.text("shop_domain")
    if topic == SHOP_REDACT:
        return StoreErasure(shop_domain=shop_domain)
    customer = fields.child("customer")
    if customer is None:
        fields.fail("customer", "is missing")
    kind = CUSTOMER_TOPICS[topic]
    orders = fields.idents(
        "orders_to_redact" if kind is RequestKind.ERASURE else "orders_requested"
    )
    subject = Subject(
        platform_customer_id=customer.ident("id"),
        email=customer.text("email"),
        phone=customer.text("phone"),
        orders=tuple(orders),
    )
    if not subject.names_someone():
        fields.fail("customer", "names no one: it has no id, email or phone")
    data_request = fields.child("data_request")
    return CustomerRequest(
        kind=kind,
        subject=subject,
        shop_domain=shop_domain,
        platform_request_id=data_request.ident("id") if data_request else None,
    )
