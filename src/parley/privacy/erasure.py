"""Erasure: a customer's rows deleted from one store (``customers/redact``), or a whole
store's (``shop/redact``).

A customer's erasure is one transaction: their rows are a person's history, bounded,
and a half-erased customer is worse than one not yet erased. Rows are deleted rather
than blanked: an order with its names and address blanked still says who bought what,
when and where it went. What parley sent them goes too (the message text names them).
The raw platform deliveries that carried their details are emptied, not deleted: each
row is its platform's dedupe key until the housekeeping sweep (14 days), and a retry of
one taken before the erasure (Shopify retries for 48 hours, Meta for days) would
otherwise be taken in as new and bring the customer back. Each store's own records (its
products, its templates, other customers) are untouched.

A store's erasure may be millions of rows, so it deletes a batch to a transaction like
the housekeeping sweep does (:mod:`parley.housekeeping`), and the store's row last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Table, Text, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

import parley.db.models  # noqa: F401  (every table registered, for the store's erasure)
from parley.clock import utc_now
from parley.commerce.models import Checkout, Fulfillment, Order, Refund
from parley.customers import suppression
from parley.customers.models import (
    ConsentRecord,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
)
from parley.db.base import Base
from parley.inbox.models import AssistantTurn, Conversation, ConversationEvent, ConversationRead
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun
from parley.live.models import LiveEvent
from parley.messaging import marketing_rate, pace
from parley.messaging.models import DeliveryAttempt, MarketingSlot, Message
from parley.privacy.held import Held, events_of, find_held
from parley.privacy.models import PrivacyRequest, RequestKind
from parley.privacy.service import Subject
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces.models import Workspace

DELIVERIES = "raw platform deliveries' contents"
TRAINING_LABELS = "assistant training labels"
"""Agents' labels of the customer's messages, which ``parley assistant train --workspace``
learns from: a model trained on them is a file on the worker's disk, out of the
erasure's reach, so the summary says to train it again."""
EMPTIED_REASON = "body erased with the customer it named"
"""The ``status_reason`` of a raw delivery an erasure emptied (a stored value)."""


@dataclass
class Erased:
    """Rows deleted, by what they were, in the words the store owner reads, and the
    strings that name the customer (for :func:`scrub_mentions`, after)."""

    counts: dict[str, int] = field(default_factory=dict)
    traces: frozenset[str] = frozenset()
    kept: int = 0
    """Refusals kept as suppressions (:mod:`parley.customers.suppression`), by address,
    channel and purpose."""

    def add(self, what: str, rowcount: int) -> None:
        if rowcount:
            self.counts[what] = self.counts.get(what, 0) + rowcount

    def summary(self) -> str:
        if not self.counts:
            return "parley held nothing on this customer"
        deleted = "deleted " + ", ".join(f"{what} {count}" for what, count in self.counts.items())
        if self.kept:
            deleted += f"; kept {self.kept} opt-out(s) as suppressions (keyed hashes, no address)"
        if TRAINING_LABELS in self.counts:
            deleted += (
                "; a store model trained on these labels (parley assistant train --workspace)"
                " may still hold their words: train it again"
            )
        return deleted


def erase_customer(
    session: Session, *, workspace_id: int, subject: Subject, request_delivery: int | None = None
) -> Erased:
    """Delete everything of the store's that is about the customer ``subject`` names.

    ``request_delivery``, the raw delivery of the request itself, names them too: it is
    emptied with the others, so the platform's retry of it is still known as one.
    Their profiles are locked first (:func:`~parley.privacy.held.find_held`), so a
    message they write meanwhile is either found here or waits and finds them gone.
    """
    held = find_held(session, workspace_id=workspace_id, subject=subject, lock=True)
    erased = Erased(traces=held.traces | _given(subject))
    events = events_of(workspace_id, held, subject)
    deliveries = {
        delivery
        for delivery in session.scalars(select(StoreEvent.delivery_id).where(events).distinct())
        if delivery is not None
    }
    erased.add("pending or finished jobs", _delete_jobs(session, workspace_id, held))
    erased.add(
        "live updates",
        _delete(
            session,
            delete(LiveEvent).where(
                LiveEvent.workspace_id == workspace_id,
                LiveEvent.conversation_id.in_(held.conversations),
            ),
        ),
    )
    erased.kept = _keep_refusals(session, workspace_id, held)
    erased.add(TRAINING_LABELS, _training_labels(session, workspace_id, held))
    _delete_children(session, workspace_id, held)
    erased.add(
        "messages",
        _delete(
            session,
            delete(Message).where(
                Message.workspace_id == workspace_id, Message.id.in_(held.messages)
            ),
        ),
    )
    erased.add(
        "conversations",
        _delete(
            session,
            delete(Conversation).where(
                Conversation.workspace_id == workspace_id,
                Conversation.id.in_(held.conversations),
            ),
        ),
    )
    erased.add("store events", _delete(session, delete(StoreEvent).where(events)))
    erased.add(
        "journey runs",
        _delete(
            session,
            delete(JourneyRun).where(
                JourneyRun.workspace_id == workspace_id, JourneyRun.id.in_(held.runs)
            ),
        ),
    )
    for model, what in ((Fulfillment, "fulfilments"), (Refund, "refunds")):
        erased.add(
            what,
            _delete(
                session,
                delete(model).where(
                    model.workspace_id == workspace_id,
                    model.order_external_id.in_(held.orders),
                ),
            ),
        )
    erased.add(
        "orders",
        _delete(
            session,
            delete(Order).where(
                Order.workspace_id == workspace_id, Order.external_id.in_(held.orders)
            ),
        ),
    )
    erased.add(
        "checkouts",
        _delete(
            session,
            delete(Checkout).where(
                Checkout.workspace_id == workspace_id, Checkout.external_id.in_(held.checkouts)
            ),
        ),
    )
    naming = _naming(erased.traces)
    erased.add(DELIVERIES, _empty_deliveries(session, workspace_id, deliveries, naming))
    if request_delivery is not None:
        _empty_deliveries(session, workspace_id, {request_delivery}, naming)
    erased.add("earlier data exports", _drop_exports(session, workspace_id, held, subject))
    erased.add(
        "customer profiles",
        _delete(
            session,
            delete(Customer).where(
                Customer.workspace_id == workspace_id, Customer.id.in_(held.customers)
            ),
        ),
    )
    return erased


def _keep_refusals(session: Session, workspace_id: int, held: Held) -> int:
    """Keep what the customer last refused, per channel and purpose across all their
    profiles, as suppressions of their addresses: the "no" outlives the erasure."""
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for record in session.scalars(
        select(ConsentRecord)
        .where(
            ConsentRecord.workspace_id == workspace_id,
            ConsentRecord.customer_id.in_(held.customers),
        )
        .order_by(ConsentRecord.id)
    ):
        latest[(record.channel, record.purpose)] = record
    return suppression.keep(
        session,
        workspace_id=workspace_id,
        identities=held.identities,
        consent=latest.values(),
        now=utc_now(),
    )


def _training_labels(session: Session, workspace_id: int, held: Held) -> int:
    """How many of the customer's messages an agent labelled (see :data:`TRAINING_LABELS`)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(AssistantTurn)
            .where(
                AssistantTurn.workspace_id == workspace_id,
                AssistantTurn.message_id.in_(held.messages),
                AssistantTurn.label.is_not(None),
            )
        )
        or 0
    )


def _delete_children(session: Session, workspace_id: int, held: Held) -> None:
    """What the foreign keys' cascades would delete with the customer's messages,
    conversations and profiles: deleted here first, so the erasure is whole on SQLite,
    where it runs with the keys unchecked, and no row is left pointing at one gone."""
    messages, conversations, customers = held.messages, held.conversations, held.customers
    for statement in (
        delete(DeliveryAttempt).where(
            DeliveryAttempt.workspace_id == workspace_id, DeliveryAttempt.message_id.in_(messages)
        ),
        delete(AssistantTurn).where(
            AssistantTurn.workspace_id == workspace_id,
            or_(
                AssistantTurn.message_id.in_(messages),
                AssistantTurn.conversation_id.in_(conversations),
            ),
        ),
        update(AssistantTurn)
        .where(
            AssistantTurn.workspace_id == workspace_id,
            AssistantTurn.reply_message_id.in_(messages),
        )
        .values(reply_message_id=None),
        delete(ConversationEvent).where(
            ConversationEvent.workspace_id == workspace_id,
            ConversationEvent.conversation_id.in_(conversations),
        ),
        delete(ConversationRead).where(
            ConversationRead.workspace_id == workspace_id,
            ConversationRead.conversation_id.in_(conversations),
        ),
        update(Conversation)
        .where(
            Conversation.workspace_id == workspace_id,
            Conversation.merged_into_id.in_(conversations),
        )
        .values(merged_into_id=None),
        delete(CustomerIdentity).where(
            CustomerIdentity.workspace_id == workspace_id,
            CustomerIdentity.customer_id.in_(customers),
        ),
        delete(ConsentRecord).where(
            ConsentRecord.workspace_id == workspace_id, ConsentRecord.customer_id.in_(customers)
        ),
        delete(MarketingSlot).where(
            MarketingSlot.workspace_id == workspace_id, MarketingSlot.customer_id.in_(customers)
        ),
        delete(CustomerMerge).where(
            CustomerMerge.workspace_id == workspace_id,
            or_(
                CustomerMerge.kept_customer_id.in_(customers),
                CustomerMerge.merged_customer_id.in_(customers),
            ),
        ),
        update(Customer)
        .where(Customer.workspace_id == workspace_id, Customer.merged_into_id.in_(customers))
        .values(merged_into_id=None),
    ):
        session.execute(statement)


def _delete(session: Session, statement: object) -> int:
    result = session.execute(statement)  # type: ignore[call-overload]
    return int(result.rowcount)


def _given(subject: Subject) -> set[str]:
    """The request's own email and phone as written, beside their normalised forms."""
    return {value for value in (subject.email, subject.phone) if value and len(value) >= 6}


def _delete_jobs(session: Session, workspace_id: int, held: Held) -> int:
    """The customer's journey steps and sends not yet run, and the finished ones' rows.
    A job running now is left to its worker, which finds its run or message gone."""
    return _delete(
        session,
        delete(Job).where(
            Job.workspace_id == workspace_id,
            Job.status != JobStatus.RUNNING,
            or_(
                Job.payload["run_id"].as_integer().in_(held.runs),
                Job.payload["message_id"].as_integer().in_(held.messages),
            ),
        ),
    )


def _empty_deliveries(
    session: Session,
    workspace_id: int,
    delivery_ids: Collection[int],
    naming: re.Pattern[str] | None,
) -> int:
    """Empty the raw deliveries ``delivery_ids`` of their body and headers, and keep each
    row with its key, the platform's dedupe key, until the housekeeping sweep deletes it
    with the others of its age. A key is the platform's id of the delivery (Shopify's
    event id, Mailgun's token, a body's hash) and names no one, but an API client picks
    its own ``Idempotency-Key``: a row whose key names the customer (``naming``, from
    :func:`_naming`) is deleted instead."""
    if not delivery_ids:
        return 0
    named = [
        delivery_id
        for delivery_id, key in session.execute(
            select(WebhookDelivery.id, WebhookDelivery.delivery_key).where(
                WebhookDelivery.workspace_id == workspace_id,
                WebhookDelivery.id.in_(delivery_ids),
            )
        )
        if naming is not None and naming.search(key)
    ]
    deleted = _delete(
        session,
        delete(WebhookDelivery).where(
            WebhookDelivery.workspace_id == workspace_id, WebhookDelivery.id.in_(named)
        ),
    )
    return deleted + _delete(
        session,
        update(WebhookDelivery)
        .where(
            WebhookDelivery.workspace_id == workspace_id,
            WebhookDelivery.id.in_(set(delivery_ids) - set(named)),
        )
        .values(body="{}", headers={}, status_reason=EMPTIED_REASON),
    )


def _naming(traces: Iterable[str]) -> re.Pattern[str] | None:
    """What finds one of ``traces`` written whole, not inside a longer address or number:
    ``ada@example.com`` is not in ``nada@example.com`` nor ``ada@example.com.au``, and
    ``+447911123456`` not in ``+4479111234567``. A character an address or number goes on
    with (a letter, digit, ``_``, ``-``; before it also ``.`` and ``+``; after it a ``.``
    and more) makes it another one. None when there is nothing to find."""
    alternatives = "|".join(re.escape(trace) for trace in sorted(traces, key=len, reverse=True))
    if not alternatives:
        return None
    return re.compile(rf"(?<![\w.+-])(?:{alternatives})(?![\w-]|\.\w)", re.IGNORECASE)


MENTION_WINDOW = 2_000
"""Raw deliveries searched to a transaction."""


@dataclass(frozen=True)
class Scrubbed:
    """Raw deliveries emptied (or deleted) for naming the customer, and where the search
    stopped: ``after`` is the last id searched, None once every delivery has been."""

    deleted: int
    after: int | None


def delivery_range(session: Session) -> tuple[int, int]:
    """The oldest and newest raw deliveries' ids: a search covers those there when it
    began, and starts at the oldest the sweep left, not at the first ever received."""
    first, last = session.execute(
        select(func.min(WebhookDelivery.id), func.max(WebhookDelivery.id))
    ).one()
    return int(first or 0), int(last or 0)


def delete_mentions(
    session: Session,
    *,
    workspace_id: int,
    traces: Iterable[str],
    after: int,
    until: int,
    kept: int | None,
    window: int = MENTION_WINDOW,
) -> Scrubbed:
    """Search the next ``window`` raw deliveries after id ``after`` (up to ``until``) and
    empty the store's that name the customer (:func:`_empty_deliveries`): a topic parley
    does not map, a receipt, an inbound message (an email's sender is in its headers),
    an earlier request. The deliveries that carried the customer's events were emptied
    by the erasure itself; these are the rest, searched a window at a time because each
    is a scan of their bodies and headers. Windows are ranges of the primary key, every
    store's rows, so a window costs the same however many deliveries the store has (one
    of the store's own rows in id order was a walk of its index and a sort: 30 ms a
    window at 20,000, 115 ms at 320,000).

    The database finds the text anywhere, ignoring case; a candidate is emptied only if
    it names the customer whole (:func:`_naming`), so another customer's deliveries, the
    dedupe keys of their own retries, are left as they are."""
    traces = list(traces)
    naming = _naming(traces)
    if naming is None or after >= until:
        return Scrubbed(deleted=0, after=None)
    last = min(after + window, until)
    headers = cast(WebhookDelivery.headers, Text)
    candidates = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.body, WebhookDelivery.headers).where(
            WebhookDelivery.id > after,
            WebhookDelivery.id <= last,
            WebhookDelivery.workspace_id == workspace_id,
            WebhookDelivery.id != (kept or 0),
            or_(
                *(
                    column.icontains(trace, autoescape=True)
                    for trace in traces
                    for column in (WebhookDelivery.body, headers)
                )
            ),
        )
    )
    hers = {
        row.id
        for row in candidates
        if naming.search(row.body) or naming.search(json.dumps(row.headers, ensure_ascii=False))
    }
    deleted = _empty_deliveries(session, workspace_id, hers, naming)
    return Scrubbed(deleted=deleted, after=None if last >= until else last)


def _drop_exports(session: Session, workspace_id: int, held: Held, subject: Subject) -> int:
    """An earlier access request's export is a copy of what is being erased: one that
    gathered any of the customer's profiles, or (not yet carried out, or finding nothing)
    named them by any platform id, email or phone they are known by, whichever the
    erasure itself names them by."""
    dropped = 0
    platform_ids = {value for kind, value in held.identities if kind == IdentityKind.SHOPIFY}
    platform_ids |= {subject.platform_customer_id} if subject.platform_customer_id else set()
    emails = {value for kind, value in held.identities if kind == IdentityKind.EMAIL}
    phones = {value for kind, value in held.identities if kind == IdentityKind.PHONE}
    for request in session.scalars(
        select(PrivacyRequest).where(
            PrivacyRequest.workspace_id == workspace_id,
            PrivacyRequest.kind == RequestKind.ACCESS,
            PrivacyRequest.subject.is_not(None),
        )
    ):
        earlier = Subject.from_json(request.subject or {})
        gathered = {profile["id"] for profile in (request.export or {}).get("customers", [])}
        if (
            gathered & held.customers
            or earlier.platform_customer_id in platform_ids
            or earlier.normalised_email in emails
            or earlier.normalised_phone in phones
        ):
            request.subject = None
            request.export = None
            request.summary = (
                request.summary or ""
            ) + "; its export was deleted by a later erasure"
            dropped += 1
    return dropped


# --- a whole store ---------------------------------------------------------------------

STORE_BATCH = 500
"""Rows deleted to a transaction."""


def store_tables() -> list[Table]:
    """Every table holding a store's rows, the ones that point at others first."""
    return [
        table
        for table in reversed(Base.metadata.sorted_tables)
        if "workspace_id" in table.c and table.name != "workspaces"
    ]


def erase_store_batch(session: Session, *, workspace_id: int) -> tuple[str, int] | None:
    """Delete up to :data:`STORE_BATCH` of the store's rows, from the first table that
    still has some: which table, and how many; None when only the store's row is left."""
    for table in store_tables():
        ids = select(table.c.id).where(table.c.workspace_id == workspace_id).limit(STORE_BATCH)
        deleted = _delete(session, delete(table).where(table.c.id.in_(ids.scalar_subquery())))
        if deleted:
            return table.name, deleted
    return None


def remaining_rows(session: Session, *, workspace_id: int) -> dict[str, int]:
    """How many of the store's rows each table still holds (for the log and the tests)."""
    counts = {}
    for table in store_tables():
        count = session.scalar(
            select(func.count()).select_from(table).where(table.c.workspace_id == workspace_id)
        )
        if count:
            counts[table.name] = int(count)
    return counts


def delete_store(session: Session, *, workspace_id: int) -> None:
    """The store's own row, last: anything written meanwhile goes with it (every table's
    rows are deleted with their store), and the pace of its marketing rate, kept among
    the senders' (:mod:`parley.messaging.marketing_rate`)."""
    pace.rest(session, marketing_rate.key(workspace_id))
    session.execute(delete(Workspace).where(Workspace.id == workspace_id))
