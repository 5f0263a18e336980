"""Advancing one journey run, one ``journeys.advance`` job at a time.

A job names a run and the step to reach. Waits schedule the next job at a later
``due_at`` (the queue is the scheduler: a restart loses nothing); conditions test the
run's facts; a send first re-checks the journey's exit rules against the store's latest
events (a cancelled order gets no dispatch message, however late the cancellation came),
then goes through the outbox. A send that fails permanently on one channel falls back to
the next channel the policy allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import ChannelAdapter, ChannelKind, SendResult
from parley.clock import utc_now
from parley.commerce import service as commerce
from parley.commerce.models import Fulfillment, Order
from parley.customers.models import Customer
from parley.jobs import queue
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Retry
from parley.journeys.definitions import (
    Condition,
    ConditionStep,
    JourneyDefinition,
    SendStep,
    WaitStep,
)
from parley.journeys.models import Journey, JourneyRun, RunStatus
from parley.journeys.service import ADVANCE, end_run
from parley.messaging import service as outbox
from parley.messaging.service import OutboxSettings, PreparedSend, Result
from parley.messaging.templates import TemplateRenderer
from parley.messaging.types import DEFAULT_PURPOSES, Purpose
from parley.store_events.models import StoreEvent
from parley.workspaces.models import Workspace

SEND_TIMEOUT_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class StepSend:
    """A send step waiting for its provider call."""

    run_id: int
    step: int
    exclude: tuple[str, ...]
    send: PreparedSend
    step_count: int


@dataclass(frozen=True)
class RunFacts:
    workspace: Workspace
    run: JourneyRun
    definition: JourneyDefinition
    customer: Customer | None
    order: Order | None
    fulfillment: Fulfillment | None


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
    ) -> None:
        self.adapters = adapters
        self.renderer = renderer
        self.outbox_settings = outbox_settings
        self.send_timeout = send_timeout_seconds + SEND_TIMEOUT_MARGIN_SECONDS

    def prepare(self, session: Session, job: ClaimedJob) -> StepSend | None:
        facts = _load(session, job)
        if facts is None:
            return None
        step = int(job.payload["step"])
        exclude = tuple(job.payload.get("exclude", ()))
        now = utc_now()
        steps = facts.definition.steps
        while step < len(steps):
            current = steps[step]
            if isinstance(current, WaitStep):
                _schedule(session, facts, step + 1, due_at=job.due_at + current.duration)
                return None
            if isinstance(current, ConditionStep):
                if holds(current.condition, facts):
                    step += 1
                elif current.otherwise == "exit":
                    reason = f"condition not met: {current.condition.path} {current.condition.op}"
                    end_run(session, run=facts.run, status=RunStatus.EXITED, reason=reason, now=now)
                    return None
                else:
                    step += 2
                continue
            assert isinstance(current, SendStep)
            reason = exit_reason(session, facts)
            if reason is not None:
                end_run(session, run=facts.run, status=RunStatus.EXITED, reason=reason, now=now)
                return None
            if facts.customer is None:
                end_run(
                    session,
                    run=facts.run,
                    status=RunStatus.EXITED,
                    reason="no customer to message (no email, phone or platform id)",
                    now=now,
                )
                return None
            key = f"journey:{facts.run.id}:{step}" + (f":{len(exclude)}" if exclude else "")
            purpose = (
                Purpose.MARKETING
                if facts.definition.lane is Purpose.MARKETING
                else DEFAULT_PURPOSES.get(current.message, Purpose.TRANSACTIONAL)
            )
            _message, send = outbox.prepare_message(
                session,
                workspace=facts.workspace,
                customer=facts.customer,
                message_type=current.message,
                purpose=purpose,
                idempotency_key=key,
                order=facts.order,
                fulfillment=facts.fulfillment,
                renderer=self.renderer,
                outbox=self.outbox_settings,
                journey_run_id=facts.run.id,
                step_index=step,
                exclude_channels=exclude,
            )
            if send is not None:
                return StepSend(
                    run_id=facts.run.id,
                    step=step,
                    exclude=exclude,
                    send=send,
                    step_count=len(steps),
                )
            step += 1
            exclude = ()
        end_run(session, run=facts.run, status=RunStatus.COMPLETED, reason=None, now=now)
        return None

    async def perform(self, work: StepSend) -> SendResult:
        adapter = self.adapters[work.send.channel]
        return await asyncio.wait_for(adapter.send(work.send.outbound), self.send_timeout)

    def finish(self, session: Session, job: ClaimedJob, work: StepSend, result: Any) -> Outcome:
        is_last = job.attempts >= job.max_attempts
        recorded = outbox.record_result(session, work.send, result, is_last_attempt=is_last)
        run = session.get(JourneyRun, work.run_id)
        assert run is not None
        if recorded.result is Result.RETRY:
            return Retry(recorded.reason, recorded.retry_after)
        if recorded.result is Result.FAILED and not is_last:
            # Permanent refusal on this channel: let the policy try the next one.
            exclude = (*work.exclude, str(recorded.channel))
            queue.enqueue(
                session,
                kind=ADVANCE,
                payload={"run_id": run.id, "step": work.step, "exclude": list(exclude)},
                workspace_id=run.workspace_id,
                idempotency_key=f"journey:{run.id}:{work.step}:x{len(exclude)}",
            )
            return Done()
        if work.step + 1 < work.step_count:
            _schedule_next(session, run, work.step + 1)
        else:
            end_run(session, run=run, status=RunStatus.COMPLETED, reason=None, now=utc_now())
        if recorded.result is Result.FAILED:
            return Retry(recorded.reason)
        return Done()


def _load(session: Session, job: ClaimedJob) -> RunFacts | None:
    run = session.scalar(
        select(JourneyRun).where(
            JourneyRun.id == job.payload["run_id"], JourneyRun.workspace_id == job.workspace_id
        )
    )
    if run is None or run.status != RunStatus.ACTIVE:
        return None
    journey = session.get(Journey, run.journey_id)
    workspace = session.get(Workspace, run.workspace_id)
    assert journey is not None
    assert workspace is not None
    order = (
        commerce.find_order(
            session, workspace_id=run.workspace_id, external_id=run.order_external_id
        )
        if run.order_external_id
        else None
    )
    fulfillment_id = (run.context or {}).get("fulfillment_external_id")
    fulfillment = (
        commerce.find_fulfillment(
            session, workspace_id=run.workspace_id, external_id=fulfillment_id
        )
        if fulfillment_id
        else None
    )
    customer_id = run.customer_id or (order.customer_id if order else None)
    customer = session.get(Customer, customer_id) if customer_id else None
    return RunFacts(
        workspace=workspace,
        run=run,
        definition=JourneyDefinition.parse(journey.definition),
        customer=customer,
        order=order,
        fulfillment=fulfillment,
    )


def exit_reason(session: Session, facts: RunFacts) -> str | None:
    """Why the run must stop now, judged on the store's latest state; None to go on."""
    run = facts.run
    for rule in facts.definition.exit:
        if rule.event == "order.cancelled" and facts.order and facts.order.cancelled_at:
            return "order.cancelled"
        query = select(StoreEvent.id).where(
            StoreEvent.workspace_id == run.workspace_id, StoreEvent.type == rule.event
        )
        if rule.match == "order":
            if run.order_external_id is None:
                continue
            query = query.where(StoreEvent.order_external_id == run.order_external_id)
        else:
            if run.customer_id is None:
                continue
            query = query.where(StoreEvent.customer_id == run.customer_id)
        if rule.since_run_start:
            query = query.where(StoreEvent.occurred_at >= run.started_at)
        if session.scalar(query.limit(1)) is not None:
            return str(rule.event)
    return None


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


def _schedule(session: Session, facts: RunFacts, step: int, *, due_at: datetime) -> None:
    queue.enqueue(
        session,
        kind=ADVANCE,
        payload={"run_id": facts.run.id, "step": step},
        workspace_id=facts.run.workspace_id,
        due_at=due_at,
        idempotency_key=f"journey:{facts.run.id}:{step}",
        lane=facts.definition.lane,
    )


def _schedule_next(session: Session, run: JourneyRun, step: int) -> None:
    queue.enqueue(
        session,
        kind=ADVANCE,
        payload={"run_id": run.id, "step": step},
        workspace_id=run.workspace_id,
        idempotency_key=f"journey:{run.id}:{step}",
    )
