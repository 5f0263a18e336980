"""An unmerge moves back what its merge moved, or says why it cannot: never a profile
declared separate while its rows stay with another."""

from __future__ import annotations

import pytest

from parley.channels.base import ChannelKind
from parley.customers import merges
from parley.customers.models import Customer, CustomerIdentity, CustomerMerge
from parley.errors import Conflict
from support import customer_writes, rows, seed


def test_undoing_a_merge_whose_kept_profile_was_merged_on_is_refused_until_that_is_undone(db):
    workspace_id = seed(db)
    # Given three profiles of what looked like one shopper, joined one after the other
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender="+12025550162", text="hi")
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender="jo@example.org", text="hi")
    by_chat = customer_writes(db, channel=ChannelKind.WEBCHAT, sender="visitor-77", text="hi")
    with db.transaction() as session:
        first = merges.merge_customers(
            session,
            workspace_id=workspace_id,
            keep_id=by_email.customer_id,
            merge_id=by_sms.customer_id,
            reason="agent: same person",
        ).id
        merges.merge_customers(
            session,
            workspace_id=workspace_id,
            keep_id=by_chat.customer_id,
            merge_id=by_email.customer_id,
            reason="agent: same person",
        )

    # When an agent undoes the first merge, while its kept profile is merged into another
    with (
        db.transaction() as session,
        pytest.raises(Conflict, match=f"customer {by_email.customer_id} is merged into"),
    ):
        merges.unmerge_customers(
            session, workspace_id=workspace_id, merge_id=first, reason="not the same"
        )

    # Then nothing changed: the texter's number is still with the profile holding it all,
    # and the texter's profile is not shown as a separate, empty one
    [phone] = rows(db, CustomerIdentity, CustomerIdentity.value == "+12025550162")
    assert phone.customer_id == by_chat.customer_id
    [texter] = rows(db, Customer, Customer.id == by_sms.customer_id)
    assert texter.merged_into_id == by_email.customer_id
    assert [m.undone_at for m in rows(db, CustomerMerge)] == [None, None]
