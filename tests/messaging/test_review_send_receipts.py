"""A receipt that names a message while its send is still being recorded, on both engines.

The provider took the message and its receipt came back (naming it by its reference)
before parley recorded the provider's answer; then the answer itself was lost (a
timeout). The receipt already proved the provider has the message, so the retry must not
hand it over a second time.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from parley.channels.base import (
    ChannelKind,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    TransientChannelError,
)
from parley.inbox import service as inbox
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import DeliveryAttempt, Message, MessageStatus
from parley.messaging.service import message_reference, referenced_message
from support import (
    deliveries,
    drain,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    until_waiting_for_a_lock,
)


@pytest.fixture
def adapters():
    return recording_adapters()


def test_a_send_whose_receipt_came_before_its_lost_answer_is_not_sent_again(
    db, frozen_clock, adapters
):
    # Given Twilio takes Grace's dispatch SMS and posts its "sent" receipt at once, naming
    # the message, but its HTTP answer never reaches the worker (a read timeout)
    sms = adapters[ChannelKind.SMS]
    answered = sms.send

    async def receipt_then_timeout(message: OutboundMessage) -> SendResult:
        if sms.sent:
            return await answered(message)
        sms.sent.append(message)
        workspace_id = 1
        with db.transaction() as session:
            deferred = not inbox.apply_status(
                session,
                workspace_id=workspace_id,
                status=StatusUpdate(
                    channel=ChannelKind.SMS,
                    provider_message_id="SM-first",
                    status="sent",
                    reference=message.idempotency_key,
                ),
            )
        assert deferred, "the message is still sending: the receipt waits for its answer"
        raise TransientChannelError("Twilio did not answer in time (ReadTimeout)")

    sms.send = receipt_then_timeout  # type: ignore[method-assign]
    seed(db)
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    drain(worker)
    handed_over = frozen_clock.now
    post(db, dispatched)
    drain(worker)

    # When the worker looks again a few seconds on, when a retry after a timeout is due
    # (and before the deferred receipt is applied)
    frozen_clock.advance(timedelta(seconds=10))
    drain(worker)

    # Then nothing is handed over a second time: the receipt proved the first arrived
    [first] = sms.sent
    assert len(sms.sent) == 1
    [message] = rows(db, Message, Message.channel == "sms")
    assert referenced_message(first.idempotency_key, workspace_id=1) == message.id
    assert (message.status, message.provider_message_id, message.attempts) == (
        MessageStatus.SENT,
        "SM-first",
        1,
    )
    assert (message.sent_at, message.status_reason) == (
        handed_over,
        "the provider's answer was lost (Twilio did not answer in time (ReadTimeout)), but"
        " its receipt shows it took the message",
    )
    assert [
        (a.number, a.outcome, a.error)
        for a in rows(db, DeliveryAttempt)
        if a.message_id == message.id
    ] == [(1, "sent", "Twilio did not answer in time (ReadTimeout)")]
    assert {run.status for run in rows(db, JourneyRun)} == {RunStatus.COMPLETED}
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_retry_racing_the_receipt_that_settles_its_message_does_not_send_it_again(
    db, frozen_clock, adapters
):
    """PostgreSQL only: SQLite's one writer cannot interleave the two transactions."""
    # Given Twilio took Grace's dispatch SMS but its answer never came: it waits for a retry
    sms = adapters[ChannelKind.SMS]
    answered = sms.send

    async def taken_unanswered(message: OutboundMessage) -> SendResult:
        if not sms.sent:
            sms.sent.append(message)
            raise TransientChannelError("Twilio did not answer in time (ReadTimeout)")
        return await answered(message)

    sms.send = taken_unanswered  # type: ignore[method-assign]
    seed(db)
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    drain(worker)
    post(db, dispatched)
    drain(worker)
    [waiting] = rows(db, Message, Message.channel == "sms")
    assert waiting.status == MessageStatus.QUEUED
    [retry] = rows(db, Job, Job.status == JobStatus.PENDING)
    frozen_clock.advance(retry.due_at - frozen_clock.now)
    failed: list[BaseException] = []

    def worker_retries() -> None:
        try:
            drain(worker)
        except BaseException as exc:  # noqa: BLE001  (any failure is what is checked)
            failed.append(exc)

    retrying = threading.Thread(target=worker_retries)
    # When Twilio's receipt naming the SMS is being applied as the worker plans its retry
    with db.transaction() as session:
        assert inbox.apply_status(
            session,
            workspace_id=waiting.workspace_id,
            status=StatusUpdate(
                channel=ChannelKind.SMS,
                provider_message_id="SM-first",
                status="sent",
                reference=message_reference(waiting.workspace_id, waiting.id),
            ),
        )
        retrying.start()
        until_waiting_for_a_lock(db, retrying)
    retrying.join(timeout=30)

    # Then the receipt settled it and the retry hands nothing over again
    assert failed == []
    assert len(sms.sent) == 1
    [message] = rows(db, Message, Message.id == waiting.id)
    assert (message.status, message.provider_message_id, message.attempts) == (
        MessageStatus.SENT,
        "SM-first",
        1,
    )
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}
