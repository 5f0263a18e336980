"""Messages held for review and the store owner's word on each, on both engines.

A worker that stopped after handing a message over leaves it held; whoever checked the
provider's log says it arrived (marked sent, nothing sent) or it did not (sent again
through the job that held it, after the checks a first send gets, once).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from parley.channels.base import (
    ChannelKind,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    TransientChannelError,
)
from parley.channels.twilio_sms import webhook as twilio
from parley.channels.twilio_sms.adapter import REFERENCE_PARAMETER
from parley.commerce.models import Order
from parley.errors import Conflict, NotFound
from parley.held_messages import held_messages, mark_arrived, send_again
from parley.http.app import create_app
from parley.inbox import service as inbox
from parley.inbox.models import Conversation
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging import replies
from parley.messaging.models import Author, Message, MessageStatus
from parley.messaging.service import message_reference
from parley.runtime import Runtime
from parley.settings import Settings, get_settings
from parley.workspaces.models import Workspace
from support import (
    count,
    customer_writes,
    deliveries,
    drain,
    hold_next_send,
    inbox_worker,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
)

ADMIN = "Ana Admin"
PUBLIC_URL = "https://parley.example.com"


@pytest.fixture
def adapters():
    return recording_adapters()


def _held(db) -> Message:
    [held] = rows(db, Message, Message.status == MessageStatus.HELD)
    return held


def _held_confirmation(db, adapters, clock) -> tuple[Message, object]:
    seed(db)
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    hold_next_send(worker, clock)
    return _held(db), worker


def _held_dispatch(db, adapters, clock, shopper: str = "Grace") -> tuple[Message, object]:
    """The shopper's dispatch message held: its worker died after the hand-over."""
    worker = _dispatch_handed_over(db, adapters, shopper)
    clock.advance(timedelta(seconds=61))
    drain(worker)
    return _held(db), worker


def _dispatch_handed_over(db, adapters, shopper: str):
    """The shopper's dispatch message handed to the provider by a worker that then died
    (the message stays `sending` until the lease runs out)."""
    seed(db)
    placed, dispatched, *_ = deliveries(shopper)
    worker = make_worker(db, adapters)
    post(db, placed)
    drain(worker)
    post(db, dispatched)
    [claimed] = worker._claim()
    [(job, work)] = worker._prepare_all([claimed])
    asyncio.run(worker.tasks[job.kind].perform(work))
    return worker


def _decide(db, message: Message, decision, **kwargs):
    with db.transaction() as session:
        return decision(
            session,
            workspace_id=kwargs.pop("workspace_id", message.workspace_id),
            message_id=message.id,
            by=ADMIN,
            now=kwargs.pop("now"),
        )


def test_a_held_confirmation_that_did_not_arrive_is_sent_anew_once(db, frozen_clock, adapters):
    held, worker = _held_confirmation(db, adapters, frozen_clock)
    [run] = rows(db, JourneyRun)
    assert len(adapters[ChannelKind.EMAIL].sent) == 1  # handed over before the stop

    job = _decide(db, held, send_again, now=frozen_clock.now)
    assert (job.status, job.attempts, job.payload["redrive"]) == (JobStatus.PENDING, 0, 1)
    drain(worker)

    assert len(adapters[ChannelKind.EMAIL].sent) == 2
    assert [(m.idempotency_key, m.status, m.status_reason) for m in rows(db, Message)] == [
        (
            held.idempotency_key,
            "failed",
            f"held for review, then found not delivered by {ADMIN}: sent again",
        ),
        (f"{held.idempotency_key}:r1", "sent", None),
    ]
    [after] = rows(db, JourneyRun)
    assert (after.status, after.ended_at) == (RunStatus.COMPLETED, run.ended_at)
    assert [j.status for j in rows(db, Job)] == [JobStatus.DONE]


def test_a_held_dispatch_is_not_sent_again_once_the_order_is_cancelled(db, frozen_clock, adapters):
    held, worker = _held_dispatch(db, adapters, frozen_clock)
    sms_before = len(adapters[ChannelKind.SMS].sent)
    with db.transaction() as session:
        session.execute(update(Order).values(cancelled_at=frozen_clock.now))

    _decide(db, held, send_again, now=frozen_clock.now)
    drain(worker)

    assert len(adapters[ChannelKind.SMS].sent) == sms_before
    [resend] = rows(db, Message, Message.idempotency_key == f"{held.idempotency_key}:r1")
    assert (resend.status, resend.status_reason) == (
        "skipped",
        "not re-sent: order.cancelled",
    )


def test_a_held_message_that_arrived_is_marked_sent_and_nothing_goes(db, frozen_clock, adapters):
    held, worker = _held_confirmation(db, adapters, frozen_clock)
    handed_over = frozen_clock.now - timedelta(seconds=61)
    frozen_clock.advance(timedelta(hours=2))

    _decide(db, held, mark_arrived, now=frozen_clock.now)
    drain(worker)

    [message] = rows(db, Message)
    assert (message.status, message.status_reason, message.sent_at) == (
        "sent",
        f"held for review, then found delivered by {ADMIN}",
        handed_over,
    )
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    assert [j.status for j in rows(db, Job)] == [JobStatus.DONE]
    with db.transaction() as session:
        assert held_messages(session, workspace_id=held.workspace_id) == []


def test_the_held_list_names_the_message_and_its_customer_for_its_store_only(
    db, frozen_clock, adapters
):
    held, _ = _held_dispatch(db, adapters, frozen_clock)

    with db.transaction() as session:
        [item] = held_messages(session, workspace_id=held.workspace_id)
        elsewhere = held_messages(session, workspace_id=held.workspace_id + 1)
        described = (item.message.id, item.what, item.customer.first_name)

    assert described == (held.id, "Dispatch", "Grace")
    assert elsewhere == []


@pytest.mark.parametrize("decision", [mark_arrived, send_again], ids=["arrived", "send_again"])
def test_only_a_held_message_of_the_store_is_reviewed(db, frozen_clock, adapters, decision):
    held, _ = _held_confirmation(db, adapters, frozen_clock)

    with pytest.raises(NotFound):
        _decide(db, held, decision, workspace_id=held.workspace_id + 1, now=frozen_clock.now)
    _decide(db, held, mark_arrived, now=frozen_clock.now)
    with pytest.raises(Conflict, match=f"message {held.id} is sent: only held messages"):
        _decide(db, held, decision, now=frozen_clock.now)

    [message] = rows(db, Message)
    assert message.status == "sent"
    assert [j.status for j in rows(db, Job)] == [JobStatus.DONE]


def test_a_held_message_is_not_sent_again_while_its_job_still_runs(db, frozen_clock, adapters):
    held, _ = _held_confirmation(db, adapters, frozen_clock)
    with db.transaction() as session:
        session.execute(update(Job).values(status=JobStatus.RUNNING))

    with pytest.raises(Conflict, match="the job that sent this message is running"):
        _decide(db, held, send_again, now=frozen_clock.now)

    [message] = rows(db, Message)
    assert message.status == "held"
    assert [j.status for j in rows(db, Job)] == [JobStatus.RUNNING]


def test_a_held_reply_that_did_not_arrive_goes_out_as_written(db, frozen_clock, adapters, tmp_path):
    seed(db)
    received = customer_writes(
        db, channel=ChannelKind.SMS, sender="+12025550143", text="thank you!"
    )
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    drain(worker)  # the assistant's turn, whatever it made of it
    with db.transaction() as session:
        conversation = session.get_one(Conversation, received.conversation_id)
        reply = replies.queue_reply(
            session,
            workspace=session.get_one(Workspace, conversation.workspace_id),
            conversation=conversation,
            text="Sam here: glad it arrived!",
            author=Author.AGENT,
            idempotency_key="agent-reply-1",
            sender="Sam Agent",
        )
        reply_id = reply.id
    hold_next_send(worker, frozen_clock)
    held = _held(db)
    assert held.id == reply_id

    _decide(db, held, send_again, now=frozen_clock.now)
    drain(worker)

    sent = [
        sms for sms in adapters[ChannelKind.SMS].sent if sms.text == "Sam here: glad it arrived!"
    ]
    assert len(sent) == 2  # the one handed over before the stop, and this one
    [message] = rows(db, Message, Message.id == reply_id)
    assert (message.status, message.attempts, message.status_reason) == ("sent", 2, None)


def _twilio_receipt(db, params: dict[str, str], reference: str):
    """Twilio's status callback, posted to (and signed over) the StatusCallback URL the
    message was sent with: parley's receipt URL with the message's reference."""
    settings = get_settings(database_url=db.url, embedded_worker=False, public_url=PUBLIC_URL)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    query = urlencode({REFERENCE_PARAMETER: reference})
    url = twilio.public_url(PUBLIC_URL, "/webhooks/twilio/demo", query)
    with TestClient(app, base_url="http://internal:8000") as client:
        return client.post(
            f"/webhooks/twilio/demo?{query}",
            content=urlencode(params),
            headers={
                "X-Twilio-Signature": twilio.compute_signature(
                    url, params, Settings().demo_twilio_auth_token
                ),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )


def _delivered(sid: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "To": "+447700900003",
        "From": Settings().twilio_from_number,
        "AccountSid": Settings().twilio_account_sid,
    }


def test_twilios_receipt_naming_a_held_sms_settles_it_with_no_one_deciding(
    db, frozen_clock, adapters
):
    """The worker died after Twilio took Grace's SMS; Twilio's receipt comes back to the
    StatusCallback URL the SMS was sent with, which names it: it is delivered, as of its
    hand-over, with Twilio's sid, and nothing is sent again (RELIABILITY S2)."""
    held, worker = _held_dispatch(db, adapters, frozen_clock)
    handed_over = frozen_clock.now - timedelta(seconds=61)

    answer = _twilio_receipt(
        db, _delivered("SM-held-1"), message_reference(held.workspace_id, held.id)
    )
    drain(worker)

    assert answer.status_code == 200
    [message] = rows(db, Message, Message.id == held.id)
    assert (message.status, message.provider_message_id, message.sent_at) == (
        MessageStatus.DELIVERED,
        "SM-held-1",
        handed_over,
    )
    assert message.status_reason == (
        "held for review, then settled by the provider's receipt: it reached the provider"
    )
    with db.transaction() as session:
        assert held_messages(session, workspace_id=held.workspace_id) == []
    assert len(adapters[ChannelKind.SMS].sent) == 1


def test_a_whatsapp_receipt_naming_a_held_message_settles_it(db, frozen_clock, adapters):
    held, _ = _held_dispatch(db, adapters, frozen_clock, shopper="Ada")
    assert held.channel == "whatsapp"

    with db.transaction() as session:
        assert inbox.apply_status(
            session,
            workspace_id=held.workspace_id,
            status=StatusUpdate(
                channel=ChannelKind.WHATSAPP,
                provider_message_id="wamid.held",
                status="sent",
                reference=message_reference(held.workspace_id, held.id),
            ),
        )

    [message] = rows(db, Message, Message.id == held.id)
    assert (message.status, message.provider_message_id, message.status_reason) == (
        MessageStatus.SENT,
        "wamid.held",
        "held for review, then settled by the provider's receipt: it reached the provider",
    )


def test_a_receipt_for_a_send_whose_answer_timed_out_settles_it_and_it_is_not_sent_again(
    db, frozen_clock, adapters
):
    """Twilio took the SMS, but its answer never came (a timeout: retried later); its
    receipt, naming the message, arrives before the retry."""
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

    receipt = {**_delivered("SM-first"), "MessageStatus": "sent", "SmsStatus": "sent"}
    answer = _twilio_receipt(db, receipt, message_reference(waiting.workspace_id, waiting.id))
    for _ in range(6):
        frozen_clock.advance(timedelta(minutes=10))
        drain(worker)

    assert answer.status_code == 200
    [message] = rows(db, Message, Message.id == waiting.id)
    assert (message.status, message.provider_message_id, message.status_reason) == (
        MessageStatus.SENT,
        "SM-first",
        "its answer lost, waiting to be sent again, then settled by the provider's receipt:"
        " it reached the provider",
    )
    assert len(sms.sent) == 1
    assert count(db, Job, Job.status != JobStatus.DONE) == 0


@pytest.mark.parametrize("named", ["another store's", "another channel's"])
def test_a_receipt_settles_only_a_held_message_of_its_store_and_channel(
    db, frozen_clock, adapters, named
):
    held, _ = _held_dispatch(db, adapters, frozen_clock)
    workspace_id = held.workspace_id + 1 if named == "another store's" else held.workspace_id
    channel = ChannelKind.WHATSAPP if named == "another channel's" else ChannelKind.SMS

    with db.transaction() as session:
        assert not inbox.apply_status(
            session,
            workspace_id=held.workspace_id,
            status=StatusUpdate(
                channel=channel,
                provider_message_id="SM-other",
                status="delivered",
                reference=message_reference(workspace_id, held.id),
            ),
        )

    [message] = rows(db, Message, Message.id == held.id)
    assert (message.status, message.provider_message_id) == (MessageStatus.HELD, None)


def test_a_receipt_that_comes_before_the_hold_lets_the_restarted_worker_find_it_arrived(
    db, frozen_clock, adapters
):
    """The usual order: Twilio's receipt comes seconds after the hand-over, while the
    dead worker's SMS is still `sending`, and the lease runs out a minute later. The
    receipt names the SMS, so the next worker marks it sent instead of holding it."""
    worker = _dispatch_handed_over(db, adapters, "Grace")
    [sending] = rows(db, Message, Message.status == MessageStatus.SENDING)
    handed_over = frozen_clock.now
    receipt = {**_delivered("SM-early-1"), "MessageStatus": "sent", "SmsStatus": "sent"}

    answer = _twilio_receipt(db, receipt, message_reference(sending.workspace_id, sending.id))
    frozen_clock.advance(timedelta(seconds=61))
    drain(worker)
    frozen_clock.advance(timedelta(minutes=5))
    drain(worker)

    assert answer.status_code == 200
    [message] = rows(db, Message, Message.id == sending.id)
    assert (message.status, message.provider_message_id, message.sent_at) == (
        MessageStatus.SENT,
        "SM-early-1",
        handed_over,
    )
    assert message.status_reason == (
        "the send was interrupted after it was handed to the provider, whose receipt shows"
        " it arrived"
    )
    with db.transaction() as session:
        assert held_messages(session, workspace_id=message.workspace_id) == []
    assert len(adapters[ChannelKind.SMS].sent) == 1
