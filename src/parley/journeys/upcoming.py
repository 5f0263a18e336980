"""A customer's journey sends still waiting to go out, and an agent cancelling one.

A journey's next step is a pending ``journeys.advance`` job keyed ``journey:<run>:<step>``
(the queue is the scheduler). The send it leads to is the first send step from there, due
when the job is plus any waits in between. Cancelling one ends the run (``exited``, with
who cancelled and why): a run has one pending job at a time, so stopping its next send
stops the run, and the later steps of a skipped run would have nothing to schedule them.
The cancelled send is written to the outbox as a *skipped* message with that reason, so
the conversation's timeline shows it where it would have gone, and should the job run
anyway (it cannot: it is cancelled first, conditionally) the skipped row's key stops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.customers.models import Customer
from parley.errors import Conflict, NotFound
from parley.jobs.models import Job, JobStatus
from parley.journeys.definitions import JourneyDefinition, SendStep, WaitStep
from parley.journeys.engine import due_of, expiry_reason, quiet_waited, send_purpose
from parley.journeys.models import Journey, JourneyRun, RunStatus
from parley.journeys.service import ADVANCE, end_run, run_definitions
from parley.messaging import service as outbox
from parley.messaging.lookup import OutboxLookup
from parley.messaging.policy import decide
from parley.messaging.service import channel_preferences
from parley.messaging.types import MessageType
from parley.workspaces.models import Workspace


@dataclass(frozen=True)
class UpcomingSend:
    """One journey message waiting to go out to the customer."""

    job_id: int
    run_id: int
    journey_name: str
    step_index: int
    """The send step's index in the journey (0-based), as the outbox records it."""
    step_count: int
    message_type: str
    due_at: datetime
    channel: ChannelKind | None
    """Where the policy would send it if it went now; None when no channel would take it."""
    channel_note: str
    message_key: str
    waiting_for: str | None = None
    """What the send, due already, was put back to wait for (``jobs.waiting_for``): the
    store's pause, the customer's quiet hours, the store's marketing rate."""


@dataclass(frozen=True)
class _Pending:
    job: Job
    run: JourneyRun
    journey: Journey
    definition: JourneyDefinition
    send_index: int
    due_at: datetime


def upcoming_sends(session: Session, *, workspace_id: int, customer_id: int) -> list[UpcomingSend]:
    """The customer's scheduled journey sends, soonest first (customer of this workspace)."""
    customer = session.scalar(
        select(Customer).where(Customer.workspace_id == workspace_id, Customer.id == customer_id)
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    pending = _pending(session, workspace_id=workspace_id, customer_id=customer_id)
    if not pending:
        return []
    workspace = session.get_one(Workspace, workspace_id)
    lookup = OutboxLookup(session)
    sends = [
        _describe(item, customer=customer, workspace=workspace, lookup=lookup) for item in pending
    ]
    return sorted(sends, key=lambda send: (send.due_at, send.job_id))


def cancel_upcoming(
    session: Session, *, workspace_id: int, customer_id: int, job_id: int, agent_name: str
) -> UpcomingSend:
    """Stop one scheduled send: cancel its job, end its run, record the skipped send.

    The job is cancelled with a conditional update, so a send a worker has already picked
    up is a Conflict (it is going out now), never a half-cancel. An id that is not one of
    this customer's pending sends in this workspace is NotFound.
    """
    customer = session.scalar(
        select(Customer).where(Customer.workspace_id == workspace_id, Customer.id == customer_id)
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    found = [
        item
        for item in _pending(session, workspace_id=workspace_id, customer_id=customer_id)
        if item.job.id == job_id
    ]
    if not found:
        raise NotFound(f"scheduled send {job_id} not found")
    item = found[0]
    reason = f"cancelled by {agent_name}"
    now = utc_now()
    cancelled = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.PENDING)
        .values(status=JobStatus.CANCELLED, last_error=reason, locked_until=None, updated_at=now)
    )
    if not cancelled.rowcount:  # type: ignore[attr-defined]
        raise Conflict("that message is being sent right now and can no longer be cancelled")
    end_run(session, run_id=item.run.id, status=RunStatus.EXITED, reason=reason, now=now)
    send = _describe(
        item,
        customer=customer,
        workspace=session.get_one(Workspace, workspace_id),
        lookup=OutboxLookup(session),
    )
    _record_skipped(session, item=item, customer=customer, send=send, reason=reason, now=now)
    return send


def _pending(session: Session, *, workspace_id: int, customer_id: int) -> list[_Pending]:
    """Pending advance jobs of the customer's active runs that lead to a send (none for a
    journey switched off: its waiting runs will send nothing)."""
    runs = [
        (run, journey)
        for run, journey in session.execute(
            select(JourneyRun, Journey)
            .join(Journey, Journey.id == JourneyRun.journey_id)
            .where(
                JourneyRun.workspace_id == workspace_id,
                JourneyRun.customer_id == customer_id,
                JourneyRun.status == RunStatus.ACTIVE,
                Journey.is_enabled.is_(True),
            )
        )
    ]
    if not runs:
        return []
    by_id = {run.id: (run, journey) for run, journey in runs}
    jobs = session.scalars(
        select(Job)
        .where(
            Job.workspace_id == workspace_id,
            Job.kind == ADVANCE,
            Job.status == JobStatus.PENDING,
            or_(*(Job.idempotency_key.startswith(f"journey:{run_id}:") for run_id in by_id)),
        )
        .order_by(Job.due_at, Job.id)
    )
    definitions = run_definitions(session, runs)
    found = []
    for job in jobs:
        run_id = int(job.payload.get("run_id", 0))
        if run_id not in by_id:
            continue
        run, journey = by_id[run_id]
        definition = definitions[run_id]
        target = _next_send(definition, int(job.payload.get("step", 0)), job.due_at)
        if target is not None:
            found.append(_Pending(job, run, journey, definition, *target))
    return found


def _next_send(
    definition: JourneyDefinition, step: int, due_at: datetime
) -> tuple[int, datetime] | None:
    """The first send step from ``step`` and when it is due, counting the waits before it."""
    delay = timedelta(0)
    for index in range(step, len(definition.steps)):
        current = definition.steps[index]
        if isinstance(current, SendStep):
            return index, due_at + delay
        if isinstance(current, WaitStep):
            delay += current.duration
    return None


def _message_key(item: _Pending) -> str:
    """The outbox key the engine would give this send (fallback jobs add the retry count)."""
    exclude = item.job.payload.get("exclude") or ()
    key = f"journey:{item.run.id}:{item.send_index}"
    if exclude and item.send_index == int(item.job.payload.get("step", 0)):
        key += f":{len(exclude)}"
    return key


def _describe(
    item: _Pending, *, customer: Customer, workspace: Workspace, lookup: OutboxLookup
) -> UpcomingSend:
    step = item.definition.steps[item.send_index]
    assert isinstance(step, SendStep)
    message_type = MessageType(step.message)
    decision = decide(
        lookup.reach(customer),
        message_type=message_type,
        purpose=send_purpose(item.definition, step),
        now=max(item.due_at, utc_now()),
        templates=lookup.templates(workspace.id, message_type),
        exclude=tuple(item.job.payload.get("exclude") or ()),
        preferences=channel_preferences(workspace, message_type),
        senders=lookup.senders(workspace.id),
    )
    # A send the job reaches without a wait was due when the job's step was; past its
    # expiry the worker will skip it (a backlog after an outage), so it is not shown as going.
    # The customer's quiet hours it waited out are not held against it, as the worker
    # does not hold them.
    due, quiet = item.due_at, timedelta(0)
    if item.send_index == int(item.job.payload.get("step", 0)):
        due, quiet = due_of(item.job.payload, item.run), quiet_waited(item.job.payload)
    stale = expiry_reason(step, due=due, now=max(item.due_at, utc_now()), quiet=quiet)
    return UpcomingSend(
        job_id=item.job.id,
        run_id=item.run.id,
        journey_name=item.journey.name,
        step_index=item.send_index,
        step_count=len(item.definition.steps),
        message_type=message_type,
        due_at=item.due_at,
        channel=None if stale else decision.channel,
        channel_note=stale or ("" if decision.channel else decision.skip_reason),
        message_key=_message_key(item),
        waiting_for=item.job.waiting_for,
    )


def _record_skipped(
    session: Session,
    *,
    item: _Pending,
    customer: Customer,
    send: UpcomingSend,
    reason: str,
    now: datetime,
) -> None:
    """Leave the cancelled send in the outbox as skipped, where the timeline shows it."""
    lookup = OutboxLookup(session)
    existing = lookup.message(item.run.workspace_id, send.message_key)
    if existing is not None:
        # A retry waiting on an earlier failure: settle it with the reason.
        outbox.close_pending(
            session,
            lookup=lookup,
            workspace_id=item.run.workspace_id,
            idempotency_key=send.message_key,
            reason=reason,
        )
        return
    step = item.definition.steps[send.step_index]
    assert isinstance(step, SendStep)
    outbox.record_skipped(
        session,
        lookup=lookup,
        workspace_id=item.run.workspace_id,
        customer=customer,
        journey_run_id=item.run.id,
        step_index=send.step_index,
        idempotency_key=send.message_key,
        message_type=send.message_type,
        purpose=send_purpose(item.definition, step),
        reason=f"not sent: {reason}",
        now=now,
    )
