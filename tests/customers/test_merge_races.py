"""A merge racing a message to the profile it folds away, on PostgreSQL: the message ends
up where the merged profile's others go. (SQLite has one writer: the second waits for the
first to commit.)"""

from __future__ import annotations

import threading

import pytest

from parley import events
from parley.channels.base import ChannelKind, InboundMessage
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.inbox import service as inbox
from parley.inbox.models import Conversation, ConversationStatus
from parley.messaging.models import Message
from parley.workspaces.models import Workspace
from support import customer_writes, rows, seed, until_waiting_for_a_lock

PHONE = "+12025550164"
EMAIL = "rae@example.org"
RECORD = events.Customer(external_id="9601", email=EMAIL, phone=PHONE)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_text_stored_while_the_store_record_merges_its_profile_lands_in_the_kept_conversation(
    db,
):
    workspace_id = seed(db)
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="hi")
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
    # Rae's second text is being stored when the store's record naming her email and her
    # number arrives, and folds the texter's profile into the emailer's
    with db.transaction() as session:
        workspace = session.get_one(Workspace, workspace_id)
        text = InboundMessage(
            channel=ChannelKind.SMS, provider_message_id="t2", sender=PHONE, text="order?"
        )
        inbox.record_inbound(session, workspace=workspace, inbound=text)
        record.start()
        until_waiting_for_a_lock(db, record)
    record.join(timeout=30)

    assert failed == []
    [texter] = rows(db, Customer, Customer.id == by_sms.customer_id)
    assert texter.merged_into_id == by_email.customer_id
    # Her text is in the conversation agents see, with the rest of hers
    [message] = rows(db, Message, Message.provider_message_id == "t2")
    assert (message.customer_id, message.conversation_id) == (
        by_email.customer_id,
        by_email.conversation_id,
    )
    open_ones = rows(db, Conversation, Conversation.status != ConversationStatus.RESOLVED)
    assert [(c.id, c.customer_id) for c in open_ones] == [
        (by_email.conversation_id, by_email.customer_id)
    ]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_text_waiting_on_a_merge_of_its_profile_lands_in_the_kept_conversation(db):
    workspace_id = seed(db)
    by_email = customer_writes(db, channel=ChannelKind.EMAIL, sender=EMAIL, text="hello")
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=PHONE, text="hi")
    failed: list[Exception] = []

    def she_texts() -> None:
        try:
            with db.transaction() as session:
                workspace = session.get_one(Workspace, workspace_id)
                text = InboundMessage(
                    channel=ChannelKind.SMS, provider_message_id="t3", sender=PHONE, text="?"
                )
                inbox.record_inbound(session, workspace=workspace, inbound=text)
        except Exception as exc:  # noqa: BLE001  (any failure is what is checked)
            failed.append(exc)

    texting = threading.Thread(target=she_texts)
    # The store's record merging her profiles is being stored when her next text arrives
    with db.transaction() as session:
        customers.resolve_customer_id(
            session,
            workspace_id=workspace_id,
            contact=customers.contact_from(RECORD),
            profile=RECORD,
            consent_source="shopify",
        )
        texting.start()
        until_waiting_for_a_lock(db, texting)
    texting.join(timeout=30)

    assert failed == []
    [texter] = rows(db, Customer, Customer.id == by_sms.customer_id)
    assert texter.merged_into_id == by_email.customer_id
    [message] = rows(db, Message, Message.provider_message_id == "t3")
    assert (message.customer_id, message.conversation_id) == (
        by_email.customer_id,
        by_email.conversation_id,
    )
