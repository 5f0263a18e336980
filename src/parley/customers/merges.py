"""Merging two profiles that turn out to be one shopper, and undoing it.

A merge re-points every row of the merged profile (identities, consent, orders, carts,
messages, journey runs, store events, conversations) at the kept one and records exactly
which rows moved, so an unmerge moves back those rows and nothing that arrived since. Two
open conversations become one, which keeps the stricter state of the two: a hand-off to a
person survives the merge. Two profiles holding different platform ids (two Shopify
customers) are two people, whatever else they share: merging them is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.commerce.models import Checkout, Order
from parley.customers.models import (
    ConsentRecord,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
)
from parley.errors import Conflict, NotFound
from parley.inbox.models import (
    AssistantTurn,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Owner,
)
from parley.journeys.models import JourneyRun
from parley.messaging.models import Message
from parley.store_events.models import StoreEvent

# Every table whose rows belong to a customer, by the name recorded in ``moved``.
MOVABLE: dict[str, Any] = {
    "customer_identities": CustomerIdentity,
    "consent_records": ConsentRecord,
    "orders": Order,
    "checkouts": Checkout,
    "messages": Message,
    "journey_runs": JourneyRun,
    "store_events": StoreEvent,
    "conversations": Conversation,
}
FILLABLE = ("first_name", "last_name", "email", "phone", "timezone", "country_code")


def platform_ids(session: Session, *, workspace_id: int, customer_id: int) -> set[str]:
    """The platform (Shopify) customer ids a profile holds."""
    return set(
        session.scalars(
            select(CustomerIdentity.value).where(
                CustomerIdentity.workspace_id == workspace_id,
                CustomerIdentity.customer_id == customer_id,
                CustomerIdentity.kind == IdentityKind.SHOPIFY,
            )
        )
    )


def conflict_between(
    session: Session,
    *,
    workspace_id: int,
    first_id: int,
    second_id: int,
    first_joining: str | None = None,
) -> str | None:
    """Why two profiles must not be merged, or None when nothing forbids it.

    ``first_joining`` is a platform id the first profile is about to hold (the record
    naming both is a new store customer's): it counts as the first's already.
    """
    first = platform_ids(session, workspace_id=workspace_id, customer_id=first_id)
    if first_joining:
        first.add(first_joining)
    second = platform_ids(session, workspace_id=workspace_id, customer_id=second_id)
    if first and second and first != second:
        return (
            f"they are different store customers (Shopify ids {', '.join(sorted(first))} "
            f"and {', '.join(sorted(second))})"
        )
    return None


def merge_customers(
    session: Session, *, workspace_id: int, keep_id: int, merge_id: int, reason: str
) -> CustomerMerge:
    """Fold profile ``merge_id`` into ``keep_id``; raise Conflict when they are two people."""
    if keep_id == merge_id:
        raise Conflict("a customer cannot be merged into itself")
    # Both row locks first, in id order: a message being stored for either profile holds
    # its lock (parley.inbox.service), so the rows read below include it, not leave it in
    # a conversation this merge folds away.
    locked = {
        customer_id: _live_customer(session, workspace_id=workspace_id, customer_id=customer_id)
        for customer_id in sorted((keep_id, merge_id))
    }
    kept, merged = locked[keep_id], locked[merge_id]
    conflict = conflict_between(
        session, workspace_id=workspace_id, first_id=keep_id, second_id=merge_id
    )
    if conflict:
        raise Conflict(f"not merged: {conflict}")
    now = utc_now()
    moved: dict[str, Any] = {}
    # Here, not at the top: the customer service folds profiles through this module.
    from parley.customers.service import current_consent

    standing = {
        customer_id: current_consent(session, workspace_id=workspace_id, customer_id=customer_id)
        for customer_id in (keep_id, merge_id)
    }
    folded = _fold_open_conversations(session, kept=kept, merged=merged, now=now)
    if folded:
        moved["folded_conversation"] = folded
    for name, model in MOVABLE.items():
        ids = list(
            session.scalars(
                select(model.id).where(
                    model.workspace_id == workspace_id, model.customer_id == merge_id
                )
            )
        )
        if ids:
            session.execute(update(model).where(model.id.in_(ids)).values(customer_id=keep_id))
            moved[name] = ids
    for origin, restated in _restate_refusals(session, kept=kept, standing=standing):
        # Restating the merged profile's "no", it goes back with that profile's ledger.
        if origin == merge_id:
            moved.setdefault("consent_records", []).append(restated.id)
    filled = {name: getattr(merged, name) for name in FILLABLE if not getattr(kept, name)}
    filled = {name: value for name, value in filled.items() if value}
    for name, value in filled.items():
        setattr(kept, name, value)
    if filled:
        moved["filled"] = sorted(filled)
    kept.updated_at = now
    merged.merged_into_id = kept.id
    merged.updated_at = now
    record = CustomerMerge(
        workspace_id=workspace_id,
        kept_customer_id=keep_id,
        merged_customer_id=merge_id,
        reason=reason,
        moved=moved,
        created_at=now,
    )
    session.add(record)
    session.flush()
    return record


def unmerge_customers(
    session: Session, *, workspace_id: int, merge_id: int, reason: str
) -> CustomerMerge:
    """Undo a merge: the rows it moved go back, the profile is separate again.

    Conflict while the kept profile is itself merged into another since: that merge
    holds the rows now, and is undone first.
    """
    record = session.scalar(
        select(CustomerMerge).where(
            CustomerMerge.workspace_id == workspace_id, CustomerMerge.id == merge_id
        )
    )
    if record is None:
        raise NotFound(f"merge {merge_id} not found")
    if record.undone_at is not None:
        raise Conflict(f"merge {merge_id} was already undone")
    kept = session.get(Customer, record.kept_customer_id)
    merged = session.get(Customer, record.merged_customer_id)
    assert kept is not None
    assert merged is not None
    if kept.merged_into_id is not None:
        # The rows it moved went on with the kept profile: moving back those still on it
        # would move none, and call the profile separate while the shopper's rows,
        # identities included, stay on another.
        raise Conflict(
            f"customer {kept.id} is merged into {kept.merged_into_id} since: undo that merge first"
        )
    now = utc_now()
    moved = record.moved or {}
    for name, model in MOVABLE.items():
        ids = moved.get(name) or []
        if ids:
            session.execute(
                update(model)
                .where(model.id.in_(ids), model.customer_id == record.kept_customer_id)
                .values(customer_id=record.merged_customer_id)
            )
    folded = moved.get("folded_conversation")
    if folded:
        _unfold(session, folded, now=now)
    for name in moved.get("filled", []):
        if getattr(kept, name) == getattr(merged, name):
            setattr(kept, name, None)
    merged.merged_into_id = None
    merged.updated_at = kept.updated_at = now
    record.undone_at = now
    record.undo_reason = reason
    session.flush()
    return record


def _restate_refusals(
    session: Session,
    *,
    kept: Customer,
    standing: dict[int, dict[tuple[str, str], ConsentRecord]],
) -> list[tuple[int, ConsentRecord]]:
    """Append, on the kept profile, each refusal standing on either profile before the
    merge that the other's later-written grant would now hide; with the profile it came
    from.

    The joined ledger reads its latest row, and the row written last need not be the
    later "yes": a STOP texted from a number, then a store record synced the next day with
    a "subscribed" from months before, on a profile that later takes that number. A "no"
    given on either profile holds until the shopper says yes again after it, so it is
    restated last, dated when it was given (a platform grant must be dated after that to
    overturn it), its source kept first (a refusal kept through an erasure stays one).
    """
    restated: list[tuple[int, ConsentRecord]] = []
    keys = sorted({key for latest in standing.values() for key in latest})
    for key in keys:
        statements = [
            (customer_id, latest[key]) for customer_id, latest in standing.items() if key in latest
        ]
        last = max(statements, key=lambda statement: statement[1].id)[1]
        refusal = next(
            ((owner, record) for owner, record in statements if not record.is_granted), None
        )
        if not last.is_granted or refusal is None:
            continue
        origin, record = refusal
        copy = ConsentRecord(
            workspace_id=kept.workspace_id,
            customer_id=kept.id,
            channel=record.channel,
            purpose=record.purpose,
            is_granted=False,
            source=f"{record.source[:150]}; restated at a merge",
            recorded_at=record.recorded_at,
        )
        session.add(copy)
        restated.append((origin, copy))
    if restated:
        session.flush()
    return restated


def list_merges(session: Session, *, workspace_id: int, customer_id: int) -> list[CustomerMerge]:
    """Every merge this profile took part in, newest first."""
    return list(
        session.scalars(
            select(CustomerMerge)
            .where(
                CustomerMerge.workspace_id == workspace_id,
                (CustomerMerge.kept_customer_id == customer_id)
                | (CustomerMerge.merged_customer_id == customer_id),
            )
            .order_by(CustomerMerge.id.desc())
        )
    )


def _live_customer(session: Session, *, workspace_id: int, customer_id: int) -> Customer:
    """The profile, locked (on PostgreSQL) and read afresh; Conflict if merged away."""
    customer = session.scalar(
        select(Customer)
        .where(Customer.workspace_id == workspace_id, Customer.id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    if customer.merged_into_id is not None:
        raise Conflict(f"customer {customer_id} is merged into {customer.merged_into_id}")
    return customer


def _open_conversation(session: Session, customer: Customer) -> Conversation | None:
    return session.scalar(
        select(Conversation).where(
            Conversation.workspace_id == customer.workspace_id,
            Conversation.customer_id == customer.id,
            Conversation.status != ConversationStatus.RESOLVED,
        )
    )


def _fold_open_conversations(
    session: Session, *, kept: Customer, merged: Customer, now: datetime
) -> dict[str, Any] | None:
    """Both shoppers-now-one had an open conversation: keep one, move the other's messages
    and the assistant's turns on them.

    A customer has one open conversation at a time; the folded one is closed, pointing at
    the one that took its messages, and reopened by an unmerge. The survivor takes over
    what the folded one promised the customer (:func:`_carry_over`).
    """
    target = _open_conversation(session, kept)
    source = _open_conversation(session, merged)
    if target is None or source is None:
        return None
    message_ids = _move_to(session, Message, source=source, target=target)
    turn_ids = _move_to(session, AssistantTurn, source=source, target=target)
    folded = {
        "conversation_id": source.id,
        "into_conversation_id": target.id,
        "status": source.status,
        "message_ids": message_ids,
        "turn_ids": turn_ids,
    }
    _carry_over(session, target=target, source=source, now=now)
    source.status = ConversationStatus.RESOLVED
    source.merged_into_id = target.id
    source.resolved_at = source.updated_at = now
    return folded


def _move_to(
    session: Session,
    model: type[Message] | type[AssistantTurn],
    *,
    source: Conversation,
    target: Conversation,
) -> list[int]:
    """Re-point ``source``'s rows of ``model`` at ``target``; the ids of those moved."""
    ids = list(
        session.scalars(
            select(model.id).where(
                model.workspace_id == source.workspace_id, model.conversation_id == source.id
            )
        )
    )
    if ids:
        session.execute(update(model).where(model.id.in_(ids)).values(conversation_id=target.id))
    return ids


# How near the top of the agents' list a status keeps a conversation.
_PROMINENCE: dict[str, int] = {
    ConversationStatus.SNOOZED: 0,
    ConversationStatus.PENDING: 1,
    ConversationStatus.OPEN: 2,
}


def _carry_over(
    session: Session, *, target: Conversation, source: Conversation, now: datetime
) -> None:
    """The surviving conversation keeps the stricter state of the two, each change on its
    timeline:

    - a person answers if either was handed to one, for that hand-off's reason: the
      assistant stays silent from a hand-off until an agent hands the conversation back,
      and a merge is no agent;
    - the teammate either was assigned to, the survivor's own first;
    - the status nearer the agents (open, then pending, then snoozed): a customer waiting
      in the folded conversation is not hidden by the survivor's snooze;
    - the earlier wait and the later message from the customer, so the list orders it
      and counts it unread as it did the folded one.

    An unmerge leaves these as they are: a person may have answered since, and handing
    the conversation back is theirs to decide.
    """

    def record(kind: EventKind, detail: dict[str, Any]) -> None:
        session.add(
            ConversationEvent(
                workspace_id=target.workspace_id,
                conversation_id=target.id,
                kind=kind,
                actor="merge",
                detail=detail,
                created_at=now,
            )
        )

    if source.owner == Owner.HUMAN and target.owner != Owner.HUMAN:
        target.owner = Owner.HUMAN
        target.handoff_reason = source.handoff_reason
        record(
            EventKind.HANDED_OFF,
            {"reason": source.handoff_reason, "from_conversation_id": source.id},
        )
    if target.assignee_id is None and source.assignee_id is not None:
        record(EventKind.ASSIGNED, {"from": None, "to": source.assignee_id})
        target.assignee_id = source.assignee_id
    if _PROMINENCE[source.status] > _PROMINENCE[target.status]:
        record(EventKind.STATUS_CHANGED, {"from": target.status, "to": source.status})
        target.status = source.status
        target.snoozed_until = source.snoozed_until
    target.waiting_since = min(_known(target.waiting_since, source.waiting_since), default=None)
    target.last_inbound_at = max(
        _known(target.last_inbound_at, source.last_inbound_at), default=None
    )
    if source.last_message_at > target.last_message_at:
        target.last_message_at = source.last_message_at
        target.channel = source.channel or target.channel
    target.updated_at = now


def _known(*moments: datetime | None) -> list[datetime]:
    return [moment for moment in moments if moment is not None]


def _unfold(session: Session, folded: dict[str, Any], *, now: datetime) -> None:
    source = session.get(Conversation, folded["conversation_id"])
    if source is None:
        return
    into = folded["into_conversation_id"]
    for model, ids in (
        (Message, folded.get("message_ids") or []),
        (AssistantTurn, folded.get("turn_ids") or []),
    ):
        if ids:
            session.execute(
                update(model)
                .where(model.id.in_(ids), model.conversation_id == into)
                .values(conversation_id=source.id)
            )
    source.status = folded["status"]
    source.merged_into_id = None
    source.resolved_at = None
    source.updated_at = now
