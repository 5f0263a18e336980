"""Advancing journey runs, one ``journeys.advance`` job per step.

A job names a run and the step to reach. Waits schedule the next job at a later
``due_at`` (the queue is the scheduler: a restart loses nothing); conditions test the
run's facts; a send first re-checks the journey's exit rules against the store's latest
events and state (a cancelled order gets no dispatch message, however late the
cancellation came), then goes through the outbox. A send refused permanently on one
channel falls back to the next channel the policy allows. A provider refusing the store's
own account (bad credentials) falls back too; where no other channel would take the
message, it is retried like an outage instead, to go out once the settings are fixed.

A job re-driven out of the dead letter (``parley jobs retry``) whose send had failed
re-sends that one message under a key of its own, after the same checks a first send
gets; the run had already moved on when the job died, so it is not moved on again.

The worker hands a whole claimed batch to :meth:`AdvanceJourney.preload`, which reads
the runs, orders, fulfilments, customers and exit events of every job in a few bulk
queries (:class:`RunLookup`); each job then only writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from parley.channels.adapters import ChannelAdapters
from parley.channels.base import AccountChannelError, ChannelAdapter, ChannelKind, SendResult
from parley.clock import utc_now
from parley.commerce.models import Fulfillment, Order
from parley.customers.models import Customer
from parley.db.scoped import in_workspaces, one_of
from parley.jobs import queue
from parley.jobs.queue import JOBS, REDRIVE, ClaimedJob
from parley.jobs.worker import Done, Later, Outcome, Retry, RetryLater
from parley.journeys.definitions import (
    Condition,
    ConditionStep,
    JourneyDefinition,
    SendStep,
    WaitStep,
)
from parley.journeys.models import Journey, JourneyRun, RunStatus
from parley.journeys.service import ADVANCE, end_run, end_runs, run_definitions, triggered_at
from parley.messaging import marketing_rate, pace
from parley.messaging import service as outbox
from parley.messaging.lookup import OutboxLookup
from parley.messaging.models import MessageStatus
from parley.messaging.pace import Booking, Pacer
from parley.messaging.service import (
    OutboxSettings,
    PreparedSend,
    QueuedSend,
    Result,
    UnrecordedSend,
)
from parley.messaging.templates import TemplateRenderer
from parley.messaging.types import DEFAULT_PURPOSES, Purpose, WaitingFor
from parley.store_events.models import StoreEvent
from parley.workspaces.models import Workspace

SEND_TIMEOUT_MARGIN_SECONDS = 5.0
RACED_RETRY_SECONDS = 5.0
"""A job whose message another worker recorded first waits this long before resuming."""
RESEND = "resend"
"""Payload flag of a re-send's fallback job: it re-sends too, on the next channel."""
DUE = "due"
"""Payload key: when a scheduled step was due (ISO), which retries and re-drives keep."""
QUIET_WAITED = "quiet_waited"
"""Payload key: the seconds the step's send has waited for the customer's quiet hours to
end, which do not count against its expiry (:func:`expiry_reason`)."""


class Walk(Enum):
    ON = "on"
    """A send step is done with (sent before, skipped, expired): the walk goes on."""


@dataclass(frozen=True)
class StepSend:
    """A send step waiting for its provider call."""

    run_id: int
    workspace_id: int
    step: int
    step_count: int
    exclude: tuple[str, ...]
    lane: Purpose
    """The journey's lane, which the run's next jobs wait in too."""
    send: PreparedSend
    redrive: int = 0
    resend: bool = False


@dataclass(frozen=True)
class PlannedStep:
    """A send step whose message is decided and rendered (or waits for its retry) but is
    not yet recorded ``sending``: the batch's messages are recorded together, where their
    senders have room (:meth:`AdvanceJourney.record_batch`)."""

    run_id: int
    workspace_id: int
    step: int
    step_count: int
    exclude: tuple[str, ...]
    lane: Purpose
    send: UnrecordedSend | QueuedSend
    redrive: int = 0
    resend: bool = False
    expires_at: datetime | None = None
    """Past this its message is no longer sent (:func:`expiry_reason`): a booking for a
    later time is given back at once (:meth:`AdvanceJourney.record_batch`)."""

    def recorded(self, send: PreparedSend) -> StepSend:
        return StepSend(
            run_id=self.run_id,
            workspace_id=self.workspace_id,
            step=self.step,
            step_count=self.step_count,
            exclude=self.exclude,
            lane=self.lane,
            send=send,
            redrive=self.redrive,
            resend=self.resend,
        )


@dataclass(frozen=True)
class RunFacts:
    workspace: Workspace
    run: JourneyRun
    definition: JourneyDefinition
    journey_is_enabled: bool
    customer: Customer | None
    order: Order | None
    fulfillment: Fulfillment | None


JOURNEY_SWITCHED_OFF = "journey switched off"
"""A run's exit reason when its journey is switched off while the run waits."""
NO_CUSTOMER = "no customer to message (no email, phone or platform id)"


@dataclass(frozen=True)
class ExitEvent:
    workspace_id: int
    type: str
    order_external_id: str | None
    customer_id: int | None
    occurred_at: datetime


# The columns an ExitEvent is built from, in its field order.
EXIT_EVENT_COLUMNS = (
    StoreEvent.workspace_id,
    StoreEvent.type,
    StoreEvent.order_external_id,
    StoreEvent.customer_id,
    StoreEvent.occurred_at,
)


class RunLookup:
    """What advancing a batch of runs reads, loaded in bulk, read-through for the rest."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.outbox = OutboxLookup(session)
        self._runs: dict[int, JourneyRun | None] = {}
        self._journeys: dict[int, Journey] = {}
        self._definitions: dict[int, JourneyDefinition] = {}
        """By run id: the version of its journey the run started on."""
        self._workspaces: dict[int, Workspace] = {}
        self._orders: dict[tuple[int, str], Order | None] = {}
        self._fulfillments: dict[tuple[int, str], Fulfillment | None] = {}
        self._customers: dict[int, Customer | None] = {}
        self._exit_events: dict[tuple[int, str], list[ExitEvent]] = {}

    def preload(self, jobs: Iterable[ClaimedJob]) -> None:
        jobs = list(jobs)
        run_ids = [int(job.payload["run_id"]) for job in jobs]
        session = self.session
        runs = list(
            session.scalars(select(JourneyRun).where(one_of(session, JourneyRun.id, run_ids)))
        )
        self._runs.update(dict.fromkeys(run_ids))
        self._runs.update({run.id: run for run in runs})
        for journey in session.scalars(
            select(Journey).where(one_of(session, Journey.id, {run.journey_id for run in runs}))
        ):
            self._journeys[journey.id] = journey
        journeys = self._journeys
        pairs = [(run, journeys[run.journey_id]) for run in runs if run.journey_id in journeys]
        self._definitions.update(run_definitions(session, pairs))
        for workspace in session.scalars(
            select(Workspace).where(
                one_of(session, Workspace.id, {run.workspace_id for run in runs})
            )
        ):
            self._workspaces[workspace.id] = workspace
        order_keys = {(r.workspace_id, r.order_external_id) for r in runs if r.order_external_id}
        self._orders.update(dict.fromkeys(order_keys))
        self._orders.update(_by_external(session, Order, order_keys))
        fulfillment_keys = {
            (r.workspace_id, r.context["fulfillment_external_id"])
            for r in runs
            if (r.context or {}).get("fulfillment_external_id")
        }
        self._fulfillments.update(dict.fromkeys(fulfillment_keys))
        self._fulfillments.update(_by_external(session, Fulfillment, fulfillment_keys))
        customer_ids = {r.customer_id for r in runs if r.customer_id} | {
            o.customer_id for o in self._orders.values() if o and o.customer_id
        }
        self._customers.update(dict.fromkeys(customer_ids))
        for customer in session.scalars(
            select(Customer).where(one_of(session, Customer.id, customer_ids))
        ):
            self._customers[customer.id] = customer
        self._load_exit_events(runs)
        keys: list[tuple[int, str]] = []
        for job in jobs:
            run = self._runs.get(int(job.payload["run_id"]))
            if run is not None and run.id in self._definitions:
                definition = self._definitions[run.id]
                keys += [(run.workspace_id, key) for key in message_keys(job.payload, definition)]
        self.outbox.preload(
            customers=[c for c in self._customers.values() if c is not None],
            message_keys=keys,
        )

    def _load_exit_events(self, runs: list[JourneyRun]) -> None:
        exit_types = {
            str(rule.event)
            for run in runs
            if run.id in self._definitions
            for rule in self._definitions[run.id].exit
        }
        orders = {(r.workspace_id, r.order_external_id) for r in runs if r.order_external_id}
        customers = {(r.workspace_id, r.customer_id) for r in runs if r.customer_id}
        # Every scope asked about gets a list, empty when it has no exit event.
        for workspace_id, order_id in orders:
            self._exit_events.setdefault((workspace_id, f"order:{order_id}"), [])
        for workspace_id, customer_id in customers:
            self._exit_events.setdefault((workspace_id, f"customer:{customer_id}"), [])
        if not exit_types or not (orders or customers):
            return
        session = self.session
        query = select(*EXIT_EVENT_COLUMNS).where(one_of(session, StoreEvent.type, exit_types))
        conditions = []
        if orders:
            conditions.append(
                in_workspaces(
                    session, StoreEvent.workspace_id, StoreEvent.order_external_id, orders
                )
            )
        if customers:
            conditions.append(
                in_workspaces(session, StoreEvent.workspace_id, StoreEvent.customer_id, customers)
            )
        for row in self.session.execute(query.where(or_(*conditions))):
            event = ExitEvent(*row)
            if event.order_external_id and (event.workspace_id, event.order_external_id) in orders:
                self._exit_events[(event.workspace_id, f"order:{event.order_external_id}")].append(
                    event
                )
            if event.customer_id and (event.workspace_id, event.customer_id) in customers:
                self._exit_events[(event.workspace_id, f"customer:{event.customer_id}")].append(
                    event
                )

    def run(self, run_id: int, workspace_id: int | None) -> JourneyRun | None:
        if run_id not in self._runs:
            self._runs[run_id] = self.session.get(JourneyRun, run_id)
        run = self._runs[run_id]
        return run if run is not None and run.workspace_id == workspace_id else None

    def facts(self, run: JourneyRun) -> RunFacts:
        if run.journey_id not in self._journeys:
            journey = self.session.get(Journey, run.journey_id)
            assert journey is not None
            self._journeys[journey.id] = journey
        journey = self._journeys[run.journey_id]
        if run.id not in self._definitions:
            self._definitions.update(run_definitions(self.session, [(run, journey)]))
        if run.workspace_id not in self._workspaces:
            workspace = self.session.get(Workspace, run.workspace_id)
            assert workspace is not None
            self._workspaces[run.workspace_id] = workspace
        order = self._external(self._orders, Order, run.workspace_id, run.order_external_id)
        fulfillment = self._external(
            self._fulfillments,
            Fulfillment,
            run.workspace_id,
            (run.context or {}).get("fulfillment_external_id"),
        )
        customer_id = run.customer_id or (order.customer_id if order else None)
        customer = None
        if customer_id:
            if customer_id not in self._customers:
                self._customers[customer_id] = self.session.get(Customer, customer_id)
            customer = self._customers[customer_id]
        return RunFacts(
            workspace=self._workspaces[run.workspace_id],
            run=run,
            definition=self._definitions[run.id],
            journey_is_enabled=journey.is_enabled,
            customer=customer,
            order=order,
            fulfillment=fulfillment,
        )

    def _external(
        self,
        cache: dict[tuple[int, str], Any],
        model: Any,
        workspace_id: int,
        external_id: str | None,
    ) -> Any:
        if not external_id:
            return None
        key = (workspace_id, external_id)
        if key not in cache:
            cache.update(_by_external(self.session, model, {key}))
            cache.setdefault(key, None)
        return cache[key]

    def exit_events(self, workspace_id: int, scope: str) -> list[ExitEvent] | None:
        """Preloaded exit events for ``order:<id>`` / ``customer:<id>``; None if not loaded."""
        return self._exit_events.get((workspace_id, scope))


def _by_external(
    session: Session, model: Any, keys: set[tuple[int, str]]
) -> dict[tuple[int, str], Any]:
    if not keys:
        return {}
    rows = session.scalars(
        select(model).where(in_workspaces(session, model.workspace_id, model.external_id, keys))
    )
    return {(row.workspace_id, row.external_id): row for row in rows}


def message_keys(payload: Mapping[str, Any], definition: JourneyDefinition) -> list[str]:
    """The keys of the messages a job (by its payload) can have recorded: the send step it
    starts at, or the sends its conditions lead to before the next wait. A retried job
    walks again from the step it was enqueued for, so a message it left waiting belongs
    to the send step behind any conditions, whichever way they come out this time. A
    re-driven job's re-sends have keys of their own (:func:`_message_key`)."""
    redrive = int(payload.get(REDRIVE, 0))
    return sorted(
        key
        for _, base in _base_sends(payload, definition)
        for key in [base, *(f"{base}:r{n}" for n in range(1, redrive + 1))]
    )


def _base_sends(payload: Mapping[str, Any], definition: JourneyDefinition) -> list[tuple[int, str]]:
    """The send steps :func:`message_keys` speaks of, each with its first message's key."""
    run_id, start = payload["run_id"], int(payload["step"])
    exclude = payload.get("exclude", ())
    keys: list[tuple[int, str]] = []
    steps = definition.steps
    reachable, seen = [start], set()
    while reachable:
        step = reachable.pop()
        if step in seen or step >= len(steps):
            continue
        seen.add(step)
        current = steps[step]
        if isinstance(current, SendStep):
            suffix = f":{len(exclude)}" if exclude and step == start else ""
            keys.append((step, f"journey:{run_id}:{step}{suffix}"))
        elif isinstance(current, ConditionStep):
            reachable.append(step + 1)
            if current.otherwise == "skip_next":
                reachable.append(step + 2)
    return keys


def _message_key(
    lookup: RunLookup, workspace_id: int, base: str, job: ClaimedJob
) -> tuple[str, bool]:
    """The key a send step's message goes under, and whether it re-sends a failed one.

    A job re-driven out of the dead letter re-sends when the latest message of its step
    failed, under ``<key>:r<n>`` for its n-th re-drive: the failed message stays as it
    was, with its reason. A failed message has settled (the provider refused it, or every
    attempt ended in an error), so sending anew cannot deliver it twice. Otherwise the
    job resumes the latest message as a retried job does: one in flight when the job
    died is held for review, never re-sent blindly.
    """
    redrive = int(job.payload.get(REDRIVE, 0))
    if job.payload.get(RESEND):
        return f"{base}:r{redrive}", True
    for n in range(redrive - 1, -1, -1):
        key = f"{base}:r{n}" if n else base
        found = lookup.outbox.message(workspace_id, key)
        if found is not None:
            if found.status == MessageStatus.FAILED:
                return f"{base}:r{redrive}", True
            return key, False
    return base, False


def _resends(lookup: RunLookup, job: ClaimedJob, run: JourneyRun, facts: RunFacts) -> bool:
    if not job.payload.get(REDRIVE):
        return False
    return any(
        _message_key(lookup, run.workspace_id, base, job)[1]
        for _, base in _base_sends(job.payload, facts.definition)
    )


class AdvanceJourney:
    """The ``journeys.advance`` task."""

    kind = ADVANCE

    def __init__(
        self,
        *,
        adapters: Mapping[ChannelKind, ChannelAdapter],
        renderer: TemplateRenderer,
        outbox_settings: OutboxSettings,
        send_timeout_seconds: float = 10.0,
        pacer: Pacer | None = None,
    ) -> None:
        self.adapters = ChannelAdapters.of(adapters)
        self.renderer = renderer
        self.outbox_settings = outbox_settings
        self.pacer = pacer
        self.send_timeout = send_timeout_seconds + SEND_TIMEOUT_MARGIN_SECONDS

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> RunLookup:
        lookup = RunLookup(session)
        lookup.preload(jobs)
        return lookup

    def prepare(
        self, session: Session, job: ClaimedJob, batch: RunLookup | None
    ) -> PlannedStep | Later | None:
        lookup = batch or RunLookup(session)
        run = lookup.run(int(job.payload["run_id"]), job.workspace_id)
        if run is None:
            return None
        facts = lookup.facts(run)
        resend = _resends(lookup, job, run, facts)
        if self._run_ended(session, lookup, job, facts, resend=resend):
            return None
        step = int(job.payload["step"])
        exclude = tuple(job.payload.get("exclude", ()))
        steps = facts.definition.steps
        while step < len(steps):
            current = steps[step]
            if isinstance(current, WaitStep):
                if resend:
                    break
                _schedule(
                    session, run, facts.definition, step + 1, due_at=job.due_at + current.duration
                )
                return None
            if isinstance(current, ConditionStep):
                after = self._after_condition(session, lookup, job, facts, step, resend=resend)
                if after is None:
                    return None
                step = after
                continue
            assert isinstance(current, SendStep)
            sent = self._send(session, lookup, job, facts, step, exclude, resend=resend)
            if sent is not Walk.ON:
                return sent
            step += 1
            exclude = ()
        self._walked_past_the_end(session, lookup, job, facts, resend=resend)
        return None

    def _send(
        self,
        session: Session,
        lookup: RunLookup,
        job: ClaimedJob,
        facts: RunFacts,
        step: int,
        exclude: tuple[str, ...],
        *,
        resend: bool,
    ) -> PlannedStep | Later | Literal[Walk.ON] | None:
        """A send step: its message to record and send, or to send again after a retry;
        :class:`Later` when it must wait (a marketing text in the customer's quiet hours);
        None when the walk stops here (the run exits, the message is decided already for
        a re-send); Walk.ON when this step is done with (sent before, skipped, expired)."""
        run, current = facts.run, facts.definition.steps[step]
        assert isinstance(current, SendStep)
        reason = exit_reason(session, facts, lookup) or (
            NO_CUSTOMER if facts.customer is None else None
        )
        if reason is not None:
            self._stop(session, lookup, job, facts, reason, resend=resend)
            if reason == JOURNEY_SWITCHED_OFF and not resend:
                self._drop_bookings(session, lookup, job)
            return None
        assert facts.customer is not None
        key, _ = _message_key(
            lookup,
            run.workspace_id,
            f"journey:{run.id}:{step}" + (f":{len(exclude)}" if exclude else ""),
            job,
        )
        due, quiet = due_of(job.payload, run), quiet_waited(job.payload)
        stale = expiry_reason(current, due=due, now=utc_now(), quiet=quiet)
        if stale is not None and resend:
            self._not_resent(session, lookup, job, facts, stale)
            return None
        if stale is not None:
            self._expire(session, lookup, facts, step, key, stale)
            return Walk.ON
        send = outbox.plan_message(
            session,
            lookup=lookup.outbox,
            workspace=facts.workspace,
            customer=facts.customer,
            message_type=current.message,
            purpose=send_purpose(facts.definition, current),
            idempotency_key=key,
            order=facts.order,
            fulfillment=facts.fulfillment,
            renderer=self.renderer,
            outbox=self.outbox_settings,
            journey_run_id=run.id,
            step_index=step,
            exclude_channels=exclude,
        )
        if isinstance(send, Later):
            if send.cause == WaitingFor.QUIET_HOURS:
                _note_quiet_wait(session, job, until=send.until, now=utc_now())
            return send
        if isinstance(send, outbox.Withdrawn):
            return self._withdrawn(session, lookup, job, facts, step, exclude, send, resend=resend)
        definition = facts.definition
        place = (run.id, run.workspace_id, step, len(definition.steps), exclude, definition.lane)
        ttl = current.expires_after
        if send is not None:
            return PlannedStep(
                *place,
                send,
                int(job.payload.get(REDRIVE, 0)),
                resend,
                expires_at=None if ttl is None else due + quiet + ttl,
            )
        if resend:
            return None  # the re-send is decided: sent already, or skipped with its reason
        return Walk.ON

    def _drop_bookings(self, session: Session, lookup: RunLookup, job: ClaimedJob) -> None:
        """A send the store switched off, that had been booked a time by its pace (the
        store's marketing rate, or its sender's): the rest of its journey's bookings are
        for sends that will not come either, and would each hold their place until their
        time, the store's next sends booked behind them. So every send of the store
        waiting for that pace is due now, booked again (or ended) once, and the bookings
        are dropped. Brought forward they hold no booking, so their own ends do not come
        back here: one switch costs one re-plan.

        On a sender the deployment's stores share, the other stores' bookings go too (one
        row holds them all): their sends keep their times, and one that finds its place
        taken then is booked again; never faster than the sender allows.
        """
        workspace_id = job.workspace_id
        assert workspace_id is not None
        cause = session.scalar(
            select(JOBS.c.waiting_for).where(
                JOBS.c.id == job.id, JOBS.c.workspace_id == workspace_id
            )
        )
        if cause == WaitingFor.MARKETING_RATE:
            marketing_rate.drop_bookings(session, workspace_id=workspace_id, now=utc_now())
        elif cause == WaitingFor.SENDER_PACE and self.pacer is not None:
            pace.drop_bookings(
                session, self.pacer.keys_of_store(lookup.outbox.senders(workspace_id))
            )
            queue.bring_forward(
                session,
                workspace_id=workspace_id,
                waiting_for=WaitingFor.SENDER_PACE,
                now=utc_now(),
            )

    def _withdrawn(
        self,
        session: Session,
        lookup: RunLookup,
        job: ClaimedJob,
        facts: RunFacts,
        step: int,
        exclude: tuple[str, ...],
        withdrawn: outbox.Withdrawn,
        *,
        resend: bool,
    ) -> Literal[Walk.ON] | None:
        """A message that waited for its retry and may no longer go on its channel, now
        skipped with the reason: where the policy would send it on another channel, a job
        of its own offers it there, as after a provider's permanent refusal; otherwise
        the step is done with."""
        others = (*exclude, str(withdrawn.channel))
        if withdrawn.channel is not None and _another_channel_takes(
            lookup, facts, step, others, self.outbox_settings.sending_domain
        ):
            run = facts.run
            follow_up = _next_channel(
                job,
                run_id=run.id,
                workspace_id=run.workspace_id,
                lane=facts.definition.lane,
                step=step,
                exclude=list(others),
                redrive=int(job.payload.get(REDRIVE, 0)),
                resend=resend,
            )
            queue.enqueue_many(session, [follow_up])
            return None
        return None if resend else Walk.ON

    def _after_condition(
        self,
        session: Session,
        lookup: RunLookup,
        job: ClaimedJob,
        facts: RunFacts,
        step: int,
        *,
        resend: bool,
    ) -> int | None:
        """The step a condition leads to, or None when it stops the walk: a condition
        that fails stops a re-send whatever its ``otherwise``."""
        current = facts.definition.steps[step]
        assert isinstance(current, ConditionStep)
        if holds(current.condition, facts):
            return step + 1
        condition = current.condition
        reason = current.reason or f"condition not met: {condition.path} {condition.op}"
        if resend or current.otherwise == "exit":
            self._stop(session, lookup, job, facts, reason, resend=resend)
            return None
        return step + 2

    @staticmethod
    def _expire(
        session: Session, lookup: RunLookup, facts: RunFacts, step: int, key: str, reason: str
    ) -> None:
        """A send past its expiry is skipped with why (one waiting for a retry too), and
        the run walks on."""
        outbox.skip_pending(
            session,
            lookup=lookup.outbox,
            workspace_id=facts.run.workspace_id,
            idempotency_key=key,
            reason=reason,
        )
        _record_skipped(session, lookup, facts, step, key, reason)

    def _walked_past_the_end(
        self, session: Session, lookup: RunLookup, job: ClaimedJob, facts: RunFacts, *, resend: bool
    ) -> None:
        if resend:
            self._not_resent(session, lookup, job, facts, "its conditions now pass it by")
        else:
            _end(session, facts.run, RunStatus.COMPLETED, None, utc_now())

    def _run_ended(
        self, session: Session, lookup: RunLookup, job: ClaimedJob, facts: RunFacts, *, resend: bool
    ) -> bool:
        """Whether the run is over for this job (and what it left is settled). A re-send
        may follow a run that completed while its job lay dead, not one that exited."""
        run = facts.run
        if run.status == RunStatus.ACTIVE or (resend and run.status == RunStatus.COMPLETED):
            return False
        reason = run.exit_reason or str(run.status)
        reason = f"the journey ended ({reason})" if resend else reason
        self._stop(session, lookup, job, facts, reason, resend=resend, end=False)
        return True

    def _stop(
        self,
        session: Session,
        lookup: RunLookup,
        job: ClaimedJob,
        facts: RunFacts,
        reason: str,
        *,
        resend: bool,
        end: bool = True,
    ) -> None:
        """No send this time: a re-send is recorded skipped; a run's walk settles what
        the job left pending and, unless the run has ended already, exits the run."""
        if resend:
            self._not_resent(session, lookup, job, facts, reason)
            return
        self._close_pending(session, lookup, job, facts.run, reason)
        if end:
            _end(session, facts.run, RunStatus.EXITED, reason, utc_now())

    @staticmethod
    def _close_pending(
        session: Session, lookup: RunLookup, job: ClaimedJob, run: JourneyRun, reason: str
    ) -> None:
        """Settle a message this job left in flight or waiting for a retry."""
        for key in message_keys(job.payload, lookup.facts(run).definition):
            outbox.close_pending(
                session,
                lookup=lookup.outbox,
                workspace_id=run.workspace_id,
                idempotency_key=key,
                reason=reason,
            )

    def _not_resent(
        self, session: Session, lookup: RunLookup, job: ClaimedJob, facts: RunFacts, reason: str
    ) -> None:
        """A re-send the store's state no longer calls for: recorded skipped, with why,
        beside the failed message (one this job left waiting for a retry is settled)."""
        run, definition = facts.run, facts.definition
        self._close_pending(session, lookup, job, run, reason)
        for index, base in _base_sends(job.payload, definition):
            key, resend = _message_key(lookup, run.workspace_id, base, job)
            if resend and isinstance(definition.steps[index], SendStep):
                _record_skipped(session, lookup, facts, index, key, f"not re-sent: {reason}")

    def record_batch(
        self, session: Session, items: list[tuple[ClaimedJob, PlannedStep]]
    ) -> list[StepSend | Later]:
        """Record the batch's messages ``sending`` together, each where its sender has
        room; a job whose sender has none waits for it, nothing recorded. One booked for
        a time past its message's expiry gives its place back (it will expire then), so
        the sends booked after it are not held back by it.

        A message whose key another worker recorded first (a job reclaimed while its
        first worker was still preparing it) stops the job here: it is tried again later
        and then resumes from that message, as any retried job does.
        """
        recorded = outbox.record_sends(session, [work.send for _, work in items], pacer=self.pacer)
        pace.unbook(
            session,
            [
                send.slot
                for (_, work), send in zip(items, recorded, strict=True)
                if isinstance(send, Booking)
                and send.slot is not None
                and work.expires_at is not None
                and send.until > work.expires_at
            ],
        )
        steps: list[StepSend | Later] = []
        for (job, work), send in zip(items, recorded, strict=True):
            if send is None:
                raise RetryLater(
                    f"job {job.id}: another worker recorded its message first",
                    retry_after=RACED_RETRY_SECONDS,
                )
            steps.append(send if isinstance(send, Later) else work.recorded(send))
        return steps

    async def perform(self, work: StepSend) -> SendResult:
        adapter = self.adapters.for_message(work.send.channel, work.send.outbound)
        async with asyncio.timeout(self.send_timeout):
            return await adapter.send(work.send.outbound)

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, StepSend, Any]]
    ) -> list[Outcome]:
        """Record every answer of the batch, then move each run on (or retry, or fall back)."""
        refused = any(isinstance(result, AccountChannelError) for _, _, result in items)
        lookup = RunLookup(session) if refused else None
        answers = [
            (
                work.send,
                _outage_if_nowhere_else(lookup, work, result, self.outbox_settings.sending_domain),
                job.attempts >= job.max_attempts,
            )
            for job, work, result in items
        ]
        recorded = outbox.record_results(session, answers)
        outcomes: list[Outcome] = []
        follow_ups: list[dict[str, Any]] = []
        completed: list[int] = []
        for (job, work, _), answer in zip(items, recorded, strict=True):
            if answer.result is Result.RETRY:
                outcomes.append(Retry(answer.reason, answer.retry_after))
                continue
            if answer.result is Result.FAILED and not answer.is_exhausted:
                # Permanent refusal on this channel, on any attempt (the last one's too):
                # let the policy try the next one.
                follow_ups.append(
                    _next_channel(
                        job,
                        run_id=work.run_id,
                        workspace_id=work.workspace_id,
                        lane=work.lane,
                        step=work.step,
                        exclude=[*work.exclude, str(answer.channel)],
                        redrive=work.redrive,
                        resend=work.resend,
                    )
                )
                outcomes.append(Done())
                continue
            if work.resend:  # the run moved on when this job died
                outcomes.append(Retry(answer.reason) if answer.result is Result.FAILED else Done())
                continue
            if work.step + 1 < work.step_count:
                follow_ups.append(
                    _advance(
                        job,
                        run_id=work.run_id,
                        workspace_id=work.workspace_id,
                        lane=work.lane,
                        step=work.step + 1,
                    )
                )
            else:
                completed.append(work.run_id)
            # A send that used up its attempts still moves the run on; its job is dead-lettered.
            outcomes.append(Retry(answer.reason) if answer.result is Result.FAILED else Done())
        queue.enqueue_many(session, follow_ups)
        end_runs(session, run_ids=completed, status=RunStatus.COMPLETED, now=utc_now())
        return outcomes


def _record_skipped(
    session: Session, lookup: RunLookup, facts: RunFacts, step: int, key: str, reason: str
) -> None:
    """The send step's message under ``key``, recorded skipped with why (a key recorded
    already is left as it is)."""
    run, definition = facts.run, facts.definition
    current = definition.steps[step]
    assert isinstance(current, SendStep)
    outbox.record_skipped(
        session,
        lookup=lookup.outbox,
        workspace_id=run.workspace_id,
        customer=facts.customer,
        journey_run_id=run.id,
        step_index=step,
        idempotency_key=key,
        message_type=current.message,
        purpose=send_purpose(definition, current),
        reason=reason,
        now=utc_now(),
    )


def _outage_if_nowhere_else(
    lookup: RunLookup | None, work: StepSend, result: Any, sending_domain: str | None
) -> Any:
    """A provider's refusal of the store's account, as the run should take it.

    Where another channel would take the message it falls back, like any refusal; where
    none would, it is retried like an outage, so the message waits for the settings to
    be fixed (and, past its attempts, waits in the dead letter) instead of failing.
    """
    if lookup is None or not isinstance(result, AccountChannelError):
        return result
    run = lookup.run(work.run_id, work.workspace_id)
    if run is None:
        return result.as_outage()
    others = (*work.exclude, str(work.send.channel))
    if _another_channel_takes(lookup, lookup.facts(run), work.step, others, sending_domain):
        return result
    return result.as_outage()


def _another_channel_takes(
    lookup: RunLookup,
    facts: RunFacts,
    step: int,
    exclude: tuple[str, ...],
    sending_domain: str | None,
) -> bool:
    """Whether the policy would send this send step's message now on a channel outside
    ``exclude``: a message its channel gave up on falls back only then."""
    steps = facts.definition.steps
    current = steps[step] if step < len(steps) else None
    return (
        facts.customer is not None
        and isinstance(current, SendStep)
        and outbox.has_other_channel(
            lookup.outbox,
            workspace=facts.workspace,
            customer=facts.customer,
            message_type=current.message,
            purpose=send_purpose(facts.definition, current),
            exclude_channels=exclude,
            sending_domain=sending_domain,
        )
    )


def _advance(
    job: ClaimedJob,
    *,
    run_id: int,
    workspace_id: int,
    lane: Purpose,
    step: int,
    suffix: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The job for the run's next send (or the same one on the next channel), due as the
    step that led to it was, in the journey's lane as every job of the run is."""
    due = {key: job.payload[key] for key in (DUE, QUIET_WAITED) if key in job.payload}
    return {
        "kind": ADVANCE,
        "payload": {"run_id": run_id, "step": step, **due, **(extra or {})},
        "workspace_id": workspace_id,
        "idempotency_key": f"journey:{run_id}:{step}{suffix}",
        "lane": lane,
    }


def _next_channel(
    job: ClaimedJob,
    *,
    run_id: int,
    workspace_id: int,
    lane: Purpose,
    step: int,
    exclude: list[str],
    redrive: int,
    resend: bool,
) -> dict[str, Any]:
    """The job that offers a send step's message to the policy again without the channels
    in ``exclude`` (refused there, or no longer allowed there)."""
    extra: dict[str, Any] = {"exclude": exclude}
    suffix = f":x{len(exclude)}"
    if redrive:
        suffix += f":r{redrive}"
        extra[REDRIVE] = redrive
    if resend:
        extra[RESEND] = True
    return _advance(
        job,
        run_id=run_id,
        workspace_id=workspace_id,
        lane=lane,
        step=step,
        suffix=suffix,
        extra=extra,
    )


def due_of(payload: Mapping[str, Any], run: JourneyRun) -> datetime:
    """When a job's step was due, by its payload: as scheduled after a wait, else when the
    run began (retries and re-drives move a job's ``due_at``, never this)."""
    due = payload.get(DUE)
    return datetime.fromisoformat(due) if isinstance(due, str) else run.started_at


def quiet_waited(payload: Mapping[str, Any]) -> timedelta:
    """How long a job's send has waited for the customer's quiet hours, by its payload."""
    return timedelta(seconds=float(payload.get(QUIET_WAITED, 0)))


def expiry_reason(
    step: SendStep, *, due: datetime, now: datetime, quiet: timedelta = timedelta(0)
) -> str | None:
    """Why this send is no longer worth making, or None while it is.

    ``quiet``, the time it waited for the customer's quiet hours, is not held against it:
    the law put it off, nothing went wrong, and a text due on Saturday night that "no
    Sundays" holds until Monday is deferred, not dropped (RELIABILITY S8). Every other
    wait (an outage, a rate, a pause) counts, so stale marketing still expires.
    """
    ttl = step.expires_after
    if ttl is None or now - due - quiet <= ttl:
        return None
    late = (now - due).total_seconds() / 3600
    words = str(step.message).replace("_", " ")
    article = "an" if words[0] in "aeiou" else "a"
    excused = (
        f" ({quiet.total_seconds() / 3600:.0f} h of it in the customer's quiet hours)"
        if quiet
        else ""
    )
    return (
        f"expired: due {late:.0f} h ago{excused}, and {article} {words} message goes only"
        f" within {ttl.total_seconds() / 3600:g} h of that"
    )


def _note_quiet_wait(session: Session, job: ClaimedJob, *, until: datetime, now: datetime) -> None:
    """Add the quiet hours the job's send is about to wait out, until ``until``, to what
    its payload says it has waited; written while its claim holds it, before the worker
    puts it back to wait."""
    waited = quiet_waited(job.payload) + (until - now)
    session.connection().execute(
        update(JOBS)
        .where(
            JOBS.c.id == job.id,
            JOBS.c.workspace_id == job.workspace_id,
            JOBS.c.locked_by == job.locked_by,
        )
        .values(payload={**job.payload, QUIET_WAITED: waited.total_seconds()})
    )


def send_purpose(definition: JourneyDefinition, step: SendStep) -> Purpose:
    if definition.lane is Purpose.MARKETING:
        return Purpose.MARKETING
    return DEFAULT_PURPOSES.get(step.message, Purpose.TRANSACTIONAL)


def exit_reason(session: Session, facts: RunFacts, lookup: RunLookup | None = None) -> str | None:
    """Why the run must stop now, judged on the store's latest state; None to go on."""
    if not facts.journey_is_enabled:
        return JOURNEY_SWITCHED_OFF
    run = facts.run
    for rule in facts.definition.exit:
        if rule.event == "order.cancelled" and facts.order and facts.order.cancelled_at:
            return "order.cancelled"
        if rule.match == "order":
            if run.order_external_id is None:
                continue
            scope = f"order:{run.order_external_id}"
        else:
            if run.customer_id is None:
                continue
            scope = f"customer:{run.customer_id}"
        events = lookup.exit_events(run.workspace_id, scope) if lookup else None
        if events is None:
            events = _exit_events(session, run, scope, rule.event)
        for event in events:
            if event.type != rule.event:
                continue
            if rule.since_run_start and event.occurred_at <= triggered_at(run):
                continue  # before the run's trigger, or the trigger itself
            return str(rule.event)
    return None


def _exit_events(session: Session, run: JourneyRun, scope: str, event_type: str) -> list[ExitEvent]:
    kind, _, value = scope.partition(":")
    query = select(*EXIT_EVENT_COLUMNS).where(
        StoreEvent.workspace_id == run.workspace_id, StoreEvent.type == event_type
    )
    if kind == "order":
        query = query.where(StoreEvent.order_external_id == value)
    else:
        query = query.where(StoreEvent.customer_id == int(value))
    return [ExitEvent(*row) for row in session.execute(query)]


def holds(condition: Condition, facts: RunFacts) -> bool:
    """Evaluate a condition step against the run's order, fulfilment or customer."""
    entity_name, _, attribute = condition.path.partition(".")
    entity = {"order": facts.order, "fulfillment": facts.fulfillment, "customer": facts.customer}[
        entity_name
    ]
    value = getattr(entity, attribute, None) if entity is not None else None
    match condition.op:
        case "eq":
            return bool(value == condition.value)
        case "ne":
            return bool(value != condition.value)
        case "in":
            return value in (condition.value or [])
        case "not_in":
            return value not in (condition.value or [])
        case "exists":
            return value is not None
        case _:
            return value is None


def _end(
    session: Session, run: JourneyRun, status: RunStatus, reason: str | None, now: datetime
) -> None:
    end_run(session, run_id=run.id, status=status, reason=reason, now=now)
    run.status = status


def _schedule(
    session: Session, run: JourneyRun, definition: JourneyDefinition, step: int, *, due_at: datetime
) -> None:
    queue.enqueue(
        session,
        kind=ADVANCE,
        payload={"run_id": run.id, "step": step, DUE: due_at.isoformat()},
        workspace_id=run.workspace_id,
        due_at=due_at,
        idempotency_key=f"journey:{run.id}:{step}",
        lane=definition.lane,
    )
