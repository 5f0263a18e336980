"""Two store customers sharing a phone or an email stay two people, whichever order their
records and messages arrive in."""

from __future__ import annotations

from parley import events
from parley.channels.base import ChannelKind
from parley.customers import service as customers
from parley.customers.models import CustomerIdentity, CustomerMerge, IdentityKind
from support import customer_writes, rows, seed

FAMILY_PHONE = "+12025550163"


def _record(db, workspace_id: int, profile: events.Customer) -> int:
    with db.transaction() as session:
        customer_id = customers.resolve_customer_id(
            session,
            workspace_id=workspace_id,
            contact=customers.contact_from(profile),
            profile=profile,
            consent_source="shopify",
        )
    assert customer_id is not None
    return customer_id


def _platform_ids(db) -> dict[str, int]:
    return {
        i.value: i.customer_id
        for i in rows(db, CustomerIdentity, CustomerIdentity.kind == IdentityKind.SHOPIFY)
    }


def test_a_new_store_customer_whose_email_wrote_before_does_not_take_in_who_holds_the_phone(db):
    workspace_id = seed(db)
    # Given mum, the store's customer 8101, holding the family phone
    mum = _record(
        db,
        workspace_id,
        events.Customer(external_id="8101", email="mum@example.org", phone=FAMILY_PHONE),
    )
    # ...and her son, who once emailed the store before having an account
    son = customer_writes(db, channel=ChannelKind.EMAIL, sender="son@example.org", text="hi")

    # When the son signs up at the store (customer 8102) with the family phone
    kept = _record(
        db,
        workspace_id,
        events.Customer(external_id="8102", email="son@example.org", phone=FAMILY_PHONE),
    )

    # Then his record joins his own profile, and mum stays mum: two store customers are
    # never one profile
    assert kept == son.customer_id
    assert rows(db, CustomerMerge) == []
    assert _platform_ids(db)["8101"] == mum
    assert _platform_ids(db)["8102"] == son.customer_id
    [phone] = rows(db, CustomerIdentity, CustomerIdentity.value == FAMILY_PHONE)
    assert phone.customer_id == mum
