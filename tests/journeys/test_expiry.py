"""Journey messages past their expiry are skipped with the reason, not sent late, on both
engines: a worker back from a long outage, or a dead letter sent again days later, does
not deliver yesterday's news (RELIABILITY J5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from parley.channels.base import ChannelKind, TransientChannelError
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.journeys import service as journeys
from parley.journeys import upcoming
from parley.journeys.definitions import JourneyDefinition
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import Message
from parley.workspaces.models import Workspace
from support import (
    deliveries,
    drain,
    edit_journey,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
)


@pytest.fixture
def adapters():
    return recording_adapters()


def _messages(db, message_type: str) -> list[tuple[str, str | None]]:
    return [
        (m.status, m.status_reason) for m in rows(db, Message, Message.message_type == message_type)
    ]


def test_a_confirmation_the_worker_reaches_a_day_late_is_skipped_as_expired(
    db, frozen_clock, adapters
):
    seed(db)
    post(db, deliveries("Alan")[0])
    frozen_clock.advance(timedelta(hours=25))  # no worker ran meanwhile

    drain(make_worker(db, adapters))

    assert _messages(db, "order_confirmation") == [
        (
            "skipped",
            "expired: due 25 h ago, and an order confirmation message goes only within 24 h"
            " of that",
        )
    ]
    assert adapters[ChannelKind.EMAIL].sent == []
    [run] = rows(db, JourneyRun)
    assert run.status == RunStatus.COMPLETED
    assert [job.status for job in rows(db, Job)] == [JobStatus.DONE]


def test_a_confirmation_within_its_expiry_still_goes(db, frozen_clock, adapters):
    seed(db)
    post(db, deliveries("Alan")[0])
    frozen_clock.advance(timedelta(hours=23))

    drain(make_worker(db, adapters))

    assert _messages(db, "order_confirmation") == [("sent", None)]


@pytest.mark.parametrize(
    ("late_hours", "status"), [(70, "sent"), (73, "skipped")], ids=["within", "past"]
)
def test_a_satisfaction_check_counts_its_expiry_from_when_it_was_due(
    db, frozen_clock, adapters, late_hours, status
):
    """Due a day after delivery: its 72 hours run from then, not from the delivery."""
    seed(db)
    worker = make_worker(db, adapters)
    for delivery in deliveries("Alan"):
        post(db, delivery)
    drain(worker)
    frozen_clock.advance(timedelta(hours=24 + late_hours))

    drain(worker)

    [(found, _)] = _messages(db, "satisfaction_check")
    assert found == status


def test_a_dispatch_retrying_past_its_expiry_is_skipped_not_sent(db, frozen_clock, adapters):
    seed(db)
    worker = make_worker(db, adapters)
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    drain(worker)
    adapters[ChannelKind.SMS].script = [TransientChannelError("503 from provider")]
    post(db, dispatched)
    drain(worker)
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING)
    frozen_clock.advance(timedelta(hours=49))  # the worker was down until now

    drain(worker)

    assert _messages(db, "dispatch") == [
        (
            "skipped",
            "expired: due 49 h ago, and a dispatch message goes only within 48 h of that",
        )
    ]
    assert adapters[ChannelKind.SMS].sent == []
    assert rows(db, Job, Job.id == waiting.id)[0].status == JobStatus.DONE


def test_a_confirmation_re_driven_past_its_expiry_is_recorded_not_re_sent(
    db, frozen_clock, adapters
):
    seed(db)
    adapters[ChannelKind.EMAIL].script = [TransientChannelError("503 from provider")] * 8
    worker = make_worker(db, adapters)
    post(db, deliveries("Alan")[0])
    [job] = rows(db, Job)
    for _ in range(20):
        drain(worker)
        [job] = rows(db, Job, Job.id == job.id)
        if job.status == JobStatus.DEAD:
            break
        frozen_clock.advance(max(job.due_at - frozen_clock.now, timedelta(0)))
    frozen_clock.advance(timedelta(days=2))

    with db.transaction() as session:
        queue.redrive(session, job.id)
    drain(worker)

    assert [status for status, _ in _messages(db, "order_confirmation")] == ["failed", "skipped"]
    assert _messages(db, "order_confirmation")[1][1].startswith("not re-sent: expired: due 4")
    assert adapters[ChannelKind.EMAIL].sent == []


@pytest.mark.parametrize("hours", [0, -1, 24 * 91])
def test_an_expiry_must_be_positive_and_at_most_ninety_days(hours):
    with pytest.raises(ValueError, match="expires_after_hours"):
        JourneyDefinition.parse(
            {
                "key": "quick",
                "name": "Quick",
                "trigger": {"event": "order.created"},
                "run_key": "order",
                "steps": [
                    {"type": "send", "message": "order_confirmation", "expires_after_hours": hours}
                ],
            }
        )


def test_the_still_to_come_list_says_a_send_past_its_expiry_will_not_go(db, frozen_clock):
    workspace_id = seed(db)
    post(db, deliveries("Alan")[0])  # no worker runs
    [run] = rows(db, JourneyRun)

    def upcoming_now() -> list[tuple[str | None, str]]:
        with db.transaction() as session:
            sends = upcoming.upcoming_sends(
                session, workspace_id=workspace_id, customer_id=run.customer_id
            )
            return [(send.channel, send.channel_note) for send in sends]

    frozen_clock.advance(timedelta(hours=23))
    on_time = upcoming_now()
    frozen_clock.advance(timedelta(hours=2))
    late = upcoming_now()

    assert on_time == [("email", "")]
    assert late == [
        (
            None,
            "expired: due 25 h ago, and an order confirmation message goes only within 24 h"
            " of that",
        )
    ]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _a_day_long_marketing_text_to_grace_who_gets_none_on_sundays(db) -> None:
    """Grace (New York) takes marketing texts; the store sends none on Sundays and runs
    its dispatch message as a promotion that goes only within 24 h of being due."""
    workspace_id = seed(db)
    with db.transaction() as session:
        grace = session.scalar(select(Customer.id).where(Customer.email == "grace@example.com"))
        customers.record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=grace,
            channel="sms",
            purpose="marketing",
            is_granted=True,
            source="checkout",
        )
        store = session.get_one(Workspace, workspace_id)
        store.settings = {
            **store.settings,
            "quiet_hours": {"opens": 8, "closes": 21, "sundays": False},
        }
        [dispatch] = [
            j.definition["steps"]
            for j in journeys.list_journeys(session, workspace_id=workspace_id)
            if j.key == "dispatch"
        ]
    steps = [
        {**step, "expires_after_hours": 24} if step["type"] == "send" else step for step in dispatch
    ]
    edit_journey(db, "dispatch", lane="marketing", steps=steps)


def _dispatched_on_saturday_night(db, frozen_clock, adapters) -> None:
    """The order ships on Saturday at 21:00 in New York, as the quiet hours begin."""
    frozen_clock.advance(_at("2026-03-07T21:00:00-05:00") - frozen_clock())
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    post(db, dispatched)
    drain(make_worker(db, adapters))
    assert adapters[ChannelKind.SMS].sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING)
    assert waiting.due_at == _at("2026-03-09T08:00:00-04:00")  # Monday, after the clocks moved


def test_a_text_held_by_quiet_hours_past_its_expiry_goes_when_they_end(db, frozen_clock, adapters):
    """S8 "defer, don't drop": 35 h of quiet hours (Saturday night, no Sundays) against
    an expiry of 24 h. Waiting out the quiet hours is not being late."""
    _a_day_long_marketing_text_to_grace_who_gets_none_on_sundays(db)
    _dispatched_on_saturday_night(db, frozen_clock, adapters)

    frozen_clock.advance(_at("2026-03-09T08:00:00-04:00") - frozen_clock())
    drain(make_worker(db, adapters))

    [sms] = adapters[ChannelKind.SMS].sent
    assert sms.to == "+12025550143"
    [message] = rows(db, Message, Message.message_type == "dispatch")
    assert (message.status, message.purpose, message.created_at) == (
        "sent",
        "marketing",
        _at("2026-03-09T08:00:00-04:00"),
    )


def test_a_text_late_for_another_reason_after_its_quiet_hours_still_expires(
    db, frozen_clock, adapters
):
    """Only the quiet hours are excused: the worker then down until Tuesday 11:00 makes
    the text 27 h late, past its 24 h."""
    _a_day_long_marketing_text_to_grace_who_gets_none_on_sundays(db)
    _dispatched_on_saturday_night(db, frozen_clock, adapters)

    frozen_clock.advance(_at("2026-03-10T11:00:00-04:00") - frozen_clock())
    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.SMS].sent == []
    assert _messages(db, "dispatch") == [
        (
            "skipped",
            "expired: due 61 h ago (34 h of it in the customer's quiet hours), and a dispatch"
            " message goes only within 24 h of that",
        )
    ]


def test_the_still_to_come_list_shows_a_text_held_by_quiet_hours_as_going(
    db, frozen_clock, adapters
):
    # The promotion is its journey's first step: the job waiting out the quiet hours is
    # the send's own
    _a_day_long_marketing_text_to_grace_who_gets_none_on_sundays(db)
    with db.transaction() as session:
        [steps] = [
            j.definition["steps"]
            for j in journeys.list_journeys(session, workspace_id=1)
            if j.key == "dispatch"
        ]
    edit_journey(db, "dispatch", steps=[step for step in steps if step["type"] == "send"])
    _dispatched_on_saturday_night(db, frozen_clock, adapters)
    [grace] = rows(db, Customer, Customer.email == "grace@example.com")

    # Monday 07:00: 34 h after it was due, an hour before the quiet hours end
    frozen_clock.advance(_at("2026-03-09T07:00:00-04:00") - frozen_clock())
    with db.transaction() as session:
        sends = upcoming.upcoming_sends(session, workspace_id=1, customer_id=grace.id)

    assert [(send.message_type, send.channel, send.channel_note) for send in sends] == [
        ("dispatch", "sms", "")
    ]
