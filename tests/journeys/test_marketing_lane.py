"""A journey in the marketing lane: consent for marketing, and one-click unsubscribe headers."""

from __future__ import annotations

import asyncio

import pytest

from parley.channels.base import ChannelKind, PermanentChannelError
from parley.jobs.models import Job, Lane
from parley.journeys.service import ADVANCE
from parley.messaging.models import Message
from parley.messaging.unsubscribe import read_token
from support import (
    TWO_CONFIRMATIONS,
    deliveries,
    drain,
    edit_journey,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    to_lane,
)


@pytest.fixture
def marketing_confirmation(db):
    """The confirmation journey moved to the marketing lane (as a store might for a promo)."""
    workspace_id = seed(db)
    to_lane(db, "order_confirmation", "marketing", workspace_id=workspace_id)
    return workspace_id


def test_marketing_email_carries_one_click_unsubscribe_headers(
    db, frozen_clock, marketing_confirmation
):
    adapters = recording_adapters()
    post(db, deliveries("Ada")[0])  # Ada consented to marketing email
    drain(make_worker(db, adapters))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = email.headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://parley.test/unsubscribe/")
    [message] = rows(db, Message)
    assert read_token(url.rsplit("/", 1)[1], secret_key="k") == (
        marketing_confirmation,
        message.customer_id,
        "email",
    )


def test_marketing_email_without_marketing_consent_is_skipped_with_the_reason(
    db, frozen_clock, marketing_confirmation
):
    adapters = recording_adapters()
    post(db, deliveries("Alan")[0])  # Alan never consented to marketing
    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.EMAIL].sent == []
    [message] = rows(db, Message)
    assert (message.status, message.status_reason) == (
        "skipped",
        "no channel allowed: email: no marketing consent",
    )


def test_transactional_email_has_no_unsubscribe_headers(db, frozen_clock):
    seed(db)
    adapters = recording_adapters()
    post(db, deliveries("Ada")[0])
    drain(make_worker(db, adapters))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert email.headers == {}


def _journey_jobs(db) -> dict[str, str]:
    return {job.idempotency_key: job.lane for job in rows(db, Job) if job.kind == ADVANCE}


def test_a_marketing_journeys_next_step_stays_in_the_marketing_lane(
    db, frozen_clock, marketing_confirmation
):
    # Given a marketing journey that sends twice in a row
    edit_journey(
        db, "order_confirmation", workspace_id=marketing_confirmation, steps=TWO_CONFIRMATIONS
    )
    post(db, deliveries("Ada")[0])  # Ada consented to marketing email

    # When the first send goes out
    asyncio.run(make_worker(db, recording_adapters()).run_once())

    # Then the job for the second waits in the marketing lane, as the first did
    assert _journey_jobs(db) == {"journey:1:0": Lane.MARKETING, "journey:1:1": Lane.MARKETING}


def test_a_marketing_journeys_fallback_to_the_next_channel_stays_in_the_marketing_lane(
    db, frozen_clock, marketing_confirmation
):
    # Given the provider refuses Ada's marketing email for good
    adapters = recording_adapters()
    adapters[ChannelKind.EMAIL].script = [
        PermanentChannelError("mailbox unavailable", provider_code="550")
    ]
    post(db, deliveries("Ada")[0])

    # When the refusal is recorded
    asyncio.run(make_worker(db, adapters).run_once())

    # Then the job trying the next channel waits in the marketing lane
    assert _journey_jobs(db) == {"journey:1:0": Lane.MARKETING, "journey:1:0:x1": Lane.MARKETING}
