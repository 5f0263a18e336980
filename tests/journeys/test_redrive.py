"""Re-driving journey jobs out of the dead letter, on both engines.

A send whose attempts ran out marked its message failed and moved its run on. Re-driven,
it sends that message anew under a key of its own, after the checks a first send gets,
and moves nothing on; a job that died before its message settled resumes it instead.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from parley.channels.base import ChannelKind, PermanentChannelError, TransientChannelError
from parley.commerce.models import Order
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.journeys import service as journeys
from parley.journeys.definitions import BUILT_IN
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import Message, MessageStatus
from support import deliveries, drain, make_worker, post, recording_adapters, rows, seed

OUTAGE = [TransientChannelError("503 from provider")] * 8


@pytest.fixture
def adapters():
    return recording_adapters()


def _until_dead(db, worker, clock, job_id: int) -> Job:
    """Run the worker, moving the clock to each retry, until the job is in the dead letter."""
    for _ in range(20):
        drain(worker)
        [job] = rows(db, Job, Job.id == job_id)
        if job.status == JobStatus.DEAD:
            return job
        clock.advance(max(job.due_at - clock.now, timedelta(0)))
    raise AssertionError(f"job {job_id} never died: {job.status}")


def _redrive(db, job_id: int) -> Job:
    with db.transaction() as session:
        job = queue.redrive(session, job_id)
        session.expunge(job)
        return job


def _messages(db, message_type: str) -> list[tuple[str, str | None, str, str | None]]:
    return [
        (m.idempotency_key, m.channel, m.status, m.status_reason)
        for m in rows(db, Message, Message.message_type == message_type)
    ]


def _dead_confirmation(db, adapters, clock):
    """Alan's order confirmation, refused with a 503 at all 8 attempts: its job dead."""
    seed(db)
    adapters[ChannelKind.EMAIL].script = list(OUTAGE)
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [job] = rows(db, Job)
    return worker, _until_dead(db, worker, clock, job.id)


def _dead_dispatch(db, adapters, clock, first_name: str = "Ada"):
    """The WhatsApp dispatch message refused with a 503 at all 8 attempts: its job dead.
    Returns the worker, the dead job and the order's two later deliveries."""
    seed(db)
    placed, dispatched, out_for_delivery, delivered = deliveries(first_name)
    worker = make_worker(db, adapters)
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.WHATSAPP].script = list(OUTAGE)
    post(db, dispatched)
    [job] = rows(db, Job, Job.status == JobStatus.PENDING)
    return worker, _until_dead(db, worker, clock, job.id), (out_for_delivery, delivered)


def test_a_confirmation_that_died_in_an_outage_is_sent_anew_when_re_driven(
    db, frozen_clock, adapters
):
    worker, dead = _dead_confirmation(db, adapters, frozen_clock)
    run_key = f"journey:{dead.payload['run_id']}:0"
    [run] = rows(db, JourneyRun)
    assert run.status == RunStatus.COMPLETED

    redriven = _redrive(db, dead.id)
    assert (redriven.status, redriven.attempts, redriven.due_at) == (
        JobStatus.PENDING,
        0,
        frozen_clock.now,
    )
    assert redriven.payload["redrive"] == 1
    drain(worker)

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.to == "alan@example.com"
    assert _messages(db, "order_confirmation") == [
        (run_key, "email", "failed", "dead letter after 8 attempts: 503 from provider"),
        (f"{run_key}:r1", "email", "sent", None),
    ]
    [job] = rows(db, Job)
    assert job.status == JobStatus.DONE
    [after] = rows(db, JourneyRun)
    assert (after.status, after.ended_at) == (RunStatus.COMPLETED, run.ended_at)


def test_a_re_send_that_fails_again_goes_back_to_the_dead_letter_and_the_next_re_drive_sends_anew(
    db, frozen_clock, adapters
):
    worker, dead = _dead_confirmation(db, adapters, frozen_clock)
    adapters[ChannelKind.EMAIL].script = list(OUTAGE)
    _redrive(db, dead.id)
    again = _until_dead(db, worker, frozen_clock, dead.id)
    assert again.last_error == "gave up after 8 attempts: 503 from provider"

    _redrive(db, dead.id)
    drain(worker)

    key = f"journey:{dead.payload['run_id']}:0"
    assert [(k, status) for k, _, status, _ in _messages(db, "order_confirmation")] == [
        (key, "failed"),
        (f"{key}:r1", "failed"),
        (f"{key}:r2", "sent"),
    ]
    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_a_re_driven_dispatch_is_not_sent_once_the_order_is_cancelled(db, frozen_clock, adapters):
    worker, dead, _ = _dead_dispatch(db, adapters, frozen_clock)
    with db.transaction() as session:
        session.execute(update(Order).values(cancelled_at=frozen_clock.now))

    _redrive(db, dead.id)
    drain(worker)

    key = f"journey:{dead.payload['run_id']}:1"
    assert _messages(db, "dispatch") == [
        (key, "whatsapp", "failed", "dead letter after 8 attempts: 503 from provider"),
        (f"{key}:r1", None, "skipped", "not re-sent: order.cancelled"),
    ]
    assert adapters[ChannelKind.WHATSAPP].sent == []
    [run] = rows(db, JourneyRun, JourneyRun.run_key.like("fulfillment:%"))
    assert (run.status, run.exit_reason) == (RunStatus.COMPLETED, None)
    assert rows(db, Job, Job.id == dead.id)[0].status == JobStatus.DONE


def test_a_re_driven_dispatch_the_parcel_has_outrun_is_not_sent(db, frozen_clock, adapters):
    worker, dead, (out_for_delivery, _) = _dead_dispatch(db, adapters, frozen_clock)
    post(db, out_for_delivery)
    drain(worker)
    assert len(adapters[ChannelKind.WHATSAPP].sent) == 1  # out for delivery

    _redrive(db, dead.id)
    drain(worker)

    key = f"journey:{dead.payload['run_id']}:1"
    assert [(k, status, reason) for k, _, status, reason in _messages(db, "dispatch")] == [
        (key, "failed", "dead letter after 8 attempts: 503 from provider"),
        (
            f"{key}:r1",
            "skipped",
            "not re-sent: superseded: the parcel is already out for delivery or further",
        ),
    ]
    assert len(adapters[ChannelKind.WHATSAPP].sent) == 1


def test_a_re_send_refused_for_good_on_whatsapp_falls_back_to_sms(db, frozen_clock, adapters):
    worker, dead, _ = _dead_dispatch(db, adapters, frozen_clock, first_name="Frida")
    adapters[ChannelKind.WHATSAPP].script = [
        PermanentChannelError("not a WhatsApp user", provider_code="131026")
    ]

    _redrive(db, dead.id)
    drain(worker)

    key = f"journey:{dead.payload['run_id']}:1"
    assert [(k, channel, status) for k, channel, status, _ in _messages(db, "dispatch")] == [
        (key, "whatsapp", "failed"),
        (f"{key}:r1", "whatsapp", "failed"),
        (f"{key}:1:r1", "sms", "sent"),
    ]
    assert len(adapters[ChannelKind.SMS].sent) == 1
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}


def test_a_job_that_died_before_its_message_was_made_resumes_its_run(db, frozen_clock, adapters):
    seed(db)
    post(db, deliveries("Alan")[0])
    [job] = rows(db, Job)
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(status=JobStatus.DEAD, attempts=8, last_error="gave up after 8 attempts: bug")
        )

    _redrive(db, job.id)
    drain(make_worker(db, adapters))

    assert _messages(db, "order_confirmation") == [
        (f"journey:{job.payload['run_id']}:0", "email", "sent", None)
    ]
    [run] = rows(db, JourneyRun)
    assert run.status == RunStatus.COMPLETED


def test_a_re_driven_job_whose_message_was_in_flight_holds_it_and_sends_nothing(
    db, frozen_clock, adapters
):
    """The provider may have the message: a re-drive never sends it blindly (RELIABILITY S2)."""
    seed(db)
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [claimed] = worker._claim()
    [(job, work)] = worker._prepare_all([claimed])
    asyncio.run(worker.tasks[job.kind].perform(work))  # handed over, then the worker died
    with db.transaction() as session:
        session.execute(
            update(Job).where(Job.id == job.id).values(status=JobStatus.DEAD, locked_by=None)
        )

    _redrive(db, job.id)
    drain(worker)

    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD


def test_a_re_send_does_not_walk_the_run_on_again_after_its_jobs_were_swept(
    db, frozen_clock, adapters
):
    """The run moved on when the job died; a re-send weeks later, its done jobs swept by
    then, starts none of the later steps again."""
    workspace_id = seed(db)
    confirmation = next(data for data in BUILT_IN if data["key"] == "order_confirmation")
    with db.transaction() as session:
        journeys.update_journey(
            session,
            workspace_id=workspace_id,
            key="order_confirmation",
            definition={
                **confirmation,
                "steps": [
                    # Still worth sending the weeks later it is re-driven.
                    {"type": "send", "message": "order_confirmation", "expires_after_hours": 720},
                    {"type": "wait", "hours": 1},
                    {"type": "send", "message": "satisfaction_check"},
                ],
            },
        )
    adapters[ChannelKind.EMAIL].script = list(OUTAGE)
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [first] = rows(db, Job)
    dead = _until_dead(db, worker, frozen_clock, first.id)
    frozen_clock.advance(timedelta(hours=1))
    drain(worker)
    assert [m.status for m in rows(db, Message)] == ["failed", "sent"]
    frozen_clock.advance(timedelta(days=8))
    with db.transaction() as session:
        session.execute(delete(Job).where(Job.status == JobStatus.DONE))

    _redrive(db, dead.id)
    frozen_clock.advance(timedelta(hours=2))
    drain(worker)

    assert [(m.message_type, m.status) for m in rows(db, Message)] == [
        ("order_confirmation", "failed"),
        ("satisfaction_check", "sent"),
        ("order_confirmation", "sent"),
    ]
    assert [(job.id, job.status) for job in rows(db, Job)] == [(dead.id, JobStatus.DONE)]
