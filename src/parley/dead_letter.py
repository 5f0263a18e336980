"""A store's dead letter in its owner's words: each job that will not run again, with the
message it was sending and to whom, for the admin page.

The queue knows jobs only (:func:`parley.jobs.queue.list_dead`); what a job was sending is
its task's business: a journey step's message is found by the keys the engine gives it
(:func:`parley.journeys.engine.message_keys`), a reply by its id. Re-driving is the
queue's (:func:`parley.jobs.queue.redrive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.customers.models import Customer
from parley.jobs import queue
from parley.jobs.models import Job
from parley.journeys.engine import message_keys
from parley.journeys.models import Journey, JourneyRun
from parley.journeys.service import ADVANCE, definition_of
from parley.messaging.models import Message, MessageStatus
from parley.messaging.replies import DELIVER


@dataclass(frozen=True)
class FailedSend:
    job: Job
    message: Message | None
    """The message the job was sending when it gave up, if it had made one."""
    customer: Customer | None

    @property
    def what(self) -> str:
        """The message as the store names it: "Dispatch", "Reply by Sam Agent"..."""
        message = self.message
        if self.job.kind == DELIVER:
            return f"Reply by {message.sender}" if message and message.sender else "Reply"
        if message is not None and message.message_type:
            return str(message.message_type).replace("_", " ").capitalize()
        return self.job.kind

    @property
    def why(self) -> str:
        if self.message is not None and self.message.status_reason:
            return self.message.status_reason
        return self.job.last_error or ""


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
    definitions = {
        journey.id: definition_of(journey)
        for journey in session.scalars(
            select(Journey).where(
                Journey.workspace_id == workspace_id,
                Journey.id.in_({run.journey_id for run in runs.values()}),
            )
        )
    }
    keys: dict[int, list[str]] = {}
    for job_id, payload in payloads.items():
        run = runs.get(int(payload["run_id"]))
        if run is not None and run.journey_id in definitions:
            keys[job_id] = message_keys(payload, definitions[run.journey_id])
    return keys


def _the_failed_one(messages: list[Message]) -> Message | None:
    """The latest failed message among a job's, else its latest (a job that died before
    its message failed: one held for review, say)."""
    failed = [m for m in messages if m.status == MessageStatus.FAILED]
    candidates = failed or messages
    return max(candidates, key=lambda m: m.id) if candidates else None
