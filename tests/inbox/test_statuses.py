"""Delivery receipts move a message's status up the lattice only, in whatever order and
however many times they arrive (read never goes back to delivered)."""

from __future__ import annotations

import logging
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from parley.channels.base import ChannelKind, StatusUpdate
from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers.models import ConsentRecord, Customer
from parley.http.webhooks.inbound import _apply_status
from parley.inbox import service as inbox
from parley.jobs import queue
from parley.jobs.models import Job
from parley.messaging import service as outbox
from parley.messaging.models import Message, MessageStatus
from parley.workspaces.models import Workspace
from support import all_adapters, drain, inbox_worker, rows, seed

RANK = {"sent": 1, "failed": 2, "delivered": 3, "read": 4}
WAMID = "wamid.status-test"


def _outbound(db, workspace_id: int) -> int:
    with db.transaction() as session:
        message_id = outbox.insert_message(
            session,
            {
                **outbox.blank_row(workspace_id=workspace_id, now=utc_now()),
                "idempotency_key": "status-test",
                "message_type": "dispatch",
                "channel": "whatsapp",
                "status": MessageStatus.SENT,
                "provider": "whatsapp",
                "provider_message_id": WAMID,
            },
        )
        assert message_id is not None
        return message_id


def _receipt(status: str) -> StatusUpdate:
    return StatusUpdate(
        channel=ChannelKind.WHATSAPP,
        provider_message_id=WAMID,
        status=status,
        error_code="131026" if status == "failed" else None,
        error_reason="Message undeliverable" if status == "failed" else None,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    receipts=st.lists(st.sampled_from(sorted(RANK)), min_size=1, max_size=8).flatmap(
        st.permutations
    )
)
def test_any_order_and_repetition_of_receipts_ends_at_the_highest_status(db, receipts):
    if not rows(db, Message):
        _outbound(db, seed(db))
    with db.transaction() as session:
        session.execute(update(Message).values(status=MessageStatus.SENT, status_reason=None))
    (message,) = rows(db, Message)
    for receipt in receipts:
        with db.transaction() as session:
            assert inbox.apply_status(
                session, workspace_id=message.workspace_id, status=_receipt(receipt)
            )
    (final,) = rows(db, Message)
    assert final.status == max(receipts, key=RANK.__getitem__)
    if final.status == "failed":
        assert final.status_reason is not None
        assert "131026" in final.status_reason


def test_a_receipt_for_a_message_not_recorded_yet_is_retried_later(db):

    workspace_id = seed(db)
    with db.transaction() as session:
        assert not inbox.apply_status(session, workspace_id=workspace_id, status=_receipt("read"))

    with db.transaction() as session:
        workspace = session.get(Workspace, workspace_id)
        counts = {"statuses": 0}
        _apply_status(session, workspace, _receipt("read"), counts)
    (job,) = rows(db, Job, Job.kind == inbox.RETRY_STATUS)
    assert job.payload["status"] == "read"
    _outbound(db, workspace_id)
    with db.transaction() as session:
        session.execute(update(Job).values(due_at=utc_now()))
    drain(inbox_worker(db, all_adapters()))
    (message,) = rows(db, Message)
    assert message.status == "read"


def test_a_receipt_for_a_message_parley_never_sent_ends_quietly_after_its_retries(
    db, frozen_clock, caplog
):
    """Given a read receipt for a message no parley message is (the store's staff wrote it
    in the provider's app), when its retries are spent, then the job is done, not dead,
    and nothing changed but a log line naming the provider's id."""
    caplog.set_level(logging.INFO, logger="parley.inbox.tasks")
    workspace_id = seed(db)
    with db.transaction() as session:
        _apply_status(
            session, session.get(Workspace, workspace_id), _receipt("read"), {"statuses": 0}
        )
    worker = inbox_worker(db, all_adapters())

    for _ in range(6):
        frozen_clock.advance(timedelta(hours=1))
        drain(worker)

    (job,) = rows(db, Job, Job.kind == inbox.RETRY_STATUS)
    assert (job.status, job.attempts, job.last_error) == ("done", 5, None)
    assert rows(db, Job, Job.status.in_(queue.DEAD_LETTER)) == []
    assert rows(db, Message) == []
    assert caplog.messages[-1] == (
        f"whatsapp read receipt: no message has provider id {WAMID}; dropped after 5 attempts"
    )


def _ada_outbound(db, workspace_id: int) -> int:
    [ada] = rows(db, Customer, Customer.first_name == "Ada")
    _outbound(db, workspace_id)
    with db.transaction() as session:
        session.execute(update(Message).values(customer_id=ada.id))
    return ada.id


def _failed(code: str) -> StatusUpdate:
    return StatusUpdate(
        channel=ChannelKind.WHATSAPP,
        provider_message_id=WAMID,
        status="failed",
        error_code=code,
        error_reason="Unable to deliver the message",
    )


def test_a_whatsapp_receipt_saying_the_customer_stopped_marketing_revokes_marketing_only(db):
    """131050: Ada stopped the store's marketing messages inside WhatsApp (RELIABILITY S4)."""
    workspace_id = seed(db)
    ada_id = _ada_outbound(db, workspace_id)

    with db.transaction() as session:
        assert inbox.apply_status(session, workspace_id=workspace_id, status=_failed("131050"))
        consent = customers.current_consent(session, workspace_id=workspace_id, customer_id=ada_id)

    assert consent[("whatsapp", "marketing")].is_granted is False
    assert consent[("whatsapp", "transactional")].is_granted is True
    revoked = rows(db, ConsentRecord, ConsentRecord.source == "provider error 131050")
    assert [(r.customer_id, r.channel, r.purpose, r.is_granted) for r in revoked] == [
        (ada_id, "whatsapp", "marketing", False)
    ]
    (message,) = rows(db, Message)
    assert message.status_reason == (
        "the provider reported the message failed (131050): Unable to deliver the message"
    )


def test_a_failed_receipt_for_another_reason_revokes_nothing(db):
    workspace_id = seed(db)
    _ada_outbound(db, workspace_id)

    with db.transaction() as session:
        inbox.apply_status(session, workspace_id=workspace_id, status=_failed("131026"))

    assert rows(db, ConsentRecord, ConsentRecord.source.startswith("provider error")) == []


def test_a_receipt_for_a_message_whose_answer_is_still_being_recorded_waits_for_it(db):
    """A receipt may beat the worker's own record of the provider's answer: applied now,
    a "delivered" would be overwritten with the worker's "sent". It counts as not found
    yet, and is applied again later (the caller queues it)."""
    workspace_id = seed(db)
    _outbound(db, workspace_id)
    with db.transaction() as session:
        session.execute(update(Message).values(status=MessageStatus.SENDING))

    with db.transaction() as session:
        assert not inbox.apply_status(
            session, workspace_id=workspace_id, status=_receipt("delivered")
        )

    (message,) = rows(db, Message)
    assert message.status == MessageStatus.SENDING
