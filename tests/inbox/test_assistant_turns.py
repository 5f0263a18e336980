"""The assistant's conduct in a conversation: it discloses itself, answers only from
lookups, stays silent from hand-off to hand-back, and hands off when it should."""

from __future__ import annotations

import itertools
import re
import threading
from datetime import timedelta
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from parley.accounts.models import User
from parley.assistant.intents import Intent
from parley.assistant.service import SessionLookups
from parley.assistant.skills import LookupFailed
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.commerce.models import Fulfillment
from parley.demo.seed import DEMO_AGENT_EMAIL, DemoChannels, seed_demo, seed_demo_team
from parley.inbox import service as inbox
from parley.inbox.models import AssistantTurn, Conversation, Owner
from parley.messaging import replies
from parley.messaging.models import Author, Message
from parley.settings import Settings
from parley.workspaces.models import Workspace
from support import (
    RuleClassifier,
    all_adapters,
    count,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    rows,
    seed,
)

ADA = "+447911123456"
# Anything that looks like an order number, a date or an amount.
FACT = re.compile(
    r"\d{3,}|\b\d{1,2} (January|February|March|April|May|June|July|August|September|October|"
    r"November|December)\b|\d+[.,]\d{2}"
)


class FailingLookups(SessionLookups):
    """The store's data cannot be read: every order lookup raises."""

    def customer_orders(self):  # type: ignore[no-untyped-def]
        raise LookupFailed("orders database timed out")

    def order_by_number(self, number):  # type: ignore[no-untyped-def]
        raise RuntimeError("connection reset")


def _failing(session, workspace, customer):  # type: ignore[no-untyped-def]
    return FailingLookups(session, workspace=workspace, customer=customer)


def _assistant_replies(db) -> list[Message]:
    return rows(db, Message, Message.author == Author.ASSISTANT)


def test_a_failed_lookup_is_said_and_handed_off_without_any_order_fact(db, tmp_path):
    seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), lookups=_failing, tmp_model_dir=tmp_path)
    drain(worker)
    for text in ("where is my order #1501?", "track order 1501 please"):
        customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text=text)
    drain(worker)
    (reply,) = _assistant_replies(db)
    assert FACT.search(reply.body) is None, reply.body
    assert "can't look that up" in reply.body
    (conversation,) = rows(db, Conversation)
    assert conversation.owner == Owner.HUMAN
    assert "store lookup failed" in conversation.handoff_reason
    (turn,) = rows(db, AssistantTurn)
    assert turn.action == "handed_off"
    assert turn.lookups[-1]["ok"] is False


def test_order_details_wait_for_proof_of_identity(db, tmp_path):
    seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    stranger = "+447700900123"
    customer_writes(db, channel=ChannelKind.SMS, sender=stranger, text="where is my order 1501")
    drain(worker)
    (ask,) = _assistant_replies(db)
    assert "email address or phone number" in ask.body
    assert "1501" not in ask.body
    customer_writes(db, channel=ChannelKind.SMS, sender=stranger, text="it's ada@example.com")
    customer_writes(db, channel=ChannelKind.SMS, sender=stranger, text="where is my order 1501")
    drain(worker)
    answer = _assistant_replies(db)[-1]
    assert "#1501" in answer.body
    assert "Track it here" in answer.body


class _ReadsEmailsAsAccountEdits(RuleClassifier):
    """The shipped model reads "my email is ada@example.com" as an account edit (0.98)."""

    RULES: ClassVar[list[tuple[str, Intent]]] = [
        ("my email is", Intent.EDIT_ACCOUNT),
        *RuleClassifier.RULES,
    ]


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("my email is ada@example.com", id="read_as_account_edit_case"),
        pytest.param("ada@example.com", id="not_understood_case"),
    ],
)
def test_a_customer_sending_the_email_asked_for_gets_the_answer_to_her_question(
    db, tmp_path, given
):
    """Asked for the order's email to confirm her, Ada sends it: the assistant answers the
    question it asked about, not an account question, and does not say it is lost."""
    seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(
        db, all_adapters(), classifier=_ReadsEmailsAsAccountEdits(), tmp_model_dir=tmp_path
    )
    drain(worker)
    stranger = "+447700900123"
    customer_writes(db, channel=ChannelKind.SMS, sender=stranger, text="where is my order 1501")
    drain(worker)
    customer_writes(db, channel=ChannelKind.SMS, sender=stranger, text=given)
    drain(worker)

    asked, answered = rows(db, AssistantTurn)
    assert (asked.action, answered.action) == ("clarified", "answered")
    assert answered.intent == "track_order"
    (shipment,) = rows(db, Fulfillment)
    reply = _assistant_replies(db)[-1]
    assert reply.body.startswith("Order #1501 ")
    assert f"Track it here: {shipment.tracking_url}" in reply.body


def test_an_email_sent_unasked_is_not_taken_for_an_order_question(db, tmp_path):
    """Only an answer to the assistant's own question about an order goes on with it."""
    seed(db)
    worker = inbox_worker(
        db, all_adapters(), classifier=_ReadsEmailsAsAccountEdits(), tmp_model_dir=tmp_path
    )
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="hello")
    drain(worker)
    customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA, text="my email is ada@example.com"
    )
    drain(worker)
    assert [t.intent for t in rows(db, AssistantTurn)] == ["greeting", "edit_account"]


def test_an_order_number_from_weeks_ago_does_not_answer_todays_question(db, tmp_path, frozen_clock):
    """Ada asked after order 1501 in March; in April, with 1502 on its way, she asks
    "where is my order?": she is told about 1502, her latest, not 1501 again."""
    seed(db)
    for delivery in deliveries("Ada", number=1501):
        post(db, delivery)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order 1501")
    drain(worker)
    frozen_clock.advance(timedelta(days=30))
    placed, dispatched, *_ = deliveries("Ada", order_id=502, number=1502)
    post(db, placed)
    post(db, dispatched)
    drain(worker)
    asked = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order?")
    drain(worker)

    (turn,) = rows(db, AssistantTurn, AssistantTurn.message_id == asked.message_id)
    (reply,) = rows(db, Message, Message.id == turn.reply_message_id)
    assert reply.body.startswith("Order #1502 ")
    assert "1501" not in reply.body
    assert [lookup["lookup"] for lookup in turn.lookups] == ["customer_orders", "fulfillments"]


def test_only_the_first_assistant_reply_in_a_conversation_says_it_is_automated(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    for text in ("hello", "thanks"):
        customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text=text)
        drain(worker)
    first, second = _assistant_replies(db)
    assert first.body.startswith("Juniper & Pine automated assistant here.")
    assert "automated" not in second.body


def test_two_messages_it_cannot_place_are_clarified_once_then_handed_off(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    for text in ("qwzx blorp", "zzzz frobnicate"):
        customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text=text)
        drain(worker)
    turns = rows(db, AssistantTurn)
    assert [t.action for t in turns] == ["clarified", "handed_off"]
    (conversation,) = rows(db, Conversation)
    assert conversation.owner == Owner.HUMAN
    assert conversation.handoff_reason.startswith("the assistant could not understand two")


def test_a_complaint_gets_an_apology_and_a_person(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA, text="this is terrible, the seam split"
    )
    drain(worker)
    (reply,) = _assistant_replies(db)
    assert "sorry" in reply.body.lower()
    (conversation,) = rows(db, Conversation)
    assert (conversation.owner, conversation.handoff_reason.split(".")[0]) == (
        Owner.HUMAN,
        "complaint",
    )


def test_a_sensitive_topic_is_handed_off_whatever_the_intent(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender=ADA,
        text="where is my order, or I file a chargeback",
    )
    drain(worker)
    (turn,) = rows(db, AssistantTurn)
    assert (turn.intent, turn.action) == ("track_order", "handed_off")
    assert turn.reason.startswith("sensitive topic")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("where is my order? this is a fraudulent charge", id="fraudulent_case"),
        pytest.param("where is my order? I think I've been scammed", id="scammed_case"),
        pytest.param("where is my order, my lawyers will hear of this", id="lawyers_case"),
        pytest.param("where is my order? I'll have you sued", id="sued_case"),
        pytest.param("where is my order? I filed chargebacks", id="chargebacks_case"),
        pytest.param("where is my order? voy a llamar a mi abogado", id="spanish_lawyer_case"),
        pytest.param("where is my order? esto es una estafa", id="spanish_scam_case"),
        pytest.param("where is my order? c'est une arnaque, j'appelle la police", id="french_case"),
        pytest.param("where is my order? vou chamar meu advogado", id="portuguese_case"),
    ],
)
def test_a_sensitive_topic_in_any_form_or_claimed_language_is_handed_off(db, tmp_path, text):
    """A6: inflected words ("fraudulent", "scammed") and the languages the model reads
    (code-mixed Spanish, French, Portuguese) are sensitive too: no order fact is given."""
    seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text=text)
    drain(worker)
    (turn,) = rows(db, AssistantTurn)
    assert (turn.intent, turn.action, turn.lookups) == ("track_order", "handed_off", [])
    assert turn.reason == "sensitive topic: a person should answer"
    (reply,) = _assistant_replies(db)
    assert FACT.search(reply.body) is None, reply.body
    (conversation,) = rows(db, Conversation)
    assert conversation.owner == Owner.HUMAN


def test_an_auto_responder_answering_slowly_is_stopped_after_three_same_messages(
    db, tmp_path, frozen_clock
):
    """A8: the other side is a bot that thanks for every message, each with a new ticket
    number, ten minutes later: too slow for the hourly cap, it would run forever. The
    third message that says the same hands off, and the assistant then stays silent."""
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    for ticket in range(4500, 4520):
        customer_writes(
            db,
            channel=ChannelKind.EMAIL,
            sender="helpdesk@other.example",
            text=f"Thanks for your message, ticket {ticket} is open. We'll reply shortly.",
        )
        drain(worker)
        frozen_clock.advance(timedelta(minutes=10))

    turns = rows(db, AssistantTurn)
    assert [t.action for t in turns] == ["answered", "answered", "handed_off"]
    assert turns[-1].reason == "the same message three times in a row (an auto-responder?)"
    assert count(db, Message, Message.author == Author.ASSISTANT) == 3
    (conversation,) = rows(db, Conversation)
    assert conversation.owner == Owner.HUMAN


def test_a_customer_asking_different_things_is_not_taken_for_a_loop(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    for text in ("hello", "thanks", "hello", "thanks", "hello"):
        customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text=text)
        drain(worker)
    assert [t.action for t in rows(db, AssistantTurn)] == ["answered"] * 5


def test_policy_answers_quote_the_store_and_uncovered_questions_go_to_a_person(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA, text="how long does delivery take"
    )
    drain(worker)
    (answer,) = _assistant_replies(db)
    assert 'From our shipping: "' in answer.body
    assert "Standard delivery takes 2-4 working days in the UK" in answer.body
    with db.transaction() as session:
        workspace = session.scalar(select(Workspace))
        workspace.settings = {**workspace.settings, "knowledge": []}
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="how long for delivery?")
    drain(worker)
    turn = rows(db, AssistantTurn)[-1]
    assert (turn.action, turn.reason) == (
        "handed_off",
        "no store policy covers this (delivery_period)",
    )


_slugs = itertools.count(1)


class HandOffMachine(RuleBasedStateMachine):
    """Customers write, workers run, agents hand back; the assistant must never speak
    between a hand-off and the hand-back that follows it."""

    db = None
    model_dir = None

    def __init__(self) -> None:
        super().__init__()
        number = next(_slugs)
        self.slug = f"handoff-{number}"
        with self.db.transaction() as session:
            self.workspace_id = seed_demo(
                session,
                shopify_secret="s",
                api_key=f"key-{self.slug}",
                slug=self.slug,
                channels=DemoChannels(
                    **{
                        **vars(DemoChannels.from_settings(Settings())),
                        # Each store's own accounts, as the providers name them.
                        "whatsapp_phone_number_id": f"9100{number}",
                        "twilio_number": f"+1202555{number:04d}",
                        "instagram_account_id": f"9200{number}",
                        "inbound_email": f"{self.slug}@example.test",
                    }
                ),
            ).id
        self.worker = inbox_worker(self.db, all_adapters(), tmp_model_dir=self.model_dir)
        # The highest turn id at each hand-back: a turn after a hand-off must come after one.
        self.hand_backs: list[int] = []

    def _turns(self, session) -> list[AssistantTurn]:  # type: ignore[no-untyped-def]
        return list(
            session.scalars(
                select(AssistantTurn)
                .where(AssistantTurn.workspace_id == self.workspace_id)
                .order_by(AssistantTurn.id)
            )
        )

    @rule(
        text=st.sampled_from(
            ["where is my order?", "I want a human", "qwzx blorp", "thanks", "terrible!!", "hello"]
        )
    )
    def customer_says(self, text: str) -> None:
        customer_writes(
            self.db, channel=ChannelKind.WHATSAPP, sender=ADA, text=text, slug=self.slug
        )

    @rule()
    def worker_runs(self) -> None:
        drain(self.worker)

    @rule()
    def agent_hands_back(self) -> None:
        with self.db.transaction() as session:
            conversation = session.scalar(
                select(Conversation).where(
                    Conversation.workspace_id == self.workspace_id,
                    Conversation.owner == Owner.HUMAN,
                )
            )
            if conversation is None:
                return
            inbox.hand_back(
                session,
                workspace_id=self.workspace_id,
                conversation_id=conversation.id,
                actor="agent:1",
            )
            self.hand_backs.append(max((t.id for t in self._turns(session)), default=0))

    @invariant()
    def silent_between_hand_off_and_hand_back(self) -> None:
        with self.db.transaction() as session:
            turns = self._turns(session)
            replies = session.scalar(
                select(func.count(Message.id)).where(
                    Message.workspace_id == self.workspace_id, Message.author == Author.ASSISTANT
                )
            )
        assert replies == len(turns)
        for handed_off, following in itertools.pairwise(turns):
            if handed_off.action != "handed_off":
                continue
            assert any(handed_off.id <= b < following.id for b in self.hand_backs), (
                f"turn {following.id} spoke after hand-off {handed_off.id} with no hand-back"
            )


def test_no_assistant_message_between_hand_off_and_hand_back(db, tmp_path):
    HandOffMachine.db = db
    HandOffMachine.model_dir = tmp_path
    run_state_machine_as_test(
        HandOffMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_a_web_chat_visitor_claiming_an_email_sees_no_order_without_its_number(db, tmp_path):
    workspace_id = seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="visitor-1", text="hello")
    with db.transaction() as session:
        inbox.identify_visitor(
            session, workspace_id=workspace_id, visitor_id="visitor-1", email="ada@example.com"
        )
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="visitor-1", text="where is my order")
    drain(worker)
    asked = _assistant_replies(db)[-1]
    assert "order number and the email" in asked.body
    assert FACT.search(asked.body) is None
    customer_writes(
        db,
        channel=ChannelKind.WEBCHAT,
        sender="visitor-1",
        text="where is my order 1501, ada@example.com",
    )
    drain(worker)
    assert "Track it here" in _assistant_replies(db)[-1].body


def _visitor_gives_adas_email(db, workspace_id: int, visitor_id: str) -> None:
    """A web-chat visitor types Ada's email into the widget: their profile joins hers."""
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender=visitor_id, text="hello")
    with db.transaction() as session:
        inbox.identify_visitor(
            session, workspace_id=workspace_id, visitor_id=visitor_id, email="ada@example.com"
        )


def test_a_web_chat_visitor_is_not_shown_an_order_by_a_number_someone_else_gave(db, tmp_path):
    """A5: the order number Ada gave on WhatsApp does not confirm a visitor who only
    knows her email: they are asked for the number, and no order fact reaches them."""
    workspace_id = seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order 1501")
    drain(worker)
    _visitor_gives_adas_email(db, workspace_id, "stranger")
    drain(worker)
    asked = customer_writes(
        db,
        channel=ChannelKind.WEBCHAT,
        sender="stranger",
        text="where is my order? my email is ada@example.com",
    )
    drain(worker)

    (turn,) = rows(db, AssistantTurn, AssistantTurn.message_id == asked.message_id)
    assert (turn.action, turn.lookups) == ("clarified", [])
    (reply,) = rows(db, Message, Message.id == turn.reply_message_id)
    assert (reply.channel, reply.recipient, reply.body) == (
        ChannelKind.WEBCHAT,
        "stranger",
        "Could you send your order number and the email address you used for it?",
    )


def test_a_customer_is_not_shown_an_order_by_a_number_a_web_chat_visitor_gave(db, tmp_path):
    """A visitor who typed Ada's email writes Grace's order number and email in Ada's
    conversation; Ada, on WhatsApp, asks after "my order": she is answered about her own
    order, never Grace's, whose number came from someone web chat does not prove."""
    workspace_id = seed(db)
    for delivery in (
        deliveries("Ada", number=1501)[:2] + deliveries("Grace", order_id=502, number=1502)[:2]
    ):
        post(db, delivery)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    _visitor_gives_adas_email(db, workspace_id, "stranger")
    customer_writes(
        db, channel=ChannelKind.WEBCHAT, sender="stranger", text="order 1502 grace@example.com"
    )
    drain(worker)
    asked = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order?")
    drain(worker)

    (turn,) = rows(db, AssistantTurn, AssistantTurn.message_id == asked.message_id)
    (reply,) = rows(db, Message, Message.id == turn.reply_message_id)
    assert reply.recipient == ADA
    assert "#1501" in reply.body
    assert "1502" not in reply.body
    assert [lookup["lookup"] for lookup in turn.lookups] == ["customer_orders", "fulfillments"]


def test_a_web_chat_visitor_may_give_the_number_and_the_email_in_two_messages(db, tmp_path):
    workspace_id = seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    drain(worker)
    _visitor_gives_adas_email(db, workspace_id, "visitor-ada")
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="visitor-ada", text="order 1501")
    drain(worker)
    customer_writes(
        db,
        channel=ChannelKind.WEBCHAT,
        sender="visitor-ada",
        text="where is my order? ada@example.com",
    )
    drain(worker)
    answer = _assistant_replies(db)[-1]
    (shipment,) = rows(db, Fulfillment)
    assert answer.recipient == "visitor-ada"
    assert f"Track it here: {shipment.tracking_url}" in answer.body


def test_a_web_chat_visitor_is_greeted_without_the_name_of_the_email_they_gave(db, tmp_path):
    """A5: typing an email into the widget proves nothing, so the greeting names nobody."""
    workspace_id = seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    _visitor_gives_adas_email(db, workspace_id, "stranger")
    customer_writes(db, channel=ChannelKind.WEBCHAT, sender="stranger", text="hello")
    drain(worker)
    greetings = [m.body for m in _assistant_replies(db) if m.recipient == "stranger"]
    assert greetings[-1] == (
        "Hi! I can help with your order status, returns, refunds, sizes and products. "
        "What can I do for you?"
    )


def test_a_customer_writing_from_her_own_number_is_greeted_by_name(db, tmp_path):
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="hello")
    drain(worker)
    (greeting,) = _assistant_replies(db)
    assert greeting.body == (
        "Juniper & Pine automated assistant here. Hi Ada! I can help with your order "
        "status, returns, refunds, sizes and products. What can I do for you?"
    )


# --- an agent taking over while the assistant is at work (PostgreSQL: SQLite runs one
# transaction at a time, so the two never interleave) ------------------------------------


def _agent_of(db, workspace_id: int) -> int:
    with db.transaction() as session:
        seed_demo_team(
            session,
            workspace=session.get_one(Workspace, workspace_id),
            admin_email="admin@x.test",
            password="pw-12345678",
            now=utc_now(),
        )
        return session.scalar(select(User.id).where(User.email == DEMO_AGENT_EMAIL))


def _agent_replies(db, workspace_id: int, conversation_id: int, agent_id: int) -> None:
    """Sam answers from the composer, in a transaction of his own (the web process)."""
    with db.transaction() as session:
        inbox.send_reply(
            session,
            workspace_id=workspace_id,
            conversation_id=conversation_id,
            user_id=agent_id,
            agent_name="Sam Agent",
            channel=ChannelKind.WHATSAPP,
            text="Hi Ada, Sam here, I'll look after you.",
            template_name=None,
            draft_key="d1",
        )


def test_an_agent_taking_over_while_the_assistant_thinks_silences_it(db, tmp_path):
    """A6: the agent's reply commits after the assistant read the conversation as its own
    and before it wrote: it writes nothing, not even a turn."""
    if not db.is_postgres:
        pytest.skip("SQLite runs one transaction at a time (BEGIN IMMEDIATE): no interleaving")
    workspace_id = seed(db)
    agent_id = _agent_of(db, workspace_id)
    received = customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="hello")
    taken_over: list[bool] = []

    def lookups(session, workspace, customer):  # type: ignore[no-untyped-def]
        if not taken_over:  # the assistant has read the conversation's owner by now
            taken_over.append(True)
            _agent_replies(db, workspace_id, received.conversation_id, agent_id)
        return SessionLookups(session, workspace=workspace, customer=customer)

    drain(inbox_worker(db, all_adapters(), lookups=lookups, tmp_model_dir=tmp_path))

    (conversation,) = rows(db, Conversation)
    assert (conversation.owner, conversation.handoff_reason) == (Owner.HUMAN, "Sam Agent replied")
    assert [m.author for m in rows(db, Message, Message.direction == "outbound")] == ["agent"]
    assert rows(db, AssistantTurn) == []


class _Verbatim:
    """A rephraser that keeps the draft: the answer goes through the rewording path."""

    async def rephrase(self, draft: str, facts: dict[str, object]) -> str:
        return draft


@pytest.mark.parametrize("rephraser", [None, _Verbatim()], ids=["drafted_case", "reworded_case"])
def test_an_agent_reply_racing_the_assistants_answer_waits_until_it_is_written(
    db, tmp_path, monkeypatch, rephraser
):
    """A6: the agent replies just as the assistant writes its answer. The assistant holds
    the conversation while it writes, so the hand-off commits after its answer, never
    before it: no assistant message follows a hand-off."""
    if not db.is_postgres:
        pytest.skip("SQLite runs one transaction at a time (BEGIN IMMEDIATE): no interleaving")
    workspace_id = seed(db)
    agent_id = _agent_of(db, workspace_id)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    worker.tasks["assistant.respond"].rephraser = rephraser
    drain(worker)
    received = customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order?"
    )
    happened: list[str] = []

    def agent() -> None:
        _agent_replies(db, workspace_id, received.conversation_id, agent_id)
        happened.append("hand-off committed")

    racing_agent = threading.Thread(target=agent)
    queue_reply = replies.queue_reply

    def assistant_writes(session, **reply):  # type: ignore[no-untyped-def]
        if reply["author"] is Author.ASSISTANT:
            racing_agent.start()
            racing_agent.join(timeout=2)  # long enough to commit, unless it must wait
            happened.append("assistant answered")
        return queue_reply(session, **reply)

    monkeypatch.setattr(replies, "queue_reply", assistant_writes)
    drain(worker)
    racing_agent.join(timeout=30)

    assert happened == ["assistant answered", "hand-off committed"]
    (conversation,) = rows(db, Conversation)
    assert conversation.owner == Owner.HUMAN
    (turn,) = rows(db, AssistantTurn)
    assert turn.action == "answered"
    replied = rows(db, Message, Message.author.in_([Author.ASSISTANT, Author.AGENT]))
    assert sorted(m.author for m in replied) == ["agent", "assistant"]


def test_a_customers_next_message_during_the_assistants_answer_deadlocks_neither(
    db, tmp_path, monkeypatch
):
    """Ada writes again just as the assistant, holding her conversation, writes its answer
    to her first message. Both lock her row before her conversation's, so one waits for
    the other, never each for the other: no deadlock, and each message answered once."""
    if not db.is_postgres:
        pytest.skip("SQLite runs one transaction at a time (BEGIN IMMEDIATE): no interleaving")
    seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="hello")
    failures: list[BaseException] = []

    def customer() -> None:
        try:
            customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="thanks")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    next_message = threading.Thread(target=customer)
    queue_reply = replies.queue_reply

    def assistant_writes(session, **reply):  # type: ignore[no-untyped-def]
        if reply["author"] is not Author.ASSISTANT or next_message.ident:
            return queue_reply(session, **reply)
        next_message.start()
        next_message.join(timeout=2)
        try:
            return queue_reply(session, **reply)
        except BaseException as exc:  # a deadlock, which the worker would quietly retry
            failures.append(exc)
            raise

    monkeypatch.setattr(replies, "queue_reply", assistant_writes)
    drain(worker)
    next_message.join(timeout=30)
    drain(worker)

    assert failures == []
    assert [turn.intent for turn in rows(db, AssistantTurn)] == ["greeting", "thanks"]
    assert count(db, Message, Message.author == Author.ASSISTANT) == 2
