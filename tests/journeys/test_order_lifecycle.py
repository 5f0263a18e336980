"""The order-lifecycle journeys, from signed Shopify delivery to the provider, on both engines."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from parley.channels.base import ChannelKind, PermanentChannelError, TransientChannelError
from parley.commerce.models import Fulfillment, Order
from parley.customers.models import ConsentRecord, Customer
from parley.demo.simulate import shopper_dict
from parley.http.webhooks.shopify import store
from parley.integrations.shopify import payloads
from parley.jobs.models import Job, JobStatus
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging import service as outbox
from parley.messaging.lookup import OutboxLookup
from parley.messaging.models import DeliveryAttempt, Message, MessageStatus
from parley.workspaces.models import Workspace
from support import (
    count,
    deliveries,
    drain,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    shopper,
    signed,
    verified,
)


@pytest.fixture
def adapters():
    return recording_adapters()


def test_order_created_sends_one_confirmation_email(db, frozen_clock, adapters):
    seed(db)
    placed, *_ = deliveries("Grace")

    assert post(db, placed)["status"] == "accepted"
    drain(make_worker(db, adapters))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.to == "grace@example.com"
    assert email.subject == "Your Juniper & Pine order #1501 is confirmed"
    assert adapters[ChannelKind.SMS].sent == adapters[ChannelKind.WHATSAPP].sent == []
    [message] = rows(db, Message)
    assert (message.message_type, message.channel, message.status) == (
        "order_confirmation",
        "email",
        MessageStatus.SENT,
    )
    assert message.provider_message_id == "email-0"


@pytest.mark.parametrize(
    ("first_name", "channel", "recipient"),
    [
        pytest.param("Ada", ChannelKind.WHATSAPP, "+447911123456", id="whatsapp_consent"),
        pytest.param("Grace", ChannelKind.SMS, "+12025550143", id="sms_consent_only"),
        pytest.param("Alan", ChannelKind.EMAIL, "alan@example.com", id="email_only"),
    ],
)
def test_dispatch_goes_to_the_first_channel_the_customer_consented_to(
    db, frozen_clock, adapters, first_name, channel, recipient
):
    seed(db)
    placed, dispatched, *_ = deliveries(first_name)
    post(db, placed)
    post(db, dispatched)
    drain(make_worker(db, adapters))

    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.channel, dispatch.recipient, dispatch.status) == (channel, recipient, "sent")
    sent = adapters[channel].sent[-1]
    if channel is ChannelKind.WHATSAPP:
        assert sent.template is not None
        assert sent.template.name == "order_dispatched"
        assert "1Z999AA1" in " ".join(sent.template.body_parameters) or any(
            "http" in p for p in sent.template.body_parameters
        )
    else:
        assert "#1501" in sent.text


def test_skipped_channels_are_explained_on_the_message(db, frozen_clock, adapters):
    seed(db)
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    post(db, dispatched)
    drain(make_worker(db, adapters))

    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert dispatch.decision == ["whatsapp: no consent"]


def test_whole_lifecycle_sends_four_messages_then_satisfaction_check_a_day_later(
    db, frozen_clock, adapters
):
    seed(db)
    worker = make_worker(db, adapters)
    for delivery in deliveries("Ada"):
        post(db, delivery)
        drain(worker)

    types = [m.message_type for m in rows(db, Message)]
    assert types == ["order_confirmation", "dispatch", "out_for_delivery", "delivered"]

    frozen_clock.advance(timedelta(hours=23, minutes=59))
    drain(worker)
    assert count(db, Message, Message.message_type == "satisfaction_check") == 0

    frozen_clock.advance(timedelta(minutes=1))
    drain(worker)
    [check] = rows(db, Message, Message.message_type == "satisfaction_check")
    assert (check.channel, check.status) == ("email", "sent")
    statuses = {run.status for run in rows(db, JourneyRun)}
    assert statuses == {RunStatus.COMPLETED}


def test_the_satisfaction_check_links_to_the_stores_review_page(db, frozen_clock, adapters):
    seed(db)
    with db.transaction() as session:
        workspace = session.get_one(Workspace, 1)
        review = "https://juniper-and-pine.example/pages/reviews"
        workspace.settings = {**workspace.settings, "review_url": review}
    worker = make_worker(db, adapters)
    for delivery in deliveries("Alan"):
        post(db, delivery)
        drain(worker)
    frozen_clock.advance(timedelta(hours=24))
    drain(worker)

    *_, check = adapters[ChannelKind.EMAIL].sent
    assert "It only takes a minute: https://juniper-and-pine.example/pages/reviews" in check.text
    assert 'href="https://juniper-and-pine.example/pages/reviews"' in (check.html or "")


def test_a_shopify_store_without_a_site_of_its_own_links_to_its_shop(db, frozen_clock, adapters):
    """WhatsApp refuses an empty template parameter: a parcel with no tracking link, of an
    order with no status page, from a store that never gave its site, links to the shop
    Shopify serves (which sends shoppers on to the store's own domain)."""
    seed(db)
    placed, dispatched, out_for_delivery, _ = deliveries("Ada")
    with db.transaction() as session:
        session.get_one(Workspace, 1).store_url = None
    worker = make_worker(db, adapters)
    for delivery in (placed, dispatched, out_for_delivery):
        post(db, delivery)
    with db.transaction() as session:
        session.execute(update(Fulfillment).values(tracking_url=None))
        session.execute(update(Order).values(status_url=None))
    drain(worker)

    *_, update_message = adapters[ChannelKind.WHATSAPP].sent
    assert update_message.template is not None
    assert update_message.template.body_parameters == (
        "Ada",
        "#1501",
        "https://parley-demo.myshopify.com",
    )


def test_parcel_updates_the_worker_reaches_only_after_delivery_are_not_sent(
    db, frozen_clock, adapters
):
    seed(db)
    placed, dispatched, out_for_delivery, delivered = deliveries("Ada")
    worker = make_worker(db, adapters)
    post(db, placed)
    post(db, dispatched)
    post(db, out_for_delivery)
    drain(worker)  # a worker behind: the parcel is out for delivery when it gets to dispatch
    post(db, delivered)
    drain(worker)

    assert [m.message_type for m in rows(db, Message)] == [
        "order_confirmation",
        "out_for_delivery",
        "delivered",
    ]
    assert sum(len(adapter.sent) for adapter in adapters.values()) == 3
    ended = {
        (run.status, run.exit_reason)
        for run in rows(db, JourneyRun)
        if run.status == RunStatus.EXITED
    }
    assert ended == {
        (RunStatus.EXITED, "superseded: the parcel is already out for delivery or further")
    }


def test_an_out_for_delivery_update_reached_after_delivery_is_not_sent(db, frozen_clock, adapters):
    seed(db)
    placed, dispatched, out_for_delivery, delivered = deliveries("Grace")
    worker = make_worker(db, adapters)
    for delivery in (placed, dispatched):
        post(db, delivery)
        drain(worker)
    post(db, out_for_delivery)
    post(db, delivered)
    drain(worker)

    assert [m.message_type for m in rows(db, Message)] == [
        "order_confirmation",
        "dispatch",
        "delivered",
    ]
    [skipped] = rows(db, JourneyRun, JourneyRun.status == RunStatus.EXITED)
    assert skipped.exit_reason == (
        "superseded: the parcel is already past out for delivery (delivered, tried at the"
        " door, at a pickup point or failed)"
    )
    assert sum(len(adapter.sent) for adapter in adapters.values()) == 3


def _carrier_later(out_for_delivery: Any, status: str, minutes: int = 1) -> tuple[bytes, dict]:
    """The carrier's next word on the parcel: ``out_for_delivery``'s delivery with another
    ``shipment_status``, ``minutes`` later."""
    payload = json.loads(out_for_delivery.body)
    at = datetime.fromisoformat(payload["updated_at"]) + timedelta(minutes=minutes)
    payload.update(shipment_status=status, updated_at=at.isoformat())
    return signed("fulfillments/update", payload, webhook_id=f"carrier-{status}", at=at)


@pytest.mark.parametrize("later", ["attempted_delivery", "ready_for_pickup", "failure"])
def test_a_dispatch_reached_after_the_carrier_tried_or_left_it_for_pickup_is_not_sent(
    db, frozen_clock, adapters, later
):
    seed(db)
    placed, dispatched, out_for_delivery, _ = deliveries("Ada")
    worker = make_worker(db, adapters)
    post(db, placed)
    drain(worker)
    post(db, dispatched)
    body, headers = _carrier_later(out_for_delivery, later)
    post(db, None, body=body, headers=headers)
    drain(worker)  # a worker behind: the parcel is past dispatch when it gets to it

    assert [m.message_type for m in rows(db, Message)] == ["order_confirmation"]
    [ended] = rows(db, JourneyRun, JourneyRun.status == RunStatus.EXITED)
    assert ended.exit_reason == "superseded: the parcel is already out for delivery or further"
    assert adapters[ChannelKind.WHATSAPP].sent == []


@pytest.mark.parametrize("later", ["attempted_delivery", "ready_for_pickup", "failure"])
def test_an_out_for_delivery_update_reached_after_a_failed_attempt_is_not_sent(
    db, frozen_clock, adapters, later
):
    seed(db)
    placed, dispatched, out_for_delivery, _ = deliveries("Grace")
    worker = make_worker(db, adapters)
    for delivery in (placed, dispatched):
        post(db, delivery)
        drain(worker)
    post(db, out_for_delivery)
    body, headers = _carrier_later(out_for_delivery, later)
    post(db, None, body=body, headers=headers)
    drain(worker)

    assert [m.message_type for m in rows(db, Message)] == ["order_confirmation", "dispatch"]
    [ended] = rows(db, JourneyRun, JourneyRun.status == RunStatus.EXITED)
    assert ended.exit_reason == (
        "superseded: the parcel is already past out for delivery (delivered, tried at the"
        " door, at a pickup point or failed)"
    )
    assert len(adapters[ChannelKind.SMS].sent) == 1


def _dispatch_waiting_for_its_retry(db, adapters) -> tuple[Any, Any]:
    """Ada's order placed and dispatched, the WhatsApp dispatch message's first attempt
    refused with a 503: it waits for its retry. The worker, and the parcel's next update."""
    seed(db)
    placed, dispatched, out_for_delivery, _ = deliveries("Ada", order_id=781, number=1781)
    worker = make_worker(db, adapters)
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.WHATSAPP].script.append(TransientChannelError("503 from provider"))
    post(db, dispatched)
    drain(worker)
    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.channel, dispatch.status) == ("whatsapp", MessageStatus.QUEUED)
    return worker, out_for_delivery


def test_a_dispatch_waiting_for_its_retry_is_skipped_once_the_parcel_is_out_for_delivery(
    db, frozen_clock, adapters
):
    worker, out_for_delivery = _dispatch_waiting_for_its_retry(db, adapters)

    post(db, out_for_delivery)
    frozen_clock.advance(timedelta(hours=1))
    drain(worker)

    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.status, dispatch.status_reason) == (
        MessageStatus.SKIPPED,
        "not sent: the journey ended (superseded: the parcel is already out for delivery or "
        "further)",
    )
    [update] = rows(db, Message, Message.message_type == "out_for_delivery")
    assert update.status == MessageStatus.SENT
    assert [m.idempotency_key for m in adapters[ChannelKind.WHATSAPP].sent] == [
        f"parley-{update.workspace_id}-{update.id}"
    ]
    assert count(db, Job, Job.status != JobStatus.DONE) == 0


def test_a_dispatch_waiting_for_its_retry_is_skipped_once_the_order_is_cancelled(
    db, frozen_clock, adapters
):
    worker, _ = _dispatch_waiting_for_its_retry(db, adapters)

    body, headers = _cancelled(order_id=781, number=1781, at=frozen_clock.now)
    post(db, None, body=body, headers=headers)
    frozen_clock.advance(timedelta(hours=1))
    drain(worker)

    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.status, dispatch.status_reason) == (
        MessageStatus.SKIPPED,
        "not sent: the journey ended (order.cancelled)",
    )
    assert adapters[ChannelKind.WHATSAPP].sent == []
    assert count(db, Job, Job.status != JobStatus.DONE) == 0


def _cancelled(*, order_id: int, number: int, at: datetime) -> tuple[bytes, dict[str, str]]:
    """Ada's order, cancelled two minutes after ``at``: a signed ``orders/cancelled``."""
    return signed(
        "orders/cancelled",
        payloads.order_payload(
            order_id=order_id,
            number=number,
            customer=shopper_dict(shopper("Ada")),
            line_items=[{"title": "Tee", "quantity": 1, "price": "24.00", "sku": "T"}],
            created_at=at,
            updated_at=at + timedelta(minutes=2),
            cancelled_at=at + timedelta(minutes=2),
        ),
        webhook_id=f"cancel-{order_id}",
    )


def test_cancelled_order_gets_no_dispatch_message_even_when_cancelled_after_it_was_planned(
    db, frozen_clock, adapters
):

    seed(db)
    placed, dispatched, *_ = deliveries("Ada", order_id=777, number=1777)
    post(db, placed)
    drain(make_worker(db, adapters))
    post(db, dispatched)  # dispatch journey planned, not yet run
    body, headers = _cancelled(order_id=777, number=1777, at=frozen_clock.now)
    post(db, None, body=body, headers=headers)
    drain(make_worker(db, adapters))

    assert count(db, Message, Message.message_type == "dispatch") == 0
    assert adapters[ChannelKind.WHATSAPP].sent == []
    [run] = rows(db, JourneyRun, JourneyRun.run_key.like("fulfillment:%"))
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, "order.cancelled")


def test_an_order_cancelled_in_the_same_batch_as_its_dispatch_gets_no_dispatch_message(
    db, frozen_clock, adapters
):
    """Under load the route writes waiting deliveries in one transaction (group commit),
    one after the other: the cancel, last in the batch, ends the dispatch run that a
    delivery before it in the same uncommitted transaction started."""
    seed(db)
    placed, dispatched, *_ = deliveries("Ada", order_id=779, number=1779)
    body, headers = _cancelled(order_id=779, number=1779, at=frozen_clock.now)
    batch = [
        verified(db, placed.body, placed.headers),
        verified(db, dispatched.body, dispatched.headers),
        verified(db, body, headers),
    ]

    with db.transaction() as session:
        answers = [store(session, item) for item in batch]
    drain(make_worker(db, adapters))

    assert [answer.body["journeys_started"] for answer in answers] == [1, 1, 0]
    [run] = rows(db, JourneyRun, JourneyRun.run_key.like("fulfillment:%"))
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, "order.cancelled")
    assert count(db, Message, Message.message_type == "dispatch") == 0
    assert adapters[ChannelKind.WHATSAPP].sent == []


def test_exit_is_rechecked_immediately_before_the_send(db, frozen_clock, adapters):
    """The cancellation is only visible in state (orders/updated), not as an exit event."""
    seed(db)
    placed, dispatched, *_ = deliveries("Grace", order_id=778, number=1778)
    post(db, placed)
    post(db, dispatched)
    with db.transaction() as session:
        session.execute(update(Order).values(cancelled_at=frozen_clock.now))
    drain(make_worker(db, adapters))

    assert count(db, Message, Message.message_type == "dispatch") == 0
    assert adapters[ChannelKind.SMS].sent == []


def test_provider_outage_is_retried_with_backoff_then_dead_lettered(db, frozen_clock, adapters):
    seed(db)
    adapters[ChannelKind.EMAIL].script = [TransientChannelError("503 from provider")] * 8
    worker = make_worker(db, adapters, max_attempts_base=5.0)
    post(db, deliveries("Alan")[0])

    delays = []
    for _ in range(8):
        drain(worker)
        [job] = rows(db, Job)
        if job.status == JobStatus.DEAD:
            break
        delays.append((job.due_at - frozen_clock.now).total_seconds())
        frozen_clock.advance(job.due_at - frozen_clock.now)

    [job] = rows(db, Job)
    assert job.status == JobStatus.DEAD
    assert job.attempts == 8
    assert job.last_error == "gave up after 8 attempts: 503 from provider"
    assert len(delays) == 7
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(3600.0, 5.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    [message] = rows(db, Message)
    assert message.status == MessageStatus.FAILED
    assert message.status_reason == "dead letter after 8 attempts: 503 from provider"
    assert [a.outcome for a in rows(db, DeliveryAttempt)] == ["transient_error"] * 8
    assert adapters[ChannelKind.EMAIL].sent == []


def test_transient_failure_then_success_sends_exactly_once(db, frozen_clock, adapters):
    seed(db)
    adapters[ChannelKind.EMAIL].script = [TransientChannelError("timeout", retry_after=30)]
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    first_try = frozen_clock.now
    drain(worker)
    [job] = rows(db, Job)
    assert job.status == JobStatus.PENDING
    assert (job.due_at - frozen_clock.now).total_seconds() >= 30

    frozen_clock.advance(timedelta(minutes=5))
    drain(worker)
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [message] = rows(db, Message)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 2)
    second_try = first_try + timedelta(minutes=5)
    assert [
        (a.number, a.channel, a.outcome, a.error, a.started_at, a.finished_at)
        for a in rows(db, DeliveryAttempt, order_by=lambda m: m.number)
    ] == [
        (1, "email", "transient_error", "timeout", first_try, first_try),
        (2, "email", "sent", None, second_try, second_try),
    ]


def test_a_message_another_worker_recorded_first_is_not_sent_again(
    db, frozen_clock, adapters, monkeypatch
):
    """A job reclaimed while its first worker was still preparing it: both plan the same
    message, the first records it. The second finds the key taken when it records its
    batch; that job waits and then resumes from the recorded message, the rest of its
    batch goes out."""
    seed(db)
    post(db, deliveries("Grace")[0])
    post(db, deliveries("Ada", order_id=502, number=1502)[0])
    [grace_job, ada_job] = rows(db, Job, order_by=lambda j: j.id)
    grace_key = f"journey:{grace_job.payload['run_id']}:0"
    with db.transaction() as session:
        [grace] = session.scalars(select(Customer).where(Customer.first_name == "Grace"))
        outbox.insert_message(
            session,
            {
                **outbox.blank_row(workspace_id=grace.workspace_id, now=frozen_clock.now),
                "customer_id": grace.id,
                "idempotency_key": grace_key,
                "message_type": "order_confirmation",
                "channel": "email",
                "status": MessageStatus.SENT,
                "provider": "email",
                "provider_message_id": "the-other-worker",
            },
        )
    # This worker read the outbox before the other worker's message was committed.
    unseen = {grace_key}
    real_message = OutboxLookup.message

    def read_before_the_race(lookup, workspace_id, idempotency_key):
        if idempotency_key in unseen:
            return None
        return real_message(lookup, workspace_id, idempotency_key)

    monkeypatch.setattr(OutboxLookup, "message", read_before_the_race)
    worker = make_worker(db, adapters)
    drain(worker)

    [ada_email] = adapters[ChannelKind.EMAIL].sent
    assert ada_email.to == "ada@example.com"
    jobs = {job.id: job for job in rows(db, Job)}
    assert jobs[ada_job.id].status == JobStatus.DONE
    assert (jobs[grace_job.id].status, jobs[grace_job.id].last_error) == (
        JobStatus.PENDING,
        f"job {grace_job.id}: another worker recorded its message first",
    )

    unseen.clear()
    frozen_clock.advance(timedelta(minutes=1))
    drain(worker)
    assert [email.to for email in adapters[ChannelKind.EMAIL].sent] == ["ada@example.com"]
    assert rows(db, Job, Job.id == grace_job.id)[0].status == JobStatus.DONE
    [graces] = rows(db, Message, Message.idempotency_key == grace_key)
    assert (graces.status, graces.provider_message_id) == (MessageStatus.SENT, "the-other-worker")


def test_permanent_whatsapp_refusal_falls_back_to_sms(db, frozen_clock, adapters):
    seed(db)
    adapters[ChannelKind.WHATSAPP].script = [
        PermanentChannelError("not a WhatsApp user", provider_code="131026")
    ]
    placed, dispatched, *_ = deliveries("Frida")
    post(db, placed)
    post(db, dispatched)
    drain(make_worker(db, adapters))

    dispatch = rows(db, Message, Message.message_type == "dispatch")
    assert [(m.channel, m.status) for m in dispatch] == [("whatsapp", "failed"), ("sms", "sent")]
    assert dispatch[1].decision == ["whatsapp: failed earlier for this step"]
    assert len(adapters[ChannelKind.SMS].sent) == 1
    # Not a WhatsApp user is not an opt-out: no consent is revoked.
    assert rows(db, ConsentRecord, ConsentRecord.source.startswith("provider error")) == []


def test_crash_after_handing_over_is_held_for_review_not_resent(db, frozen_clock, adapters):
    """The worker dies between the provider's 2xx and our commit (RELIABILITY S2)."""
    seed(db)
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [claimed] = worker._claim()
    [(job, work)] = worker._prepare_all([claimed])
    handed_over = frozen_clock.now
    asyncio.run(worker.tasks[job.kind].perform(work))  # the provider accepted it...
    # ...and the process died before _finish_all. The lease runs out:
    frozen_clock.advance(timedelta(seconds=61))
    drain(make_worker(db, adapters))

    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD
    assert message.status_reason.startswith("held for review")
    [attempt] = rows(db, DeliveryAttempt)
    assert (attempt.number, attempt.outcome, attempt.started_at, attempt.finished_at) == (
        1,
        "interrupted",
        handed_over,
        handed_over + timedelta(seconds=61),
    )


@pytest.mark.parametrize("crashed", [False, True], ids=["answered", "crashed"])
def test_an_attempt_row_written_at_its_start_by_an_earlier_version_is_completed_in_place(
    db, frozen_clock, adapters, crashed
):
    """Before attempts were written at their outcome, each began as a ``started`` row; a
    send in flight across the upgrade finishes that row rather than adding a second."""
    seed(db)
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [claimed] = worker._claim()
    [(job, work)] = worker._prepare_all([claimed])
    with db.transaction() as session:
        session.add(
            DeliveryAttempt(
                workspace_id=work.workspace_id,
                message_id=work.send.message_id,
                number=1,
                channel="email",
                outcome="started",
                started_at=frozen_clock.now,
            )
        )
    result = asyncio.run(worker.tasks[job.kind].perform(work))
    if crashed:
        frozen_clock.advance(timedelta(seconds=61))
        drain(make_worker(db, adapters))
    else:
        worker._finish_all([(job, work)], [result])

    [attempt] = rows(db, DeliveryAttempt)
    assert (attempt.number, attempt.outcome) == (1, "interrupted" if crashed else "sent")
    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_same_webhook_ten_times_gives_one_message(db, frozen_clock, adapters):
    seed(db)
    placed = deliveries("Ada")[0]
    answers = [post(db, placed)["status"] for _ in range(10)]
    drain(make_worker(db, adapters))

    assert answers == ["accepted"] + ["duplicate"] * 9
    assert count(db, Message) == 1
    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_each_answer_of_a_batch_is_recorded_on_its_own_message(db, frozen_clock, adapters):
    seed(db)
    for n, first_name in enumerate(("Ada", "Grace", "Alan")):
        placed, *_ = deliveries(first_name, order_id=601 + n, number=1601 + n)
        post(db, placed)
    adapters[ChannelKind.EMAIL].script = [
        TransientChannelError("503 from provider"),
        PermanentChannelError("mailbox unavailable", provider_code="550"),
    ]

    drain(make_worker(db, adapters))

    emails = rows(db, Message, Message.channel == "email")
    attempts = {attempt.message_id: attempt for attempt in rows(db, DeliveryAttempt)}
    recorded = {
        (
            message.status,
            message.status_reason,
            message.provider_message_id,
            attempts[message.id].outcome,
            attempts[message.id].error,
            attempts[message.id].provider_code,
        )
        for message in emails
    }
    assert recorded == {
        (
            MessageStatus.QUEUED,
            "retrying after attempt 1: 503 from provider",
            None,
            "transient_error",
            "503 from provider",
            None,
        ),
        (
            MessageStatus.FAILED,
            "mailbox unavailable",
            None,
            "permanent_error",
            "mailbox unavailable",
            "550",
        ),
        (MessageStatus.SENT, None, "email-0", "sent", None, None),
    }
    [sent] = adapters[ChannelKind.EMAIL].sent
    [sent_row] = [message for message in emails if message.status == MessageStatus.SENT]
    assert sent.to == sent_row.recipient


def test_an_sms_refused_because_the_number_replied_stop_revokes_sms_and_goes_by_email(
    db, frozen_clock, adapters
):
    """Twilio's 21610: the number replied STOP to the store's number. That is Grace's own
    opt-out, recorded as such, so her later messages do not try SMS again (RELIABILITY S4)."""
    seed(db)
    adapters[ChannelKind.SMS].script = [
        PermanentChannelError("the recipient has opted out", provider_code="21610")
    ]
    placed, dispatched, out_for_delivery, _ = deliveries("Grace")
    for delivery in (placed, dispatched):
        post(db, delivery)
    drain(make_worker(db, adapters))

    dispatch = rows(db, Message, Message.message_type == "dispatch")
    assert [(m.channel, m.status) for m in dispatch] == [("sms", "failed"), ("email", "sent")]
    revoked = rows(db, ConsentRecord, ConsentRecord.source == "provider error 21610")
    assert sorted((r.channel, r.purpose, r.is_granted) for r in revoked) == [
        ("sms", "marketing", False),
        ("sms", "transactional", False),
    ]

    post(db, out_for_delivery)
    drain(make_worker(db, adapters))
    later = rows(db, Message, Message.message_type == "out_for_delivery")
    assert [(m.channel, m.status, m.status_reason) for m in later] == [
        ("sms", "skipped", "opted out: not sent on sms"),
        ("email", "sent", None),
    ]
    assert len(adapters[ChannelKind.SMS].sent) == 0


def test_a_message_already_scheduled_when_the_store_uninstalls_is_not_sent(
    db, frozen_clock, adapters
):
    """Alan's satisfaction check waits its day when the store uninstalls parley: when it
    comes due it is recorded with the reason and nothing goes out (RELIABILITY W13)."""
    seed(db)
    worker = make_worker(db, adapters)
    for delivery in deliveries("Alan"):
        post(db, delivery)
    drain(worker)
    sent = {kind: len(adapter.sent) for kind, adapter in adapters.items()}
    body, headers = signed("app/uninstalled", {"id": 1, "name": "parley demo"}, webhook_id="bye")
    post(db, None, body=body, headers=headers)

    frozen_clock.advance(timedelta(hours=24))
    drain(worker)

    [check] = rows(db, Message, Message.message_type == "satisfaction_check")
    assert (check.status, check.status_reason) == (
        "skipped",
        "the store has uninstalled parley",
    )
    assert {kind: len(adapter.sent) for kind, adapter in adapters.items()} == sent
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}
