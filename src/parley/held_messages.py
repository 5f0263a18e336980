"""Messages held for review, and the store owner's word on each.

A worker that stopped after handing a message to the provider and before recording the
answer leaves it ``held``: the provider may have taken it, so parley never re-sends it on
its own (:func:`parley.messaging.service.hold_interrupted`). An SMS or WhatsApp message
is usually settled by the provider's own receipt, which names it
(:func:`parley.messaging.service.settle_held`). For the rest (email, a receipt that never
came), only someone who has looked at the provider's own log (Twilio's console, WhatsApp
Manager, the mail relay's) can say what happened, and this module takes that word:

- **it arrived**: the message is marked sent;
- **it did not arrive**: it is sent again, through the job that held it. The message is
  marked failed with who decided, then the job is put back as a re-drive out of the dead
  letter is (:func:`parley.jobs.queue.redrive`): a journey message goes anew under a key
  of its own after every check a first send gets (a cancelled order gets nothing), and
  the run is not walked on again; a reply goes out as written, the same message.

Both are conditional on the message still being held, so of two people deciding at once,
one decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parley.customers.models import Customer
from parley.dead_letter import journey_jobs, journey_message_keys, message_name
from parley.errors import Conflict, NotFound
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.messaging import service as outbox
from parley.messaging.models import DeliveryAttempt, Direction, Message, MessageStatus
from parley.messaging.replies import delivery_key

RELEASABLE_JOBS = (JobStatus.DONE, *queue.DEAD_LETTER)
"""The states of a job that may be put back for a held message: one still pending or
running has not settled what it holds."""


@dataclass(frozen=True)
class HeldMessage:
    message: Message
    customer: Customer | None

    @property
    def what(self) -> str:
        """The message as the store names it: "Dispatch", "Reply by Sam Agent"..."""
        return message_name(self.message)


def held_messages(session: Session, *, workspace_id: int, limit: int = 100) -> list[HeldMessage]:
    """The store's messages waiting for review, newest first."""
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.workspace_id == workspace_id, Message.status == MessageStatus.HELD)
            .order_by(Message.id.desc())
            .limit(limit)
        )
    )
    customer_ids = {m.customer_id for m in messages if m.customer_id}
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(
                Customer.workspace_id == workspace_id, Customer.id.in_(customer_ids)
            )
        )
    }
    return [HeldMessage(m, customers.get(m.customer_id or 0)) for m in messages]


def mark_arrived(
    session: Session, *, workspace_id: int, message_id: int, by: str, now: datetime
) -> Message:
    """The provider's log shows the message arrived: it is marked sent, as of the moment
    it was handed over."""
    message = _held(session, workspace_id, message_id)
    handed_over = session.scalar(
        select(DeliveryAttempt.started_at)
        .where(
            DeliveryAttempt.workspace_id == workspace_id,
            DeliveryAttempt.message_id == message.id,
        )
        .order_by(DeliveryAttempt.number.desc())
        .limit(1)
    )
    _settle(
        session,
        message,
        status=MessageStatus.SENT,
        reason=f"held for review, then found delivered by {by}",
        sent_at=handed_over or now,
        now=now,
    )
    return message


def send_again(
    session: Session, *, workspace_id: int, message_id: int, by: str, now: datetime
) -> Job:
    """The provider's log shows the message did not arrive: send it again through the job
    that held it. Refused (409) while that job is still running, or once it has been
    cleared away by housekeeping."""
    message = _held(session, workspace_id, message_id)
    job = _job_of(session, message)
    if job is None:
        raise Conflict(
            "the job that sent this message is no longer kept: send the customer a reply instead"
        )
    if job.status not in RELEASABLE_JOBS:
        raise Conflict(f"the job that sent this message is {job.status}: try again in a minute")
    _settle(
        session,
        message,
        status=MessageStatus.FAILED,
        reason=f"held for review, then found not delivered by {by}: sent again",
        sent_at=None,
        now=now,
    )
    return queue.redrive(session, job.id, workspace_id=workspace_id, statuses=RELEASABLE_JOBS)


def _held(session: Session, workspace_id: int, message_id: int) -> Message:
    message = session.scalar(
        select(Message).where(
            Message.workspace_id == workspace_id,
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND,
        )
    )
    if message is None:
        raise NotFound(f"no message {message_id}")
    if message.status != MessageStatus.HELD:
        raise Conflict(f"message {message_id} is {message.status}: only held messages are reviewed")
    return message


def _settle(
    session: Session,
    message: Message,
    *,
    status: MessageStatus,
    reason: str,
    sent_at: datetime | None,
    now: datetime,
) -> None:
    """Move a held message on, conditional on it still being held."""
    result = session.execute(
        update(Message)
        .where(Message.id == message.id, Message.status == MessageStatus.HELD)
        .values(status=status, status_reason=reason, sent_at=sent_at, status_updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"message {message.id} was reviewed by someone else just now")
    session.refresh(message)
    outbox.announce_status(session, message)


def jobs_held_messages_need(session: Session) -> set[int]:
    """The jobs every held message, in any store, would be sent again through: the
    housekeeping sweep keeps them, however long the message waits for someone's word."""
    held = session.scalars(
        select(Message).where(
            Message.status == MessageStatus.HELD, Message.direction == Direction.OUTBOUND
        )
    )
    return {job.id for message in held if (job := _job_of(session, message)) is not None}


def _job_of(session: Session, message: Message) -> Job | None:
    """The job that held the message: a reply's delivery job by its key; a journey
    message's among its run's jobs, by the keys the engine gives their messages."""
    workspace_id = message.workspace_id
    if message.journey_run_id is None:
        return session.scalar(
            select(Job).where(
                Job.workspace_id == workspace_id, Job.idempotency_key == delivery_key(message.id)
            )
        )
    jobs = journey_jobs(session, workspace_id, [message.journey_run_id])
    keys = journey_message_keys(session, workspace_id, jobs)
    holding = [job for job in jobs if message.idempotency_key in keys.get(job.id, ())]
    return max(holding, key=lambda job: job.id, default=None)
