"""A shopper's order shipped to someone else (a gift) names the recipient's phone on its
shipping address. The shopper's own phone, on their default address, is theirs: the
recipient's must not become it, nor join the recipient's profile to theirs."""

from __future__ import annotations

from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers.models import Customer, CustomerIdentity
from parley.integrations.shopify import payloads
from support import count, post, rows, seed, signed

ALICE_PHONE = "+12075550101"
BOB_PHONE = "+12075550177"


def _gift_order() -> dict[str, object]:
    alice = {"id": 7999, "email": "alice@example.com", "phone": None, "first_name": "Alice"}
    payload = payloads.order_payload(
        order_id=9101,
        number=1911,
        customer=alice,
        line_items=[{"title": "Mug", "quantity": 1, "price": "10.00", "sku": "MUG"}],
        created_at=utc_now(),
    )
    payload["customer"]["default_address"]["phone"] = ALICE_PHONE  # her own, saved
    for key in ("shipping_address", "billing_address"):
        payload[key] = {**payload[key], "first_name": "Bob", "name": "Bob", "phone": None}
    payload["shipping_address"]["phone"] = BOB_PHONE
    return payload


def test_a_gift_order_keeps_the_shoppers_own_phone_and_leaves_the_recipient_alone(db):
    workspace_id = seed(db)
    with db.transaction() as session:  # Bob texted the store once: a profile by phone only
        bob_id = customers.resolve_customer_id(
            session,
            workspace_id=workspace_id,
            contact=customers.Contact(external_id=None, email=None, phone=BOB_PHONE),
        )
    before = count(db, Customer)
    body, headers = signed("orders/create", _gift_order(), webhook_id="w-gift")

    post(db, None, body=body, headers=headers)

    assert count(db, Customer) == before + 1
    bob = next(customer for customer in rows(db, Customer) if customer.id == bob_id)
    assert bob.merged_into_id is None
    held_by = {
        identity.value: identity.customer_id
        for identity in rows(db, CustomerIdentity)
        if identity.value in (ALICE_PHONE, BOB_PHONE)
    }
    alice = next(c for c in rows(db, Customer) if c.email == "alice@example.com")
    assert held_by == {BOB_PHONE: bob_id, ALICE_PHONE: alice.id}
    assert alice.phone == ALICE_PHONE
