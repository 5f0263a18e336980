"""A journey message waiting for its retry asks again whether it may go: the customer may
have opted out on its channel since its first attempt, or the store uninstalled parley.
What it was decided to be an hour ago is not leave to send it now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from parley.channels.base import ChannelKind, PermanentChannelError, TransientChannelError
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import Message, MessageStatus
from parley.workspaces.service import mark_uninstalled
from support import (
    customer_writes,
    deliveries,
    drain,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    shopper,
    to_lane,
)

OUTAGE = TransientChannelError("503 from provider")
FRIDA = shopper("Frida").phone


@pytest.fixture
def adapters():
    return recording_adapters()


def _opts_out(db, first_name: str, channel: str, purpose: str) -> None:
    with db.transaction() as session:
        customer = session.scalars(select(Customer).where(Customer.first_name == first_name)).one()
        customers.record_consent(
            session,
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            channel=channel,
            purpose=purpose,
            is_granted=False,
            source="test",
        )


def _messages(db, message_type: str) -> list[tuple[str, str, str | None]]:
    return [
        (m.channel, m.status, m.status_reason)
        for m in rows(db, Message, Message.message_type == message_type)
    ]


def _until_retry(db, frozen_clock, worker) -> None:
    [job] = rows(db, Job, Job.status == JobStatus.PENDING)
    frozen_clock.advance(job.due_at - frozen_clock.now + timedelta(seconds=1))
    drain(worker)


def _dispatch_waiting_for_its_retry(db, adapters, whatsapp_answers: list) -> Any:
    """Frida's order placed and dispatched, WhatsApp answering ``whatsapp_answers`` in
    turn (the first an outage): the dispatch waits for its retry. Returns the worker."""
    seed(db)
    placed, dispatched, *_ = deliveries("Frida")
    worker = make_worker(db, adapters)
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.WHATSAPP].script = list(whatsapp_answers)
    post(db, dispatched)
    drain(worker)
    return worker


def test_a_dispatch_retried_after_she_stopped_whatsapp_goes_by_sms(db, frozen_clock, adapters):
    worker = _dispatch_waiting_for_its_retry(db, adapters, [OUTAGE])
    assert _messages(db, "dispatch") == [
        ("whatsapp", MessageStatus.QUEUED, "retrying after attempt 1: 503 from provider")
    ]

    _opts_out(db, "Frida", "whatsapp", "transactional")
    _until_retry(db, frozen_clock, worker)

    assert _messages(db, "dispatch") == [
        ("whatsapp", MessageStatus.SKIPPED, "not sent: opted out on whatsapp before its retry"),
        ("sms", MessageStatus.SENT, None),
    ]
    assert adapters[ChannelKind.WHATSAPP].sent == []
    assert [m.to for m in adapters[ChannelKind.SMS].sent] == ["+525512345678"]
    assert {run.status for run in rows(db, JourneyRun)} == {RunStatus.COMPLETED}
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}


def test_a_free_text_retried_after_whatsapps_window_closed_goes_by_sms(db, frozen_clock, adapters):
    # Frida wrote on WhatsApp; her dispatch is decided as free text two minutes before
    # the window her message opened closes, and meets an outage
    seed(db)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=FRIDA, text="Hola, is it sent?")
    frozen_clock.advance(timedelta(hours=23, minutes=58))
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Frida")
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.WHATSAPP].script = [OUTAGE]
    post(db, dispatched)
    drain(worker)
    [(channel, status, _)] = _messages(db, "dispatch")
    assert (channel, status) == ("whatsapp", MessageStatus.QUEUED)

    # Its retry comes after the window closed, where Meta refuses free text
    frozen_clock.advance(timedelta(minutes=7))
    drain(worker)

    assert _messages(db, "dispatch") == [
        (
            "whatsapp",
            MessageStatus.SKIPPED,
            "not sent: WhatsApp's 24-hour window closed before its retry",
        ),
        ("sms", MessageStatus.SENT, None),
    ]
    assert adapters[ChannelKind.WHATSAPP].sent == []
    assert [m.to for m in adapters[ChannelKind.SMS].sent] == [FRIDA]


def test_a_promotion_retried_after_she_unsubscribed_is_not_sent(db, frozen_clock, adapters):
    seed(db)
    to_lane(db, "order_confirmation", "marketing")
    adapters[ChannelKind.EMAIL].script = [OUTAGE]
    worker = make_worker(db, adapters)
    post(db, deliveries("Ada")[0])
    drain(worker)
    assert _messages(db, "order_confirmation") == [
        ("email", MessageStatus.QUEUED, "retrying after attempt 1: 503 from provider")
    ]

    _opts_out(db, "Ada", "email", "marketing")
    _until_retry(db, frozen_clock, worker)

    assert _messages(db, "order_confirmation") == [
        ("email", MessageStatus.SKIPPED, "not sent: opted out on email before its retry")
    ]
    assert adapters[ChannelKind.EMAIL].sent == []
    assert {run.status for run in rows(db, JourneyRun)} == {RunStatus.COMPLETED}
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}


def test_a_retry_after_the_store_uninstalled_sends_nothing(db, frozen_clock, adapters):
    seed(db)
    adapters[ChannelKind.EMAIL].script = [OUTAGE]
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    drain(worker)

    with db.transaction() as session:
        mark_uninstalled(session, workspace_id=1)
    _until_retry(db, frozen_clock, worker)

    assert _messages(db, "order_confirmation") == [
        ("email", MessageStatus.SKIPPED, "not sent: the store uninstalled parley before its retry")
    ]
    assert adapters[ChannelKind.EMAIL].sent == []


def test_a_retry_she_may_still_receive_is_sent_as_decided(db, frozen_clock, adapters):
    worker = _dispatch_waiting_for_its_retry(db, adapters, [OUTAGE])

    _opts_out(db, "Frida", "sms", "transactional")
    _until_retry(db, frozen_clock, worker)

    assert _messages(db, "dispatch") == [("whatsapp", MessageStatus.SENT, None)]
    assert adapters[ChannelKind.SMS].sent == []


def test_a_refusal_on_the_last_attempt_still_falls_back_to_the_next_channel(
    db, frozen_clock, adapters
):
    """Seven outages, then Meta refuses for good (the window closed meanwhile): the last
    attempt's answer is a refusal, not an exhausted retry, so SMS takes the message."""
    refusal = PermanentChannelError("131047: re-engagement message")
    worker = _dispatch_waiting_for_its_retry(db, adapters, [OUTAGE] * 7 + [refusal])
    for _ in range(7):
        _until_retry(db, frozen_clock, worker)

    assert _messages(db, "dispatch") == [
        ("whatsapp", MessageStatus.FAILED, "131047: re-engagement message"),
        ("sms", MessageStatus.SENT, None),
    ]
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}
