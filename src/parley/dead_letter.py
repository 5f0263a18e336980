"""A store's dead letter in its owner's words: each job that will not run again, with the
message it was sending and to whom, for the admin page; and, the other way, the job that
would send a failed message again, for the conversation it shows in.

The queue knows jobs only (:func:`parley.jobs.queue.list_dead`); what a job was sending is
its task's business: a journey step's message is found by the keys the engine gives it
(:func:`parley.journeys.engine.message_keys`), a reply by its id. Re-driving is the
queue's (:func:`parley.jobs.queue.redrive`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from parley.customers.models import Customer
from parley.errors import Conflict, NotFound
from parley.jobs import queue
from parley.jobs.models import Job
from parley.journeys.engine import message_keys
from parley.journeys.models import Journey, JourneyRun
from parley.journeys.service import ADVANCE, run_definitions
from parley.messaging.models import Direction, Message, MessageStatus
from parley.messaging.replies import DELIVER, delivery_key


@dataclass(frozen=True)
class FailedSend:
    job: Job
    message: Message | None
    """The message the job was sending when it gave up, if it had made one."""
    customer: Customer | None

    @property
    def what(self) -> str:
        """The message as the store names it: "Dispatch", "Reply by Sam Agent"..."""
        if self.message is not None:
            return message_name(self.message)
        return "Reply" if self.job.kind == DELIVER else self.job.kind

    @property
    def why(self) -> str:
        if self.message is not None and self.message.status_reason:
            return self.message.status_reason
        return self.job.last_error or ""


def message_name(message: Message) -> str:
    """A message as the store names it: "Dispatch" for a journey's, "Reply by Sam Agent"."""
    if message.journey_run_id is None:
        return f"Reply by {message.sender}" if message.sender else "Reply"
    return str(message.message_type).replace("_", " ").capitalize()


def failed_sends(session: Session, *, workspace_id: int, limit: int = 100) -> list[FailedSend]:
    """The store's dead letter, newest first, each job with what it was sending."""
    jobs = queue.list_dead(session, workspace_id=workspace_id, limit=limit)
    messages = _messages_of(session, workspace_id, jobs)
    customer_ids = {m.customer_id for m in messages.values() if m and m.customer_id}
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(
                Customer.workspace_id == workspace_id, Customer.id.in_(customer_ids)
            )
        )
    }
    sends = []
    for job in jobs:
        message = messages[job.id]
        customer = customers.get(message.customer_id or 0) if message else None
        sends.append(FailedSend(job=job, message=message, customer=customer))
    return sends


def _messages_of(session: Session, workspace_id: int, jobs: list[Job]) -> dict[int, Message | None]:
    """Each job's message: a journey step's by its keys, a reply by its id."""
    journey_keys = journey_message_keys(session, workspace_id, jobs)
    wanted_keys = {key for keys in journey_keys.values() for key in keys}
    reply_ids = {int(job.payload["message_id"]) for job in jobs if job.kind == DELIVER}
    found = list(
        session.scalars(
            select(Message).where(
                Message.workspace_id == workspace_id,
                Message.idempotency_key.in_(wanted_keys) | Message.id.in_(reply_ids),
            )
        )
    )
    by_key = {m.idempotency_key: m for m in found if m.idempotency_key}
    by_id = {m.id: m for m in found}
    messages: dict[int, Message | None] = {}
    for job in jobs:
        if job.kind == DELIVER:
            messages[job.id] = by_id.get(int(job.payload["message_id"]))
        else:
            mine = [by_key[key] for key in journey_keys.get(job.id, ()) if key in by_key]
            messages[job.id] = _the_failed_one(mine)
    return messages


def journey_message_keys(
    session: Session, workspace_id: int, jobs: list[Job]
) -> dict[int, list[str]]:
    """The keys of the messages each journey job can have recorded, by job id."""
    payloads: dict[int, dict[str, Any]] = {
        job.id: job.payload for job in jobs if job.kind == ADVANCE
    }
    run_ids = {int(payload["run_id"]) for payload in payloads.values()}
    if not run_ids:
        return {}
    runs = {
        run.id: run
        for run in session.scalars(
            select(JourneyRun).where(
                JourneyRun.workspace_id == workspace_id, JourneyRun.id.in_(run_ids)
            )
        )
    }
    journeys = {
        journey.id: journey
        for journey in session.scalars(
            select(Journey).where(
                Journey.workspace_id == workspace_id,
                Journey.id.in_({run.journey_id for run in runs.values()}),
            )
        )
    }
    definitions = run_definitions(
        session,
        [(run, journeys[run.journey_id]) for run in runs.values() if run.journey_id in journeys],
    )
    keys: dict[int, list[str]] = {}
    for job_id, payload in payloads.items():
        run = runs.get(int(payload["run_id"]))
        if run is not None and run.id in definitions:
            keys[job_id] = message_keys(payload, definitions[run.id])
    return keys


def _the_failed_one(messages: list[Message]) -> Message | None:
    """The latest failed message among a job's, else its latest (a job that died before
    its message failed: one held for review, say)."""
    failed = [m for m in messages if m.status == MessageStatus.FAILED]
    candidates = failed or messages
    return max(candidates, key=lambda m: m.id) if candidates else None


def journey_jobs(
    session: Session,
    workspace_id: int,
    run_ids: Collection[int],
    statuses: Collection[str] | None = None,
) -> list[Job]:
    """The jobs of these journey runs (their keys start ``journey:<run>:``), in
    ``statuses`` when given."""
    if not run_ids:
        return []
    query = select(Job).where(
        Job.workspace_id == workspace_id,
        Job.kind == ADVANCE,
        or_(*(Job.idempotency_key.startswith(f"journey:{run_id}:") for run_id in run_ids)),
    )
    if statuses is not None:
        query = query.where(Job.status.in_(statuses))
    return list(session.scalars(query))


def jobs_to_send_again(
    session: Session, *, workspace_id: int, messages: list[Message]
) -> dict[int, Job]:
    """The dead-letter job that would send each of these failed messages again, by message
    id: a reply's delivery job; for a journey step, the job whose latest failed message it
    is. Two queries at most, none when nothing given failed."""
    failed = [
        m
        for m in messages
        if m.status == MessageStatus.FAILED and m.direction == Direction.OUTBOUND
    ]
    found: dict[int, Job] = {}
    reply_keys = {delivery_key(m.id): m.id for m in failed if m.journey_run_id is None}
    if reply_keys:
        for job in session.scalars(
            select(Job).where(
                Job.workspace_id == workspace_id,
                Job.idempotency_key.in_(reply_keys),
                Job.status.in_(queue.DEAD_LETTER),
            )
        ):
            found[reply_keys[str(job.idempotency_key)]] = job
    journey_messages = {m.idempotency_key: m for m in failed if m.journey_run_id is not None}
    run_ids = {m.journey_run_id for m in journey_messages.values() if m.journey_run_id}
    jobs = {job.id: job for job in journey_jobs(session, workspace_id, run_ids, queue.DEAD_LETTER)}
    for job_id, keys in journey_message_keys(session, workspace_id, list(jobs.values())).items():
        mine = [journey_messages[key] for key in keys if key in journey_messages]
        if mine:
            found[max(mine, key=lambda m: m.id).id] = jobs[job_id]
    return found


def send_again(
    session: Session, *, workspace_id: int, conversation_id: int, message_id: int
) -> Message:
    """Send again, from the conversation it shows in, a message that gave up after every
    retry (its job in the dead letter): a reply as written, a journey message anew after
    every check a first send gets. One refused for good (a number that cannot take SMS,
    the window closed) is not: it would be refused the same way."""
    message = session.scalar(
        select(Message).where(
            Message.workspace_id == workspace_id,
            Message.conversation_id == conversation_id,
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND,
        )
    )
    if message is None:
        raise NotFound(f"no message {message_id} in this conversation")
    job = jobs_to_send_again(session, workspace_id=workspace_id, messages=[message]).get(message.id)
    if job is None:
        raise Conflict("only a message that gave up after every retry can be sent again")
    queue.redrive(session, job.id, workspace_id=workspace_id)
    return message
