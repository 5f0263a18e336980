"""The zones a marketing text's quiet hours are judged in, when the customer's own zone
and the number it rings at disagree or say nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from parley.channels.base import ChannelKind
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.jobs.models import Job, JobStatus
from parley.journeys.engine import ADVANCE
from parley.workspaces.models import Workspace
from support import deliveries, drain, make_worker, post, recording_adapters, rows, seed, to_lane


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _dispatch_at(db, frozen_clock, when: datetime, *, timezone: str, phone: str) -> list:
    """Grace's order is dispatched at ``when`` as a promotion, her zone and number as
    given once her order is in; she agreed to marketing by SMS, and the store is in
    London."""
    workspace_id = seed(db)
    to_lane(db, "dispatch", "marketing", workspace_id=workspace_id)
    frozen_clock.advance(when - frozen_clock())
    placed, dispatched, *_ = deliveries("Grace")
    post(db, placed)
    with db.transaction() as session:
        session.get_one(Workspace, workspace_id).timezone = "Europe/London"
        grace = session.scalar(select(Customer).where(Customer.email == "grace@example.com"))
        assert grace is not None
        grace.timezone, grace.phone = timezone, phone
        customers.record_consent(
            session,
            workspace_id=workspace_id,
            customer_id=grace.id,
            channel="sms",
            purpose="marketing",
            is_granted=True,
            source="checkout",
        )
    post(db, dispatched)
    adapters = recording_adapters()
    drain(make_worker(db, adapters))
    return adapters[ChannelKind.SMS].sent


@pytest.mark.parametrize("zone", ["Eastern Standard Time", "US"])
def test_a_customer_zone_no_zone_database_knows_is_judged_by_the_number_not_the_store(
    db, frozen_clock, zone
):
    # 08:30 in London is 03:30 in Washington, where her number rings
    sent = _dispatch_at(
        db, frozen_clock, at("2026-03-03T08:30:00+00:00"), timezone=zone, phone="+12025550143"
    )

    assert sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert waiting.due_at == at("2026-03-03T08:00:00-05:00")


def test_a_number_given_since_in_another_zone_holds_the_text_until_morning_there(db, frozen_clock):
    # Her zone was worked out from her first number (New York); she has since given one
    # in San Francisco, where 08:30 in New York is 05:30
    sent = _dispatch_at(
        db,
        frozen_clock,
        at("2026-03-03T08:30:00-05:00"),
        timezone="America/New_York",
        phone="+14155550100",
    )

    assert sent == []
    [waiting] = rows(db, Job, Job.status == JobStatus.PENDING, Job.kind == ADVANCE)
    assert waiting.due_at == at("2026-03-03T08:00:00-08:00")


def test_a_customer_zone_that_narrows_a_number_spanning_zones_is_the_one_used(db, frozen_clock):
    # An Idaho number rings in Mountain or Pacific time; her own zone says Mountain
    sent = _dispatch_at(
        db,
        frozen_clock,
        at("2026-03-03T08:30:00-07:00"),
        timezone="America/Boise",
        phone="+12085550100",
    )

    assert [sms.to for sms in sent] == ["+12085550100"]
