"""One conversation per customer across channels, replies on the channel they used, and
consent read from what they write (STOP / START / HELP)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from parley.accounts.models import Membership, User
from parley.channels.base import (
    Attachment,
    ChannelKind,
    PermanentChannelError,
    TransientChannelError,
)
from parley.clock import utc_now
from parley.commerce.models import Fulfillment
from parley.customers import service as customers
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.inbox import service as inbox
from parley.inbox.models import (
    AssistantTurn,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Owner,
)
from parley.inbox.service import set_status
from parley.jobs.models import Job
from parley.live.models import LiveEvent
from parley.messaging.models import Author, Direction, Message, MessageStatus
from parley.messaging.replies import queue_reply, reply_channels
from parley.workspaces.models import Workspace
from support import (
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    every_row,
    inbox_worker,
    instagram_dm,
    post,
    rows,
    seed,
    shopper,
)

ADA = "+447911123456"
GRACE = "+12025550143"


def _customer_id(db, email: str) -> int:
    with db.transaction() as session:
        return session.scalar(select(Customer.id).where(Customer.email == email))


def test_reply_to_a_whatsapp_dispatch_is_answered_in_the_same_conversation_with_tracking(
    db, tmp_path
):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    drain(worker)
    assert len(adapters[ChannelKind.WHATSAPP].sent) == 1

    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order?"
    )
    drain(worker)

    conversation = rows(db, Conversation)
    assert [c.id for c in conversation] == [received.conversation_id]
    timeline = rows(db, Message, Message.conversation_id == received.conversation_id)
    assert [(m.direction, m.author, m.channel) for m in timeline] == [
        (Direction.OUTBOUND, Author.JOURNEY, "email"),
        (Direction.OUTBOUND, Author.JOURNEY, "whatsapp"),
        (Direction.INBOUND, Author.CUSTOMER, "whatsapp"),
        (Direction.OUTBOUND, Author.ASSISTANT, "whatsapp"),
    ]
    reply = timeline[-1]
    (shipment,) = rows(db, Fulfillment)
    assert reply.status == MessageStatus.SENT
    assert reply.recipient == ADA
    assert "automated assistant" in reply.body
    assert "#1501" in reply.body
    assert shipment.tracking_url in reply.body
    assert shipment.tracking_company in reply.body
    sent = adapters[ChannelKind.WHATSAPP].sent[-1]
    assert sent.template is None
    assert sent.text == reply.body
    (turn,) = rows(db, AssistantTurn)
    assert (turn.intent, turn.action) == ("track_order", "answered")
    assert [lookup["lookup"] for lookup in turn.lookups] == ["customer_orders", "fulfillments"]


def test_the_same_customer_on_sms_and_email_has_one_profile_and_one_conversation(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="hello")
    by_email = customer_writes(
        db, channel=ChannelKind.EMAIL, sender="Grace@Example.com", text="hello again"
    )
    drain(worker)
    grace = _customer_id(db, "grace@example.com")
    assert by_sms.customer_id == by_email.customer_id == grace
    assert by_sms.conversation_id == by_email.conversation_id
    (conversation,) = rows(db, Conversation)
    assert conversation.channel == "email"


def test_a_reply_goes_out_on_the_channel_the_customer_last_used(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="hello")
    drain(worker)
    customer_writes(db, channel=ChannelKind.EMAIL, sender="grace@example.com", text="thanks")
    drain(worker)
    assert [m.to for m in adapters[ChannelKind.SMS].sent] == [GRACE]
    assert [m.to for m in adapters[ChannelKind.EMAIL].sent] == ["grace@example.com"]


def test_each_answer_goes_back_on_the_channel_and_to_the_address_it_answers(db, tmp_path):
    """Ada emails, then texts before the assistant has answered: the answer to her email
    is an email to her address, not a text (nor an SMS to her email address)."""
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    by_email = customer_writes(
        db, channel=ChannelKind.EMAIL, sender="ada@example.com", text="hello", subject="Hi"
    )
    by_sms = customer_writes(db, channel=ChannelKind.SMS, sender=ADA, text="thanks")
    assert by_email.conversation_id == by_sms.conversation_id
    drain(worker)
    answers = {
        turn.message_id: rows(db, Message, Message.id == turn.reply_message_id)[0]
        for turn in rows(db, AssistantTurn)
    }
    assert {
        asked: (m.channel, m.recipient, m.subject, m.status) for asked, m in answers.items()
    } == {
        by_email.message_id: (ChannelKind.EMAIL, "ada@example.com", "Re: Hi", MessageStatus.SENT),
        by_sms.message_id: (ChannelKind.SMS, ADA, None, MessageStatus.SENT),
    }
    assert [m.to for m in adapters[ChannelKind.EMAIL].sent] == ["ada@example.com"]
    assert [m.to for m in adapters[ChannelKind.SMS].sent] == [ADA]


def test_a_web_chat_answer_reaches_the_chat_after_the_customer_texts(db, tmp_path):
    workspace_id = seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="v-ada", text="hi there")
    drain(worker)
    with db.transaction() as session:
        inbox.identify_visitor(
            session, workspace_id=workspace_id, visitor_id="v-ada", email="ada@example.com"
        )
    chat = customer_writes(db, channel=ChannelKind.WEBCHAT, sender="v-ada", text="hello")
    customer_writes(db, channel=ChannelKind.SMS, sender=ADA, text="thanks")
    drain(worker)
    (turn,) = rows(db, AssistantTurn, AssistantTurn.message_id == chat.message_id)
    (answer,) = rows(db, Message, Message.id == turn.reply_message_id)
    assert (answer.channel, answer.recipient, answer.status) == (
        ChannelKind.WEBCHAT,
        "v-ada",
        MessageStatus.SENT,
    )
    assert [m.to for m in adapters[ChannelKind.SMS].sent] == [ADA]


def test_a_retried_delivery_of_one_message_is_stored_and_answered_once(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    first = customer_writes(
        db, channel=ChannelKind.SMS, sender=GRACE, text="hello", provider_message_id="SM1"
    )
    again = customer_writes(
        db, channel=ChannelKind.SMS, sender=GRACE, text="hello", provider_message_id="SM1"
    )
    drain(worker)
    assert (first.is_duplicate, again.is_duplicate) == (False, True)
    assert len(rows(db, Message, Message.direction == Direction.INBOUND)) == 1
    assert len(adapters[ChannelKind.SMS].sent) == 1


def test_a_message_the_customer_unsent_on_instagram_no_longer_shows_its_words(db):
    # Given a customer's direct message, with a photo
    seed(db)
    sent = instagram_dm(
        db,
        "mid-1",
        "my address is 12 Elm St",
        attachments=(Attachment(kind="image", url="https://cdn.example/p.jpg"),),
    )
    before = max(event.id for event in rows(db, LiveEvent))

    # When they unsend it, and Instagram says so under the same id
    unsent = instagram_dm(db, "mid-1", "", kind="deleted")

    # Then the message stays in its place, its words and photo gone, and screens are told
    assert unsent.message_id == sent.message_id
    [message] = rows(db, Message, Message.direction == Direction.INBOUND)
    assert (message.body, message.attachments, message.headers) == ("", None, {"kind": "deleted"})
    [event] = rows(db, LiveEvent, LiveEvent.id > before)
    assert (event.kind, event.data) == (
        "message",
        {"message_id": sent.message_id, "change": "deleted"},
    )


def test_a_message_the_customer_edited_on_instagram_shows_its_new_words(db):
    seed(db)
    sent = instagram_dm(db, "mid-1", "send it to 12 Elm St")
    before = max(event.id for event in rows(db, LiveEvent))

    edited = instagram_dm(db, "mid-1", "send it to 14 Elm St", kind="edited")

    assert (edited.message_id, edited.assistant_scheduled) == (sent.message_id, False)
    [message] = rows(db, Message, Message.direction == Direction.INBOUND)
    assert (message.body, message.headers) == ("send it to 14 Elm St", {"edited": True})
    [event] = rows(db, LiveEvent, LiveEvent.id > before)
    assert (event.kind, event.data) == (
        "message",
        {"message_id": sent.message_id, "change": "edited"},
    )


def test_an_edit_of_a_message_parley_never_received_records_nothing(db):
    seed(db)
    before = {name: len(found) for name, found in every_row(db).items()}

    edited = instagram_dm(db, "mid-404", "the store's own words, edited", kind="edited")

    assert edited.is_duplicate is True
    assert {name: len(found) for name, found in every_row(db).items()} == before


def test_an_unknown_sender_gets_a_new_profile_holding_that_channel_identity(db, tmp_path):
    seed(db)
    received = customer_writes(
        db, channel=ChannelKind.INSTAGRAM, sender="IGSID-77", text="hi", sender_name="mira.k"
    )
    (identity,) = rows(db, CustomerIdentity, CustomerIdentity.customer_id == received.customer_id)
    assert (identity.kind, identity.value) == ("instagram", "IGSID-77")
    assert identity.last_inbound_at is not None
    (customer,) = rows(db, Customer, Customer.id == received.customer_id)
    assert customer.first_name == "mira.k"


def test_a_message_after_resolution_opens_a_new_conversation(db, tmp_path):
    seed(db)
    first = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="hello")
    with db.transaction() as session:
        conversation = set_status(
            session,
            workspace_id=rows(db, Conversation)[0].workspace_id,
            conversation_id=first.conversation_id,
            status=ConversationStatus.RESOLVED,
            actor="agent:1",
        )
        assert conversation.resolved_at is not None
    second = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="me again")
    assert second.conversation_id != first.conversation_id
    statuses = {c.id: c.status for c in rows(db, Conversation)}
    assert statuses == {first.conversation_id: "resolved", second.conversation_id: "open"}


def test_stop_on_sms_opts_out_at_once_and_the_next_journey_sms_is_skipped(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    placed, dispatched, out_for_delivery, _ = deliveries("Grace", number=1601)
    post(db, placed)
    post(db, dispatched)
    drain(worker)
    assert [m.to for m in adapters[ChannelKind.SMS].sent] == [GRACE]

    received = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="  Stop. ")
    assert received.keyword == "stop"
    assert received.assistant_scheduled is False
    drain(worker)
    post(db, out_for_delivery)
    drain(worker)

    sms = adapters[ChannelKind.SMS].sent
    assert len(sms) == 2
    assert "unsubscribed" in sms[1].text
    skipped = rows(db, Message, Message.channel == "sms", Message.status == MessageStatus.SKIPPED)
    assert [m.status_reason for m in skipped] == ["opted out: not sent on sms"]
    assert skipped[0].journey_run_id is not None
    consent = rows(db, ConsentRecord, ConsentRecord.channel == "sms")
    assert [(c.purpose, c.is_granted, c.source) for c in consent[-2:]] == [
        ("transactional", False, "sms reply 'Stop.'"),
        ("marketing", False, "sms reply 'Stop.'"),
    ]


def test_a_second_stop_sends_no_second_confirmation_and_start_resubscribes(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    for text in ("STOP", "stop", "START"):
        customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text=text)
        drain(worker)
    texts = [m.text for m in adapters[ChannelKind.SMS].sent]
    assert len(texts) == 2
    assert "unsubscribed" in texts[0]
    assert "subscribed again" in texts[1]
    consent = rows(db, ConsentRecord, ConsentRecord.channel == "sms")
    assert [(c.purpose, c.is_granted) for c in consent][-1] == ("transactional", True)
    # START restores conversational messages only: Grace never granted SMS marketing.
    assert [(c.purpose, c.is_granted) for c in consent if c.purpose == "marketing"] == [
        ("marketing", False)
    ]


def _store_records_sms_marketing(db, *, granted: bool) -> None:
    """The store's record of Grace's SMS marketing consent, as its webhook applies it."""
    with db.transaction() as session:
        customers.record_consent(
            session,
            workspace_id=1,
            customer_id=session.scalar(select(Customer.id).where(Customer.phone == GRACE)),
            channel="sms",
            purpose="marketing",
            is_granted=granted,
            source="shopify:customer.updated",
        )


def _sms_consent(db) -> dict[str, bool]:
    return {
        c.purpose: c.is_granted for c in rows(db, ConsentRecord, ConsentRecord.channel == "sms")
    }


def _ledger(db) -> list[tuple]:
    return [(c.id, c.channel, c.purpose, c.is_granted) for c in rows(db, ConsentRecord)]


def test_a_yes_from_a_customer_who_only_declined_marketing_answers_the_assistant(db, tmp_path):
    # Given Grace, who gets her order updates by SMS, and unsubscribed from SMS marketing
    seed(db)
    _store_records_sms_marketing(db, granted=True)
    _store_records_sms_marketing(db, granted=False)
    ledger = _ledger(db)

    # When she answers a question with "Yes"
    received = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="Yes")

    # Then it is no START: her consent is as it was, and the assistant answers her
    assert (received.keyword, received.assistant_scheduled) == (None, True)
    assert _ledger(db) == ledger
    assert _sms_consent(db) == {"transactional": True, "marketing": False}


def test_a_yes_from_a_customer_who_texted_stop_is_a_start(db, tmp_path):
    seed(db)
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="STOP")

    received = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="Yes")

    assert (received.keyword, received.assistant_scheduled) == ("start", False)
    assert _sms_consent(db) == {"transactional": True, "marketing": False}


@pytest.mark.parametrize(
    ("marketing_before_the_stop", "restored"),
    [
        pytest.param([True], True, id="granted_until_the_stop_case"),
        pytest.param([True, False], False, id="declined_before_the_stop_case"),
    ],
)
def test_start_restores_the_marketing_the_stop_refused_and_no_other(
    db, tmp_path, marketing_before_the_stop, restored
):
    # Given Grace's SMS marketing consent as the store recorded it, then her STOP
    seed(db)
    for granted in marketing_before_the_stop:
        _store_records_sms_marketing(db, granted=granted)
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="STOP")
    assert _sms_consent(db) == {"transactional": False, "marketing": False}

    # When she texts START
    received = customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="START")

    # Then her order updates come back, and marketing only if it was the STOP that ended it
    assert received.keyword == "start"
    assert _sms_consent(db) == {"transactional": True, "marketing": restored}


def test_help_answers_with_the_store_name_and_how_to_stop(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="help")
    drain(worker)
    (answer,) = adapters[ChannelKind.SMS].sent
    assert "Juniper & Pine" in answer.text
    assert "Reply STOP" in answer.text
    assert "Msg&data rates may apply" in answer.text
    assert rows(db, AssistantTurn) == []


def test_a_plain_language_revocation_on_whatsapp_opts_out(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA, text="please stop messaging me on here"
    )
    drain(worker)
    assert received.keyword == "stop"
    revoked = rows(
        db, ConsentRecord, ConsentRecord.channel == "whatsapp", ConsentRecord.is_granted.is_(False)
    )
    assert {c.purpose for c in revoked} == {"transactional", "marketing"}
    assert len(adapters[ChannelKind.WHATSAPP].sent) == 1


def test_an_agent_reply_after_the_whatsapp_window_is_refused_with_the_reason(
    db, tmp_path, frozen_clock
):
    seed(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    received = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="agent please")
    drain(worker)
    frozen_clock.advance(timedelta(hours=24, seconds=1))

    with db.transaction() as session:
        conversation = session.get(Conversation, received.conversation_id)
        assert conversation.owner == Owner.HUMAN
        workspace = session.get(Workspace, conversation.workspace_id)
        late = queue_reply(
            session,
            workspace=workspace,
            conversation=conversation,
            text="Sorry for the wait!",
            author=Author.AGENT,
            idempotency_key="agent:late",
        )
        assert late.status == MessageStatus.SKIPPED
        assert "24-hour window" in late.status_reason
    drain(worker)
    assert [m.text for m in adapters[ChannelKind.WHATSAPP].sent if "wait" in m.text] == []


def test_shopper_lookup_helper_matches_the_demo_seed():
    assert shopper("Ada").phone == ADA
    assert shopper("Grace").phone == GRACE


def _comment(db, comment_id: str, *, sent_at=None, event: str = "add"):
    return customer_writes(
        db,
        channel=ChannelKind.INSTAGRAM,
        sender="IGSID-5",
        text="Love this! Price?",
        kind="comment",
        comment_id=comment_id,
        post_id="media-1",
        provider_message_id=f"comment-{comment_id}-{event}",
        sent_at=sent_at,
    )


def _enable_comment_replies(db) -> None:

    with db.transaction() as session:
        workspace = session.scalar(select(Workspace))
        workspace.settings = {
            **workspace.settings,
            "instagram_comment_reply": "Thanks! We've sent you the details in a DM.",
        }


def test_an_instagram_comment_gets_one_private_reply_and_no_assistant_dm(db, tmp_path):
    seed(db)
    _enable_comment_replies(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    _comment(db, "c-1")
    _comment(db, "c-1", event="edited")
    drain(worker)
    sent = adapters[ChannelKind.INSTAGRAM].sent
    assert [(m.to, m.text, m.is_human_agent) for m in sent] == [
        ("comment:c-1", "Thanks! We've sent you the details in a DM.", False)
    ]
    assert rows(db, AssistantTurn) == []


def test_a_comment_older_than_seven_days_gets_no_private_reply(db, tmp_path, frozen_clock):
    seed(db)
    _enable_comment_replies(db)
    adapters = all_adapters()
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    _comment(db, "c-old", sent_at=frozen_clock.now - timedelta(days=7, seconds=1))
    drain(worker)
    assert adapters[ChannelKind.INSTAGRAM].sent == []
    (skipped,) = rows(db, Message, Message.message_type == "comment_reply")
    assert skipped.status == "skipped"
    assert "more than 7 days" in skipped.status_reason


def test_a_comment_opens_no_direct_message_window(db, tmp_path, frozen_clock):
    # Given a shopper who commented on a post a minute ago
    seed(db)
    commented = _comment(db, "c-1")
    frozen_clock.advance(timedelta(minutes=1))

    # When an agent looks at the Instagram conversation's channels
    def instagram(conversation_id: int):
        with db.transaction() as session:
            conversation = session.get_one(Conversation, conversation_id)
            workspace = session.get_one(Workspace, conversation.workspace_id)
            return next(
                option
                for option in reply_channels(
                    session, workspace=workspace, conversation=conversation, now=utc_now()
                )
                if option.channel is ChannelKind.INSTAGRAM
            )

    # Then a direct message is refused: Instagram answers a comment only with its one
    # private reply, and opens its window when the shopper writes a message
    assert instagram(commented.conversation_id).refusal == (
        "outside Instagram's messaging window: the customer has not written a direct "
        "message in the last 7 days (a comment on a post opens no window)"
    )
    customer_writes(db, channel=ChannelKind.INSTAGRAM, sender="IGSID-5", text="Price?")
    assert instagram(commented.conversation_id).refusal is None


def test_assignment_and_hand_back_are_recorded_on_the_timeline(db, tmp_path):

    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    received = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="agent pls")
    drain(worker)
    workspace_id = rows(db, Conversation)[0].workspace_id
    with db.transaction() as session:
        # Only a member can be assigned: make user 7 one.
        session.add(
            User(
                id=7,
                email="sam@example.com",
                name="Sam",
                password_hash="-",
                password_changed_at=utc_now(),
                created_at=utc_now(),
            )
        )
        session.flush()
        session.add(
            Membership(workspace_id=workspace_id, user_id=7, role="agent", created_at=utc_now())
        )
        session.flush()
        inbox.assign(
            session,
            workspace_id=workspace_id,
            conversation_id=received.conversation_id,
            assignee_id=7,
            actor="agent:1",
        )
        inbox.hand_back(
            session,
            workspace_id=workspace_id,
            conversation_id=received.conversation_id,
            actor="agent:7",
        )
    events = rows(db, ConversationEvent)
    assert [(e.kind, e.actor) for e in events] == [
        ("opened", "customer"),
        ("handed_off", "assistant"),
        ("assigned", "agent:1"),
        ("handed_back", "agent:7"),
    ]
    assert events[2].detail == {"from": None, "to": 7}
    (conversation,) = rows(db, Conversation)
    assert (conversation.owner, conversation.assignee_id) == (Owner.ASSISTANT, 7)


def test_a_reply_survives_a_provider_outage_and_is_sent_once(db, tmp_path):
    seed(db)
    adapters = all_adapters()
    adapters[ChannelKind.SMS].script = [TransientChannelError("Twilio answered 503")]
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="hello")
    drain(worker)
    (reply,) = rows(db, Message, Message.author == Author.ASSISTANT)
    assert (reply.status, reply.attempts) == (MessageStatus.QUEUED, 1)
    assert adapters[ChannelKind.SMS].sent == []

    with db.transaction() as session:
        session.execute(update(Job).values(due_at=utc_now()))
    drain(worker)
    (reply,) = rows(db, Message, Message.author == Author.ASSISTANT)
    assert (reply.status, reply.attempts) == (MessageStatus.SENT, 2)
    assert len(adapters[ChannelKind.SMS].sent) == 1

    adapters[ChannelKind.SMS].script = [PermanentChannelError("Twilio: number blocked")]
    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="thanks")
    drain(worker)
    failed = rows(db, Message, Message.author == Author.ASSISTANT)[-1]
    assert (failed.status, failed.status_reason) == ("failed", "Twilio: number blocked")
    assert len(adapters[ChannelKind.SMS].sent) == 1
