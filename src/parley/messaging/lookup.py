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
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind, SendingAccount
from parley.clock import utc_now
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, IdentityKind
from parley.customers.service import (
    addresses_held_elsewhere,
    refusals_at_addresses,
    with_refusals,
)
from parley.db.scoped import in_workspaces
from parley.inbox.models import Conversation, ConversationStatus
from parley.messaging import catalog, sending_domain
from parley.messaging.models import Message
from parley.messaging.policy import Reach
from parley.messaging.senders import (
    StoreAccounts,
    StoreSenders,
    reply_addresses,
    sending_accounts,
)
from parley.messaging.templates import TemplateContent
from parley.messaging.types import MessageType
from parley.messaging.whatsapp_templates import Registry, registry_for
from parley.messaging.windows import LONGEST_WINDOW, Written, recent_writing

WINDOW_KINDS = frozenset({IdentityKind.WHATSAPP, IdentityKind.INSTAGRAM})


class OutboxLookup:
    """Everything the outbox reads while preparing one batch, each thing read once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._identities: dict[int, list[CustomerIdentity]] = {}
        self._consent: dict[int, dict[tuple[str, str], ConsentRecord]] = {}
        self._written: dict[int, list[Written]] = {}
        self._messages: dict[tuple[int, str], Message | None] = {}
        self._templates: dict[tuple[int, str], dict[ChannelKind, TemplateContent]] = {}
        self._conversations: dict[int, int | None] = {}
        self._whatsapp_templates: dict[int, Registry] = {}
        self._sending_domains: dict[str, list[str] | None] = {}
        self._accounts: StoreAccounts = {}
        self._reply_addresses: dict[int, str | None] = {}

    def preload(
        self,
        *,
        customers: Iterable[Customer],
        message_keys: Iterable[tuple[int, str]],
    ) -> None:
        """Fetch in bulk what a batch will ask for, each query scoped by workspace."""
        session = self.session
        customers = list(customers)
        stores = {c.workspace_id for c in customers} - self._accounts.keys()
        if stores:
            self._load_senders(stores)
        wanted = {(c.workspace_id, c.id) for c in customers if c.id not in self._identities}
        if wanted:
            identities: dict[int, list[CustomerIdentity]] = defaultdict(list)
            for identity in self.session.scalars(
                select(CustomerIdentity).where(
                    in_workspaces(
                        session, CustomerIdentity.workspace_id, CustomerIdentity.customer_id, wanted
                    )
                )
            ):
                identities[identity.customer_id].append(identity)
            consent: dict[int, dict[tuple[str, str], ConsentRecord]] = defaultdict(dict)
            for record in self.session.scalars(
                select(ConsentRecord)
                .where(
                    in_workspaces(
                        session, ConsentRecord.workspace_id, ConsentRecord.customer_id, wanted
                    )
                )
                .order_by(ConsentRecord.id)
            ):
                consent[record.customer_id][(record.channel, record.purpose)] = record
            _add_shared_address_refusals(
                session,
                [c for c in customers if (c.workspace_id, c.id) in wanted],
                identities,
                consent,
            )
            now = utc_now()
            written = recent_writing(session, _wrote_lately(wanted, identities, now), now=now)
            customer_ids = [customer_id for _, customer_id in wanted]
            for customer_id in customer_ids:
                self._identities[customer_id] = identities.get(customer_id, [])
                self._consent[customer_id] = consent.get(customer_id, {})
                self._written[customer_id] = written.get(customer_id, [])
            self._conversations.update(dict.fromkeys(customer_ids))
            open_conversations = self.session.execute(
                select(Conversation.customer_id, Conversation.id).where(
                    in_workspaces(
                        session, Conversation.workspace_id, Conversation.customer_id, wanted
                    ),
                    Conversation.status != ConversationStatus.RESOLVED,
                )
            )
            self._conversations.update({row[0]: row[1] for row in open_conversations})
        keys = set(message_keys) - self._messages.keys()
        if keys:
            found = self.session.scalars(
                select(Message).where(
                    in_workspaces(session, Message.workspace_id, Message.idempotency_key, keys)
                )
            )
            self._messages.update(dict.fromkeys(keys))
            for message in found:
                self._messages[(message.workspace_id, message.idempotency_key)] = message

    def reach(self, customer: Customer) -> Reach:
        """The customer's identities and current consent (scoped by their workspace)."""
        if customer.id not in self._identities:
            self.preload(customers=[customer], message_keys=())
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
            written=tuple(self._written[customer.id]),
        )

    def open_conversation_id(self, customer: Customer) -> int | None:
        """The customer's open conversation: a journey message sent now joins it."""
        if customer.id not in self._conversations:
            self.preload(customers=[customer], message_keys=())
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

    def sending_account(self, workspace_id: int, channel: str) -> SendingAccount | None:
        """The store's own account its messages on ``channel`` go from; None: the
        deployment's (:mod:`parley.messaging.senders`)."""
        return self.senders(workspace_id).get(ChannelKind(channel))

    def senders(self, workspace_id: int) -> StoreSenders:
        """The store's own sending accounts, every channel's."""
        if workspace_id not in self._accounts:
            self._load_senders({workspace_id})
        return self._accounts[workspace_id]

    def reply_address(self, workspace_id: int) -> str | None:
        """The store's own inbound address, where its customers' email replies go."""
        if workspace_id not in self._accounts:
            self._load_senders({workspace_id})
        return self._reply_addresses[workspace_id]

    def _load_senders(self, stores: set[int]) -> None:
        self._accounts.update(sending_accounts(self.session, stores))
        found = reply_addresses(self.session, stores)
        self._reply_addresses.update({store: found.get(store) for store in stores})

    def sending_domain_problems(self, domain: str) -> list[str] | None:
        """What the last reading of the sending domain found short, read once per batch
        (:mod:`parley.messaging.sending_domain`); None: never read."""
        if domain not in self._sending_domains:
            self._sending_domains[domain] = sending_domain.problems_of(self.session, domain)
        return self._sending_domains[domain]

    def whatsapp_templates(self, workspace_id: int) -> Registry:
        """What Meta says of the store's WhatsApp templates, read once per batch."""
        if workspace_id not in self._whatsapp_templates:
            self._whatsapp_templates[workspace_id] = registry_for(
                self.session, workspace_id=workspace_id
            )
        return self._whatsapp_templates[workspace_id]


def _add_shared_address_refusals(
    session: Session,
    customers: list[Customer],
    identities: dict[int, list[CustomerIdentity]],
    consent: dict[int, dict[tuple[str, str], ConsentRecord]],
) -> None:
    """Put over each customer's consent the refusals of the phone or email they are
    messaged at where another profile holds it (:func:`refusals_at_addresses`). Read only
    for customers sharing an address, so a batch of anyone else asks nothing more."""
    shared = {
        customer.id: (customer.workspace_id, held)
        for customer in customers
        if (held := addresses_held_elsewhere(customer, identities.get(customer.id, [])))
    }
    if not shared:
        return
    refused = refusals_at_addresses(
        session,
        addresses={
            (workspace_id, kind, value)
            for workspace_id, held in shared.values()
            for kind, value in held
        },
    )
    for customer_id, (workspace_id, held) in shared.items():
        consent[customer_id] = with_refusals(
            consent.get(customer_id, {}),
            [refused.get((workspace_id, kind, value), {}) for kind, value in held],
        )


def _wrote_lately(
    customers: Iterable[tuple[int, int]],
    identities: dict[int, list[CustomerIdentity]],
    now: datetime,
) -> list[tuple[int, int]]:
    """The customers who wrote on WhatsApp or Instagram within the longest window, as
    their identities' stamps tell: only theirs are read for the windows' numbers."""
    return [
        (workspace_id, customer_id)
        for workspace_id, customer_id in customers
        if any(
            identity.kind in WINDOW_KINDS
            and identity.last_inbound_at is not None
            and now - identity.last_inbound_at < LONGEST_WINDOW
            for identity in identities.get(customer_id, [])
        )
    ]
