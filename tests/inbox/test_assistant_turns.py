"""The assistant's conduct in a conversation: it discloses itself, answers only from
lookups, stays silent from hand-off to hand-back, and hands off when it should."""

from __future__ import annotations

import itertools
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from parley.assistant.service import SessionLookups
from parley.assistant.skills import LookupFailed
from parley.channels.base import ChannelKind
from parley.demo.seed import DemoChannels, seed_demo
from parley.inbox import service as inbox
from parley.inbox.models import AssistantTurn, Conversation, Owner
from parley.messaging.models import Author, Message
from parley.settings import Settings
from parley.workspaces.models import Workspace
from support import (
    all_adapters,
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
        self.slug = f"handoff-{next(_slugs)}"
        with self.db.transaction() as session:
            self.workspace_id = seed_demo(
                session,
                shopify_secret="s",
                api_key=f"key-{self.slug}",
                slug=self.slug,
                channels=DemoChannels(
                    **{
                        **vars(DemoChannels.from_settings(Settings())),
                        "whatsapp_phone_number_id": f"pn-{self.slug}",
                        "twilio_number": f"tw-{self.slug}",
                        "instagram_account_id": f"ig-{self.slug}",
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
