"""A new shopper met twice at once on PostgreSQL: their first text and the store's record
of them, each stored while the other's transaction is open, make one profile. (SQLite has
one writer: the second waits for the first to commit.)"""

from __future__ import annotations

import threading

import pytest

from parley import events
from parley.channels.base import ChannelKind, InboundMessage
from parley.customers import service as customers
from parley.customers.models import Customer, CustomerIdentity
from parley.inbox import service as inbox
from parley.workspaces.models import Workspace
from support import rows, seed, until_waiting_for_a_lock

PHONE = "+12025550111"
RECORD = events.Customer(external_id="9001", email="new@example.org", phone=PHONE)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_the_stores_record_racing_a_first_text_joins_the_profile_the_text_made(db):
    workspace_id = seed(db)
    failed: list[Exception] = []

    def store_records_them() -> None:
        try:
            with db.transaction() as session:
                customers.resolve_customer_id(
                    session,
                    workspace_id=workspace_id,
                    contact=customers.contact_from(RECORD),
                    profile=RECORD,
                    consent_source="shopify",
                )
        except Exception as exc:  # noqa: BLE001  (any failure is what is checked)
            failed.append(exc)

    record = threading.Thread(target=store_records_them)
    # Their first text is being stored when the store's record of them arrives: the
    # record waits on the phone the text is claiming, then finds it taken
    with db.transaction() as session:
        workspace = session.get_one(Workspace, workspace_id)
        text = InboundMessage(
            channel=ChannelKind.SMS, provider_message_id="t1", sender=PHONE, text="hi"
        )
        inbox.record_inbound(session, workspace=workspace, inbound=text)
        record.start()
        until_waiting_for_a_lock(db, record)
    record.join(timeout=30)

    assert failed == []
    holders = {
        (identity.kind, identity.value): identity.customer_id
        for identity in rows(db, CustomerIdentity)
        if identity.value in {PHONE, "new@example.org", "9001"}
    }
    [shopper] = rows(db, Customer, Customer.id.in_(set(holders.values())))
    assert holders == {
        ("shopify", "9001"): shopper.id,
        ("email", "new@example.org"): shopper.id,
        ("phone", PHONE): shopper.id,
    }
    assert shopper.merged_into_id is None
    assert (shopper.email, shopper.phone) == ("new@example.org", PHONE)
