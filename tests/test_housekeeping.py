"""The housekeeping sweep deletes raw deliveries and finished jobs once past retention,
and nothing younger: a delivery is a dedupe key for at least 3 days (RELIABILITY W10)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from parley import held_messages, housekeeping
from parley.channels.base import ChannelKind
from parley.clock import utc_now
from parley.housekeeping import SWEEP_SCHEDULE, Retention, SweepTask, Swept, sweep
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.messaging.models import Message, MessageStatus
from parley.settings import Settings
from parley.store_events.models import StoreEvent, WebhookDelivery
from support import (
    count,
    deliveries,
    drain,
    hold_next_send,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
)

THREE_DAYS = Retention(webhooks=timedelta(days=3), finished_jobs=timedelta(days=7))


def _post_order(first_name: str, order_id: int) -> list[object]:
    return deliveries(first_name, order_id=order_id, number=order_id + 1000)


def test_raw_deliveries_past_retention_are_deleted_and_their_events_stay(db, frozen_clock):
    seed(db)
    old = _post_order("Ada", 501)[:2]
    for delivery in old:
        post(db, delivery)
    frozen_clock.advance(timedelta(days=2))
    young = _post_order("Grace", 502)[0]
    post(db, young)
    events_before = count(db, StoreEvent)
    frozen_clock.advance(timedelta(days=1, seconds=1))

    swept = sweep(db, THREE_DAYS)

    assert swept == Swept(deliveries=2, jobs=0)
    [kept] = rows(db, WebhookDelivery)
    assert kept.received_at == utc_now() - timedelta(days=1, seconds=1)
    assert count(db, StoreEvent) == events_before
    assert events_before > 0


def test_a_delivery_younger_than_three_days_is_kept_and_its_late_retry_stays_a_duplicate(
    db, frozen_clock
):
    seed(db)
    placed = _post_order("Ada", 501)[0]
    assert post(db, placed) == {"status": "accepted", "events": 1, "journeys_started": 1}
    events = count(db, StoreEvent)
    frozen_clock.advance(timedelta(days=3) - timedelta(seconds=1))

    assert sweep(db, THREE_DAYS) == Swept(deliveries=0, jobs=0)
    assert post(db, placed) == {"status": "duplicate"}
    assert count(db, WebhookDelivery) == 1
    assert count(db, StoreEvent) == events

    frozen_clock.advance(timedelta(seconds=2))
    assert sweep(db, THREE_DAYS) == Swept(deliveries=1, jobs=0)
    assert count(db, WebhookDelivery) == 0


def test_a_webhook_retention_under_three_days_is_refused():
    with pytest.raises(ValueError, match="at least 3 days"):
        Retention(webhooks=timedelta(days=3) - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="webhook_retention_days"):
        Settings(webhook_retention_days=2.9)
    with pytest.raises(ValidationError, match="job_retention_days"):
        Settings(job_retention_days=0)


def _job(db, key: str, status: JobStatus) -> None:
    with db.transaction() as session:
        queue.enqueue(session, kind="test.kept", payload={}, idempotency_key=key)
        session.execute(update(Job).where(Job.idempotency_key == key).values(status=status))


def test_done_and_cancelled_jobs_past_retention_go_and_the_dead_letter_and_live_work_stay(
    db, frozen_clock
):
    for status in JobStatus:
        _job(db, f"old-{status}", status)
    frozen_clock.advance(timedelta(days=1))
    for status in (JobStatus.DONE, JobStatus.CANCELLED):
        _job(db, f"young-{status}", status)
    frozen_clock.advance(timedelta(days=6, seconds=1))

    assert sweep(db, THREE_DAYS) == Swept(deliveries=0, jobs=2)

    assert sorted(job.idempotency_key for job in rows(db, Job)) == [
        "old-dead",
        "old-failed",
        "old-pending",
        "old-running",
        "young-cancelled",
        "young-done",
    ]


def test_a_job_due_long_ago_but_finished_lately_is_kept(db, frozen_clock):
    _job(db, "retried-for-days", JobStatus.PENDING)
    frozen_clock.advance(timedelta(days=8))
    with db.transaction() as session:
        session.execute(
            update(Job).values(status=JobStatus.DONE, updated_at=utc_now() - timedelta(days=1))
        )

    assert sweep(db, THREE_DAYS) == Swept(deliveries=0, jobs=0)
    assert count(db, Job) == 1


def test_the_job_a_held_message_is_sent_again_through_is_kept_until_it_is_decided(db, frozen_clock):
    """A confirmation held for review past the job retention (a deployment keeping jobs
    12 hours): the owner who finds it never arrived sends it again, once, within its day;
    the sweep must not have taken the job that does it."""
    seed(db)
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    hold_next_send(worker, frozen_clock)
    [held] = rows(db, Message, Message.status == MessageStatus.HELD)
    frozen_clock.advance(timedelta(hours=20))

    short = Retention(webhooks=timedelta(days=3), finished_jobs=timedelta(hours=12))
    assert sweep(db, short) == Swept(deliveries=0, jobs=0)
    with db.transaction() as session:
        held_messages.send_again(
            session, workspace_id=held.workspace_id, message_id=held.id, by="Ana", now=utc_now()
        )
    drain(worker)

    assert len(adapters[ChannelKind.EMAIL].sent) == 2
    assert [(m.idempotency_key, m.status) for m in rows(db, Message)] == [
        (held.idempotency_key, "failed"),
        (f"{held.idempotency_key}:r1", "sent"),
    ]


def test_the_sweep_deletes_in_batches_until_nothing_old_is_left(db, frozen_clock, monkeypatch):
    monkeypatch.setattr(housekeeping, "PRUNE_BATCH", 3)
    monkeypatch.setattr(housekeeping, "REST_SECONDS", 0.0)
    for number in range(10):
        _job(db, f"done-{number}", JobStatus.DONE)
    frozen_clock.advance(timedelta(days=7, seconds=1))
    _job(db, "done-now", JobStatus.DONE)

    assert sweep(db, THREE_DAYS) == Swept(deliveries=0, jobs=10)
    assert [job.idempotency_key for job in rows(db, Job)] == ["done-now"]


def _sweeping_worker(db) -> Worker:
    return Worker(
        db,
        [SweepTask(db, THREE_DAYS)],
        WorkerConfig(backoff_base_seconds=60),
        name="sweeper",
        schedules=[SWEEP_SCHEDULE],
    )


def test_workers_sweep_once_a_tick_as_a_periodic_job(db, frozen_clock):
    seed(db)
    for delivery in _post_order("Ada", 501):
        post(db, delivery)
    frozen_clock.advance(timedelta(days=3, seconds=1))
    worker = _sweeping_worker(db)

    async def tick() -> None:
        await worker.enqueue_due_ticks()
        await worker.run_until_idle()

    asyncio.run(tick())

    assert count(db, WebhookDelivery) == 0
    [sweep_job] = rows(db, Job, Job.kind == housekeeping.SWEEP_KIND)
    assert sweep_job.status == JobStatus.DONE
    assert sweep_job.idempotency_key == SWEEP_SCHEDULE.key(SWEEP_SCHEDULE.tick(utc_now()))


def test_a_sweep_that_fails_is_retried_with_its_error_kept(db, frozen_clock, monkeypatch):
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(housekeeping, "prune_deliveries", broken)
    worker = _sweeping_worker(db)

    async def tick() -> None:
        await worker.enqueue_due_ticks()
        await worker.run_until_idle()

    asyncio.run(tick())

    [sweep_job] = rows(db, Job)
    assert sweep_job.status == JobStatus.PENDING
    assert sweep_job.attempts == 1
    assert sweep_job.last_error == "RuntimeError: disk on fire"
    assert sweep_job.due_at > utc_now()


def test_a_sweep_out_of_budget_hands_the_rest_to_the_next_part_of_its_tick(
    db, frozen_clock, monkeypatch
):
    monkeypatch.setattr(housekeeping, "PRUNE_BATCH", 2)
    monkeypatch.setattr(housekeeping, "REST_SECONDS", 0.0)
    monkeypatch.setattr(housekeeping, "BUDGET_SECONDS", 0.0)
    for number in range(5):
        _job(db, f"done-{number}", JobStatus.DONE)
    frozen_clock.advance(timedelta(days=7, seconds=1))
    worker = _sweeping_worker(db)

    async def tick() -> None:
        await worker.enqueue_due_ticks()
        await worker.run_until_idle()

    asyncio.run(tick())

    key = SWEEP_SCHEDULE.key(SWEEP_SCHEDULE.tick(utc_now()))
    assert [(job.idempotency_key, job.status) for job in rows(db, Job)] == [
        (key, JobStatus.DONE),
        (f"{key}:1", JobStatus.DONE),
        (f"{key}:2", JobStatus.DONE),
    ]
