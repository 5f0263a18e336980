"""Read-through caches for one batch of sends: what the outbox reads, loaded in bulk.

A worker prepares a batch of messages in one transaction. Asking the database for each
message's consent, identities, templates and previous attempt one query at a time cost
more than everything else in the send path, so :meth:`OutboxLookup.preload` fetches them
for the whole batch in a few queries; anything not preloaded (templates, read once per
workspace and message type) is fetched on first use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity
from parley.inbox.models import Conversation, ConversationStatus
from parley.messaging import catalog
from parley.messaging.models import Message
from parley.messaging.policy import Reach
from parley.messaging.templates import TemplateContent
from parley.messaging.types import MessageType


class OutboxLookup:
    """Everything the outbox reads while preparing one batch, each thing read once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._identities: dict[int, list[CustomerIdentity]] = {}
        self._consent: dict[int, dict[tuple[str, str], ConsentRecord]] = {}
        self._messages: dict[tuple[int, str], Message | None] = {}
        self._templates: dict[tuple[int, str], dict[ChannelKind, TemplateContent]] = {}
        self._conversations: dict[int, int | None] = {}

    def preload(
        self,
        *,
        customer_ids: Iterable[int],
        message_keys: Iterable[tuple[int, str]],
    ) -> None:
        """Fetch in bulk what a batch will ask for."""
        customer_ids = sorted(set(customer_ids) - self._identities.keys())
        if customer_ids:
            identities: dict[int, list[CustomerIdentity]] = defaultdict(list)
            for identity in self.session.scalars(
                select(CustomerIdentity).where(CustomerIdentity.customer_id.in_(customer_ids))
            ):
                identities[identity.customer_id].append(identity)
            consent: dict[int, dict[tuple[str, str], ConsentRecord]] = defaultdict(dict)
            for record in self.session.scalars(
                select(ConsentRecord)
                .where(ConsentRecord.customer_id.in_(customer_ids))
                .order_by(ConsentRecord.id)
            ):
                consent[record.customer_id][(record.channel, record.purpose)] = record
            for customer_id in customer_ids:
                self._identities[customer_id] = identities.get(customer_id, [])
                self._consent[customer_id] = consent.get(customer_id, {})
            self._conversations.update(dict.fromkeys(customer_ids))
            open_conversations = self.session.execute(
                select(Conversation.customer_id, Conversation.id).where(
                    Conversation.customer_id.in_(customer_ids),
                    Conversation.status != ConversationStatus.RESOLVED,
                )
            )
            self._conversations.update({row[0]: row[1] for row in open_conversations})
        keys = set(message_keys) - self._messages.keys()
        if keys:
            found = self.session.scalars(
                select(Message).where(
                    Message.workspace_id.in_({workspace_id for workspace_id, _ in keys}),
                    Message.idempotency_key.in_({key for _, key in keys}),
                )
            )
            self._messages.update(dict.fromkeys(keys))
            for message in found:
                self._messages[(message.workspace_id, message.idempotency_key)] = message

    def reach(self, customer: Customer) -> Reach:
        """The customer's identities and current consent (scoped by their workspace)."""
        if customer.id not in self._identities:
            self.preload(customer_ids=[customer.id], message_keys=())
        return Reach(
            customer=customer,
            identities=[
                i for i in self._identities[customer.id] if i.workspace_id == customer.workspace_id
            ],
            consent={
                key: record
                for key, record in self._consent[customer.id].items()
                if record.workspace_id == customer.workspace_id
            },
        )

    def open_conversation_id(self, customer: Customer) -> int | None:
        """The customer's open conversation: a journey message sent now joins it."""
        if customer.id not in self._conversations:
            self.preload(customer_ids=[customer.id], message_keys=())
        return self._conversations[customer.id]

    def message(self, workspace_id: int, idempotency_key: str) -> Message | None:
        """The message made earlier under this key, if any."""
        key = (workspace_id, idempotency_key)
        if key not in self._messages:
            self._messages[key] = self.session.scalar(
                select(Message).where(
                    Message.workspace_id == workspace_id,
                    Message.idempotency_key == idempotency_key,
                )
            )
        return self._messages[key]

    def templates(
        self, workspace_id: int, message_type: MessageType
    ) -> dict[ChannelKind, TemplateContent]:
        key = (workspace_id, message_type)
        if key not in self._templates:
            self._templates[key] = catalog.templates_for(
                self.session, workspace_id=workspace_id, message_type=message_type
            )
        return self._templates[key]
