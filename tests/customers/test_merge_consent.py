"""A merge joins two consent ledgers: a "no" standing on either profile still stands on
the one they become, whichever ledger holds the later statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley import events
from parley.channels.base import ChannelKind
from parley.customers import merges
from parley.customers import service as customers
from parley.customers.models import ConsentRecord, CustomerMerge
from support import customer_writes, rows, seed

STOPPED = "+12025550161"
"""The number the shopper texted STOP from."""
WORK = "+12025550177"
"""The number the store first knew them by."""


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


def _consent(db, workspace_id: int, customer_id: int) -> dict[tuple[str, str], bool]:
    with db.transaction() as session:
        current = customers.current_consent(
            session, workspace_id=workspace_id, customer_id=customer_id
        )
    return {key: record.is_granted for key, record in current.items()}


def test_a_stop_from_a_number_holds_after_the_store_customer_takes_that_number(db, frozen_clock):
    workspace_id = seed(db)
    subscribed = datetime(2026, 1, 10, tzinfo=UTC)
    # Given a shopper who texts STOP from a number the store does not know yet
    stopped = customer_writes(db, channel=ChannelKind.SMS, sender=STOPPED, text="STOP")
    assert _consent(db, workspace_id, stopped.customer_id)[("sms", "marketing")] is False
    # ...and whose store record, first synced a day later, says they subscribed to SMS
    # marketing in January, on their work number
    frozen_clock.advance(timedelta(days=1))
    profile = events.Customer(
        external_id="9501",
        email="kim@example.org",
        phone=WORK,
        sms_marketing=events.ConsentState.GRANTED,
        sms_marketing_since=subscribed,
        updated_at=frozen_clock.now,
    )
    kept = _record(db, workspace_id, profile)

    # When they change their phone at the store to the number that said STOP
    frozen_clock.advance(timedelta(days=1))
    kept_again = _record(
        db,
        workspace_id,
        profile.model_copy(update={"phone": STOPPED, "updated_at": frozen_clock.now}),
    )

    # Then the two profiles are one, and the STOP (after January's "yes") still refuses
    # SMS marketing to that number
    assert kept_again == kept
    assert [(m.kept_customer_id, m.merged_customer_id) for m in rows(db, CustomerMerge)] == [
        (kept, stopped.customer_id)
    ]
    assert _consent(db, workspace_id, kept)[("sms", "marketing")] is False
    with db.transaction() as session:
        at_number = customers.consent_at_address(
            session, workspace_id=workspace_id, customer_id=kept, channel="sms", address=STOPPED
        )
    assert at_number[("sms", "marketing")].is_granted is False


def test_merging_a_later_yes_into_a_profile_that_unsubscribed_keeps_the_unsubscribe(
    db, frozen_clock
):
    workspace_id = seed(db)
    # Given a store customer who unsubscribed from marketing email
    kept = _record(db, workspace_id, events.Customer(external_id="9502", email="lee@example.org"))
    with db.transaction() as session:
        customer = customers.get_customer(session, workspace_id=workspace_id, customer_id=kept)
        customers.record_refusal(
            session,
            workspace_id=workspace_id,
            customer=customer,
            channel="email",
            purposes=["marketing"],
            source="one-click unsubscribe",
        )
    # ...and, a week later, a guest profile (another address) that signed up
    frozen_clock.advance(timedelta(days=7))
    guest = _record(
        db,
        workspace_id,
        events.Customer(
            email="lee.shop@example.org",
            email_marketing=events.ConsentState.GRANTED,
            email_marketing_since=frozen_clock.now,
        ),
    )

    # When an agent merges the guest into the store customer
    with db.transaction() as session:
        merge = merges.merge_customers(
            session, workspace_id=workspace_id, keep_id=kept, merge_id=guest, reason="same person"
        )
        merge_id = merge.id

    # Then the profile, messaged at the address that unsubscribed, is still refused
    assert _consent(db, workspace_id, kept)[("email", "marketing")] is False

    # And an unmerge gives each profile back the ledger it had
    with db.transaction() as session:
        merges.unmerge_customers(
            session, workspace_id=workspace_id, merge_id=merge_id, reason="two people"
        )
    assert _consent(db, workspace_id, kept)[("email", "marketing")] is False
    assert _consent(db, workspace_id, guest)[("email", "marketing")] is True


def test_a_merge_restates_only_the_refusals_a_later_grant_would_hide(db, frozen_clock):
    workspace_id = seed(db)
    # Given a profile whose SMS "yes" came after the other's "no" to email: nothing to hide
    kept = _record(db, workspace_id, events.Customer(external_id="9503", email="max@example.org"))
    with db.transaction() as session:
        customers.record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=kept,
            channel="email",
            purpose="marketing",
            is_granted=False,
            source="one-click unsubscribe",
        )
    frozen_clock.advance(timedelta(days=1))
    other = _record(db, workspace_id, events.Customer(email="max.other@example.org"))
    with db.transaction() as session:
        customers.record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=other,
            channel="sms",
            purpose="marketing",
            is_granted=True,
            source="checkout",
        )
    before = {r.id for r in rows(db, ConsentRecord)}

    with db.transaction() as session:
        merges.merge_customers(
            session, workspace_id=workspace_id, keep_id=kept, merge_id=other, reason="same"
        )

    assert [r.id for r in rows(db, ConsentRecord) if r.id not in before] == []
    assert _consent(db, workspace_id, kept) == {
        ("email", "marketing"): False,
        ("sms", "marketing"): True,
    }
