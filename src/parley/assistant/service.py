"""The ``assistant.respond`` task: read one inbound message, answer it or hand it off.

For a conversation the assistant owns, each customer message is classified (intent and
confidence) and searched for entities, then:

- a sensitive topic, an attachment it cannot read, too many automatic turns, or a second
  message it cannot place hands the conversation to a person;
- a first message it cannot place gets one clarifying question;
- otherwise the intent's skill answers from the store's data (:mod:`.skills`).

Its first reply in a conversation says it is an automated assistant. After a hand-off it
says nothing more until an agent hands the conversation back: the owner is checked when
the job runs and again, under the conversation's row lock, before the reply is written.
Every turn is recorded with what it understood, what it looked up and why it did what it
did.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from parley.assistant import skills
from parley.assistant.classifier import IntentClassifier, Prediction, load_classifier
from parley.assistant.entities import Entities, extract
from parley.assistant.intents import Intent
from parley.assistant.knowledge import KnowledgeBase, knowledge_base
from parley.assistant.llm import Rephraser
from parley.assistant.skills import Answer, Context
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.commerce.models import Fulfillment, Order, Product, Refund
from parley.customers.models import Customer
from parley.inbox import service as inbox
from parley.inbox.models import AssistantTurn, Conversation, Owner, TurnAction
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome
from parley.messaging import replies
from parley.messaging.models import Author, Direction, Message
from parley.workspaces.models import Workspace

MAX_TURNS_PER_HOUR = 12
# This many messages in a row saying the same (numbers aside) are a bot on the other side.
SAME_MESSAGES_IN_A_ROW = 3
# How long an order number, email or phone the customer gave stays part of what they ask:
# a conversation stays open for weeks, and "where is my order?" then means the latest.
EARLIER_ENTITIES_FOR = timedelta(hours=24)
# Every form of each word ("fraudulent", "scammed", "lawyers", "sued"), and the words of
# the languages the shipped model reads (code-mixed Spanish, French and Portuguese).
SENSITIVE = re.compile(
    r"\b(charge ?backs?|lawyers?|attorneys?|solicitors?|legal action|su(?:e|es|ed|ing)|court|"
    r"police|fraud\w*|scam\w*|stolen card|identity theft|injur\w*|allergic reaction|"
    r"hospital|harass\w*|threat\w*|suicid\w*|self[- ]harm|data breach|gdpr request|"
    r"abogad[oa]s?|advogad[oa]s?|avocats?|demandar\w*|denuncia\w*|contracargo\w*|"
    r"estorno\w*|estafa\w*|arnaque\w*|escroquerie\w*|golpe|plainte|polic[ií]a|"
    r"tribunal\w*)\b",
    re.IGNORECASE,
)


class SessionLookups:
    """:class:`skills.StoreLookups` over the database, bound to one workspace and customer."""

    def __init__(self, session: Session, *, workspace: Workspace, customer: Customer) -> None:
        self.session = session
        self.workspace_id = workspace.id
        self.customer_id = customer.id
        self.sections = list((workspace.settings or {}).get("knowledge") or [])

    def customer_orders(self) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order)
                .where(
                    Order.workspace_id == self.workspace_id, Order.customer_id == self.customer_id
                )
                .order_by(Order.placed_at.desc().nulls_last(), Order.id.desc())
                .limit(20)
            )
        )

    def order_by_number(self, number: str) -> Order | None:
        digits = number.lstrip("#")
        return self.session.scalar(
            select(Order)
            .where(
                Order.workspace_id == self.workspace_id,
                Order.number.in_([digits, f"#{digits}"]) | (Order.external_id == digits),
            )
            .limit(1)
        )

    def fulfillments(self, order: Order) -> list[Fulfillment]:
        return list(
            self.session.scalars(
                select(Fulfillment)
                .where(
                    Fulfillment.workspace_id == self.workspace_id,
                    Fulfillment.order_external_id == order.external_id,
                )
                .order_by(Fulfillment.created_at, Fulfillment.id)
            )
        )

    def refunds(self, order: Order) -> list[Refund]:
        return list(
            self.session.scalars(
                select(Refund)
                .where(
                    Refund.workspace_id == self.workspace_id,
                    Refund.order_external_id == order.external_id,
                )
                .order_by(Refund.created_at, Refund.id)
            )
        )

    def products(self) -> list[Product]:
        return list(
            self.session.scalars(
                select(Product).where(Product.workspace_id == self.workspace_id).limit(500)
            )
        )

    def knowledge(self) -> KnowledgeBase:
        return knowledge_base(self.sections)


LookupsFactory = Callable[[Session, Workspace, Customer], skills.StoreLookups]


def _session_lookups(session: Session, workspace: Workspace, customer: Customer) -> SessionLookups:
    return SessionLookups(session, workspace=workspace, customer=customer)


@dataclass(frozen=True)
class Thought:
    """One message understood and answered, not yet written."""

    workspace_id: int
    conversation_id: int
    message_id: int
    prediction: Prediction
    entities: Entities
    answer: Answer


class Respond:
    """The ``assistant.respond`` task."""

    kind = inbox.RESPOND

    def __init__(
        self,
        *,
        model_dir: Path,
        confidence_floor: float = 0.5,
        rephraser: Rephraser | None = None,
        lookups: LookupsFactory = _session_lookups,
        classifier: IntentClassifier | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.confidence_floor = confidence_floor
        self.rephraser = rephraser
        self.lookups = lookups
        self._classifier = classifier
        self._lock = threading.Lock()

    @property
    def classifier(self) -> IntentClassifier:
        """Loaded (or built) on first use, once per process."""
        with self._lock:
            if self._classifier is None:
                self._classifier = load_classifier(self.model_dir)
            return self._classifier

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: None) -> Thought | None:
        message = session.get(Message, int(job.payload["message_id"]))
        if message is None or message.workspace_id != job.workspace_id:
            return None
        if message.direction != Direction.INBOUND or message.conversation_id is None:
            return None
        conversation = session.get(Conversation, message.conversation_id)
        if conversation is None or not self._may_speak(session, conversation, message):
            return None
        workspace = session.get(Workspace, message.workspace_id)
        customer = session.get(Customer, conversation.customer_id)
        assert workspace is not None
        assert customer is not None
        thought = self.think(session, workspace, conversation, customer, message)
        if self.rephraser is not None and thought.answer.facts:
            return thought
        self._speak(session, thought, thought.answer.text)
        return None

    async def perform(self, thought: Thought) -> str:
        assert self.rephraser is not None
        return await self.rephraser.rephrase(thought.answer.text, thought.answer.facts)

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Thought, Any]]
    ) -> list[Outcome]:
        for _, thought, result in items:
            text = result if isinstance(result, str) else thought.answer.text
            self._speak(session, thought, text)
        return [Done() for _ in items]

    @staticmethod
    def _may_speak(session: Session, conversation: Conversation, message: Message) -> bool:
        if conversation.owner != Owner.ASSISTANT:
            return False
        answered = session.scalar(
            select(AssistantTurn.id).where(
                AssistantTurn.workspace_id == message.workspace_id,
                AssistantTurn.message_id == message.id,
            )
        )
        return answered is None

    def think(
        self,
        session: Session,
        workspace: Workspace,
        conversation: Conversation,
        customer: Customer,
        message: Message,
    ) -> Thought:
        """Understand the message and decide the answer (no writes)."""
        text = (message.body or "").strip()
        lookups = self.lookups(session, workspace, customer)
        titles = [product.title for product in _safe_products(lookups)]
        entities = extract(text, region=customer.country_code, product_titles=titles)
        prediction = self.classifier.predict(text) if text else Prediction(Intent.OUT_OF_SCOPE, 0.0)
        prediction = _answering_the_question(session, message, entities, prediction)
        answer = self._decide(
            session, workspace, conversation, customer, message, text, prediction, entities, lookups
        )
        return Thought(
            workspace_id=workspace.id,
            conversation_id=conversation.id,
            message_id=message.id,
            prediction=prediction,
            entities=entities,
            answer=answer,
        )

    def _decide(
        self,
        session: Session,
        workspace: Workspace,
        conversation: Conversation,
        customer: Customer,
        message: Message,
        text: str,
        prediction: Prediction,
        entities: Entities,
        lookups: skills.StoreLookups,
    ) -> Answer:
        now = utc_now()
        if not text and message.attachments:
            return _hand_off("the customer sent a file or photo for a person to look at")
        if SENSITIVE.search(text):
            return _hand_off("sensitive topic: a person should answer", empathetic=True)
        if _recent_turns(session, conversation, now) >= MAX_TURNS_PER_HOUR:
            return _hand_off("too many automatic replies in an hour (a loop?)")
        if _says_it_again(session, message, text):
            return _hand_off("the same message three times in a row (an auto-responder?)")
        unsure = prediction.intent is Intent.OUT_OF_SCOPE or (
            prediction.confidence < self.confidence_floor
        )
        if unsure:
            if conversation.low_confidence_count >= 1:
                return _hand_off("the assistant could not understand two messages in a row")
            return Answer(
                TurnAction.CLARIFIED,
                "Sorry, I'm not sure I understood. I can help with order status, returns, "
                "refunds, sizes and products; or write 'agent' to talk to a person.",
                reason=f"low confidence ({prediction.intent}, {prediction.confidence:.2f})",
                is_unsure=True,
            )
        context = Context(
            store_name=workspace.name,
            settings=dict(workspace.settings or {}),
            customer=customer,
            text=text,
            intent=prediction.intent,
            entities=entities,
            earlier=_earlier_entities(session, message, now),
            lookups=lookups,
            now=now,
            identity_is_proven=_proves_identity(message),
        )
        return skills.answer(context)

    def _speak(self, session: Session, thought: Thought, text: str) -> None:
        """Write the turn and the reply, if the assistant still may; hand off when the
        answer says so.

        An agent may have taken the conversation over since the message was read, while
        the answer was thought out or reworded: their reply commits in another process.
        The conversation is read again under its row lock before anything is written
        (:func:`_hold_conversation`), so the two take turns: a hand-off that committed
        first silences the assistant, and one that comes while it writes waits for its
        answer and follows it.
        """
        conversation = _hold_conversation(session, thought)
        message = session.get(Message, thought.message_id)
        if (
            conversation is None
            or message is None
            or not self._may_speak(session, conversation, message)
        ):
            return
        workspace = session.get(Workspace, thought.workspace_id)
        assert workspace is not None
        answer = thought.answer
        if not conversation.has_assistant_replied:
            text = f"{workspace.name} automated assistant here. {text}"
        reply = replies.queue_reply(
            session,
            workspace=workspace,
            conversation=conversation,
            text=text,
            author=Author.ASSISTANT,
            idempotency_key=f"assistant-reply:{message.id}",
            to_message=message,
        )
        conversation.has_assistant_replied = True
        conversation.low_confidence_count = (
            conversation.low_confidence_count + 1 if answer.is_unsure else 0
        )
        session.add(
            AssistantTurn(
                workspace_id=workspace.id,
                conversation_id=conversation.id,
                message_id=message.id,
                reply_message_id=reply.id,
                intent=thought.prediction.intent,
                confidence=round(thought.prediction.confidence, 4),
                entities=thought.entities.as_json(),
                action=answer.action,
                reason=answer.reason,
                lookups=answer.lookups,
                created_at=utc_now(),
            )
        )
        if answer.action is TurnAction.HANDED_OFF:
            inbox.hand_off(
                session,
                workspace_id=workspace.id,
                conversation_id=conversation.id,
                reason=_summary(answer, thought, message),
                actor="assistant",
            )


def _hold_conversation(session: Session, thought: Thought) -> Conversation | None:
    """The thought's conversation as committed now, locked until this transaction ends.

    Rows are locked in the order a customer's next message locks them
    (:func:`parley.inbox.service.record_inbound`), the customer's and then the
    conversation's, so the two queue rather than deadlock. The conversation is locked
    against updates only (``FOR NO KEY UPDATE``): an agent's hand-off updates it, and
    waits for the answer; the agent's message only refers to it, so an agent waiting for
    the customer's row never holds up the assistant.
    """
    customer_id = select(Conversation.customer_id).where(
        Conversation.workspace_id == thought.workspace_id,
        Conversation.id == thought.conversation_id,
    )
    session.execute(
        select(Customer.id)
        .where(
            Customer.workspace_id == thought.workspace_id,
            Customer.id == customer_id.scalar_subquery(),
        )
        .with_for_update()
    )
    return session.scalar(
        select(Conversation)
        .where(
            Conversation.workspace_id == thought.workspace_id,
            Conversation.id == thought.conversation_id,
        )
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


def _answering_the_question(
    session: Session, message: Message, entities: Entities, prediction: Prediction
) -> Prediction:
    """The order question a message goes on with when it only answers the assistant's.

    Asked for an order number, email or phone to confirm an order, a customer sends
    "my email is ada@example.com": the model reads that as an account question, or not
    at all, but it answers the question the last turn asked about. Who may see the order
    is still decided by the skill, from what this asker wrote.
    """
    if prediction.intent in skills.ORDER_INTENTS or not (
        entities.order_numbers or entities.emails or entities.phones
    ):
        return prediction
    last = session.scalar(
        select(AssistantTurn)
        .where(
            AssistantTurn.workspace_id == message.workspace_id,
            AssistantTurn.conversation_id == message.conversation_id,
        )
        .order_by(AssistantTurn.id.desc())
        .limit(1)
    )
    if last is None or last.action != TurnAction.CLARIFIED:
        return prediction
    asked = Intent(last.intent)
    return Prediction(asked, last.confidence) if asked in skills.ORDER_INTENTS else prediction


def _hand_off(reason: str, *, empathetic: bool = False) -> Answer:
    text = (
        "I'm sorry you're dealing with this. I've passed your message to a colleague, who "
        "will reply here."
        if empathetic
        else "I've passed your message to a colleague, who will reply here."
    )
    return Answer(TurnAction.HANDED_OFF, text, reason=reason)


def _summary(answer: Answer, thought: Thought, message: Message) -> str:
    """What the agent reads first: why the assistant stopped, and what it understood."""
    said = " ".join((message.body or "").split())[:200]
    return (
        f'{answer.reason or "handed off"}. Last message: "{said}" (understood as '
        f"{thought.prediction.intent}, confidence {thought.prediction.confidence:.0%})"
    )


def _recent_turns(session: Session, conversation: Conversation, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(AssistantTurn.id)).where(
                AssistantTurn.conversation_id == conversation.id,
                AssistantTurn.created_at >= now - timedelta(hours=1),
            )
        )
        or 0
    )


def _says_it_again(session: Session, message: Message, text: str) -> bool:
    """Whether the customer's messages just before this one said the same as it, numbers
    aside (:data:`SAME_MESSAGES_IN_A_ROW` in all).

    An auto-responder answers every reply with one text (a new ticket number each time),
    however slowly it writes, so the hourly cap alone would let two bots talk for ever; a
    person asks something else.
    """
    earlier = list(
        session.scalars(
            select(Message.body)
            .where(
                Message.workspace_id == message.workspace_id,
                Message.conversation_id == message.conversation_id,
                Message.direction == Direction.INBOUND,
                Message.id < message.id,
            )
            .order_by(Message.id.desc())
            .limit(SAME_MESSAGES_IN_A_ROW - 1)
        )
    )
    said = _gist(text)
    return len(earlier) == SAME_MESSAGES_IN_A_ROW - 1 and all(
        _gist(body or "") == said for body in earlier
    )


def _gist(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def _proves_identity(message: Message) -> bool:
    """Whether the channel proves who wrote ``message``: a web-chat visitor only asserts
    the email they type into the widget."""
    return message.channel != ChannelKind.WEBCHAT


def _earlier_entities(session: Session, message: Message, now: datetime) -> Entities:
    """Entities from the asker's own earlier messages in the conversation (the last ten
    the assistant read, within :data:`EARLIER_ENTITIES_FOR`).

    A conversation may hold messages from people who only claimed to be this customer:
    a web-chat visitor who typed the customer's email joins their profile. An order
    number or email such a person wrote must not confirm anyone else, nor anyone else's
    confirm them: a web-chat visitor counts only their own messages (the same visitor
    id), and a customer on a channel that proves them counts only such channels'
    messages, never a web-chat visitor's.
    """
    asker_wrote = (
        Message.channel != ChannelKind.WEBCHAT
        if _proves_identity(message)
        else and_(Message.channel == ChannelKind.WEBCHAT, Message.sender == message.sender)
    )
    found: dict[str, list[str]] = {}
    for entities in session.scalars(
        select(AssistantTurn.entities)
        .join(Message, Message.id == AssistantTurn.message_id)
        .where(
            AssistantTurn.workspace_id == message.workspace_id,
            AssistantTurn.conversation_id == message.conversation_id,
            AssistantTurn.created_at >= now - EARLIER_ENTITIES_FOR,
            Message.workspace_id == message.workspace_id,
            asker_wrote,
        )
        .order_by(AssistantTurn.id.desc())
        .limit(10)
    ):
        for name, values in (entities or {}).items():
            found.setdefault(name, []).extend(values)
    return Entities(**{name: tuple(dict.fromkeys(values)) for name, values in found.items()})


def _safe_products(lookups: skills.StoreLookups) -> list[Product]:
    """Product titles help find entities; if the catalogue cannot be read, go without."""
    try:
        return lookups.products()
    except Exception:  # noqa: BLE001 - entity finding must not fail on a lookup
        return []
