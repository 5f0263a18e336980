"""A provider refusing the store's own account (bad credentials, a locked account), on
both engines.

It says nothing against the message: fixed, the same message would go. So a journey
falls back to another channel at once where one would take the message, and where none
would, the message waits, retried like an outage, and ends in the dead letter, from which
it is sent once the settings are fixed. It never ends ``failed`` with nothing to re-drive.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.channels.base import AccountChannelError, ChannelKind
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import DeliveryAttempt, Message
from support import deliveries, drain, make_worker, post, recording_adapters, rows, seed

SMTP_LOGIN = AccountChannelError(
    "the mail server answered 535 5.7.8 Authentication credentials invalid", provider_code="535"
)
TWILIO_LOGIN = AccountChannelError("Twilio rejected the account credentials", provider_code="20003")
META_TOKEN = AccountChannelError("Invalid OAuth access token", provider_code="190")


@pytest.fixture
def adapters():
    return recording_adapters()


def _messages(db, message_type: str) -> list[tuple[str, str | None, str, str | None, int]]:
    return [
        (m.idempotency_key, m.channel, m.status, m.status_reason, m.attempts)
        for m in rows(db, Message, Message.message_type == message_type)
    ]


def _to_next_retry(db, clock, job_id: int) -> Job:
    [job] = rows(db, Job, Job.id == job_id)
    clock.advance(max(job.due_at - clock.now, timedelta(0)))
    return job


def test_a_refused_login_on_the_only_channel_keeps_the_message_until_it_is_fixed(
    db, frozen_clock, adapters
):
    seed(db)
    adapters[ChannelKind.EMAIL].script = [SMTP_LOGIN, SMTP_LOGIN]
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [job] = rows(db, Job)
    key = f"journey:{job.payload['run_id']}:0"

    drain(worker)
    waiting = _to_next_retry(db, frozen_clock, job.id)
    drain(worker)
    _to_next_retry(db, frozen_clock, job.id)

    assert (waiting.status, waiting.attempts) == (JobStatus.PENDING, 1)
    assert _messages(db, "order_confirmation") == [
        (key, "email", "queued", f"retrying after attempt 2: {SMTP_LOGIN.reason}", 2)
    ]
    assert adapters[ChannelKind.EMAIL].sent == []
    [run] = rows(db, JourneyRun)
    assert run.status == RunStatus.ACTIVE

    drain(worker)  # the login fixed: the same message goes

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.to == "alan@example.com"
    assert _messages(db, "order_confirmation") == [(key, "email", "sent", None, 3)]
    assert [a.outcome for a in rows(db, DeliveryAttempt)] == [
        "account_refused",
        "account_refused",
        "sent",
    ]
    assert [a.provider_code for a in rows(db, DeliveryAttempt)] == ["535", "535", None]
    assert rows(db, Job)[0].status == JobStatus.DONE
    assert rows(db, JourneyRun)[0].status == RunStatus.COMPLETED


def test_a_refused_token_falls_back_to_the_next_channel_at_once(db, frozen_clock, adapters):
    seed(db)
    adapters[ChannelKind.WHATSAPP].script = [META_TOKEN]
    placed, dispatched, *_ = deliveries("Frida")
    post(db, placed)
    post(db, dispatched)
    drain(make_worker(db, adapters))

    dispatch = [
        (channel, status, reason) for _, channel, status, reason, _ in _messages(db, "dispatch")
    ]
    assert dispatch == [
        ("whatsapp", "failed", "Invalid OAuth access token"),
        ("sms", "sent", None),
    ]
    assert [sms.to for sms in adapters[ChannelKind.SMS].sent] == ["+525512345678"]
    assert rows(db, Job, Job.status != JobStatus.DONE) == []


def test_every_channel_refusing_its_login_ends_in_the_dead_letter_and_sends_when_re_driven(
    db, frozen_clock, adapters
):
    seed(db)
    placed, dispatched, *_ = deliveries("Grace")
    worker = make_worker(db, adapters)
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.SMS].script = [TWILIO_LOGIN]
    adapters[ChannelKind.EMAIL].script = [SMTP_LOGIN] * 20
    post(db, dispatched)
    [job] = rows(db, Job, Job.status == JobStatus.PENDING)
    for _ in range(20):
        drain(worker)
        [fallback] = rows(db, Job, Job.idempotency_key.like("%:x1"))
        if fallback.status == JobStatus.DEAD:
            break
        _to_next_retry(db, frozen_clock, fallback.id)

    run_id = job.payload["run_id"]
    assert fallback.status == JobStatus.DEAD
    assert (
        fallback.last_error
        == f"gave up after {fallback.max_attempts} attempts: {SMTP_LOGIN.reason}"
    )
    assert [(k, c, s) for k, c, s, _, _ in _messages(db, "dispatch")] == [
        (f"journey:{run_id}:1", "sms", "failed"),
        (f"journey:{run_id}:1:1", "email", "failed"),
    ]
    assert _messages(db, "dispatch")[1][3] == (
        f"dead letter after {fallback.max_attempts} attempts: {SMTP_LOGIN.reason}"
    )
    assert adapters[ChannelKind.SMS].sent == []

    adapters[ChannelKind.EMAIL].script = []  # the login fixed
    with db.transaction() as session:
        queue.redrive(session, fallback.id)
    drain(worker)

    [*_, email] = adapters[ChannelKind.EMAIL].sent
    assert email.to == "grace@example.com"
    assert [(k, c, s) for k, c, s, _, _ in _messages(db, "dispatch")][2:] == [
        (f"journey:{run_id}:1:1:r1", "email", "sent")
    ]
