"""A store's dead letter as its admin page reads it: each job with the message it was
sending and to whom, on both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from parley.channels.base import ChannelKind, PermanentChannelError, TransientChannelError
from parley.dead_letter import failed_sends, jobs_to_send_again
from parley.inbox.models import Conversation
from parley.jobs import queue
from parley.jobs.models import Job
from parley.messaging.models import Author, Message
from parley.messaging.replies import queue_reply
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import (
    SECRET,
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    rows,
    seed,
)

OUTAGE = [TransientChannelError("503 from provider")] * 8


@pytest.fixture
def adapters():
    return all_adapters()


def _until_idle(db, worker, clock) -> None:
    for _ in range(30):
        drain(worker)
        pending = rows(db, Job, Job.status == "pending")
        if not pending:
            return
        clock.advance(max(min(job.due_at for job in pending) - clock.now, timedelta(0)))


def _read(db, workspace_id: int):
    with db.transaction() as session:
        sends = failed_sends(session, workspace_id=workspace_id)
        return [
            (
                send.job.kind,
                send.what,
                send.message.channel if send.message else None,
                send.message.recipient if send.message else None,
                send.customer.first_name if send.customer else None,
                send.why,
            )
            for send in sends
        ]


def test_a_dispatch_that_fell_back_and_then_gave_up_shows_its_last_failed_message(
    db, frozen_clock, adapters, tmp_path
):
    """WhatsApp refused it for good, SMS through every retry: the SMS is what failed."""
    workspace_id = seed(db)
    adapters[ChannelKind.WHATSAPP].script = [PermanentChannelError("not a WhatsApp user")]
    adapters[ChannelKind.SMS].script = list(OUTAGE)
    placed, dispatched, *_ = deliveries("Frida")
    post(db, placed)
    post(db, dispatched)
    _until_idle(db, inbox_worker(db, adapters, tmp_model_dir=tmp_path), frozen_clock)

    [(kind, what, channel, recipient, name, why)] = _read(db, workspace_id)
    assert (kind, what, channel, name) == ("journeys.advance", "Dispatch", "sms", "Frida")
    assert recipient.startswith("+")
    assert why == "dead letter after 8 attempts: 503 from provider"


def test_an_agents_reply_that_gave_up_shows_as_their_reply(db, frozen_clock, adapters, tmp_path):
    workspace_id = seed(db)
    received = customer_writes(
        db, channel=ChannelKind.SMS, sender="+12025550143", text="where is my parcel"
    )
    with db.transaction() as session:
        queue_reply(
            session,
            workspace=session.get_one(Workspace, workspace_id),
            conversation=session.get_one(Conversation, received.conversation_id),
            text="It left today.",
            author=Author.AGENT,
            sender="Sam Agent",
            idempotency_key="reply-1",
        )
    adapters[ChannelKind.SMS].script = OUTAGE * 2  # the assistant's answer fails as well
    _until_idle(db, inbox_worker(db, adapters, tmp_model_dir=tmp_path), frozen_clock)

    dead = _read(db, workspace_id)
    assert ("messaging.deliver", "Reply by Sam Agent", "sms", "+12025550143") in [
        row[:4] for row in dead
    ]


def test_another_stores_dead_letter_is_not_read(db, frozen_clock, adapters, tmp_path):
    workspace_id = seed(db)
    with db.transaction() as session:
        other = workspaces.create_workspace(
            session, slug="other", name="Other", shopify_secret=SECRET
        ).id
    adapters[ChannelKind.EMAIL].script = list(OUTAGE)
    post(db, deliveries("Alan")[0])
    _until_idle(db, inbox_worker(db, adapters, tmp_model_dir=tmp_path), frozen_clock)

    assert [row[1] for row in _read(db, workspace_id)] == ["Order confirmation"]
    assert _read(db, other) == []


def test_only_the_latest_failed_message_of_a_dead_journey_job_is_offered_again(
    db, frozen_clock, adapters, tmp_path
):
    """A confirmation that died, was re-driven and died again shows two failed messages;
    its job sends the step again once, so only the latest offers it."""
    seed(db)
    adapters[ChannelKind.EMAIL].script = list(OUTAGE) * 2
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path)
    post(db, deliveries("Alan")[0])
    _until_idle(db, worker, frozen_clock)
    [dead] = rows(db, Job, Job.status == "dead")
    with db.transaction() as session:
        queue.redrive(session, dead.id)
    _until_idle(db, worker, frozen_clock)

    with db.transaction() as session:
        messages = list(session.scalars(select(Message).order_by(Message.id)))
        offered = jobs_to_send_again(
            session, workspace_id=messages[0].workspace_id, messages=messages
        )
        shown = [(m.idempotency_key.rsplit(":", 1)[-1], m.status) for m in messages]
        offered_ids = {message_id: job.id for message_id, job in offered.items()}

    assert shown == [("0", "failed"), ("r1", "failed")]
    assert offered_ids == {messages[1].id: dead.id}
