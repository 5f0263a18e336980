"""The store's own marketing rate (RELIABILITY S18 "per-tenant send rate limits", J6): a
blast goes out at most at the rate the store set, the rest waiting as jobs booked for
their turn, nothing recorded; order updates never wait for it; a new rate re-plans what
is waiting, faster or slower; and the store sees what waits, and for what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from parley.accounts.models import AuditEntry, User
from parley.channels.base import ChannelKind, OutboundMessage, SendResult
from parley.clock import utc_now
from parley.errors import Invalid
from parley.http.web.admin import store
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.journeys import service as journeys
from parley.journeys.engine import ADVANCE
from parley.journeys.models import JourneyRun
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.models import Message, SenderPace
from parley.messaging.types import WaitingFor
from parley.workspaces.models import Workspace
from support import (
    RecordingAdapter,
    count,
    deliveries,
    drain,
    make_worker,
    post,
    promotions_without_caps,
    rows,
    to_lane,
)
from support import recording_adapters as adapters_for_channels
from web_support import ADMIN, login_as, seed_team

ORDERS = 120


class TimedAdapter(RecordingAdapter):
    """Email that notes when each message reached it."""

    def __init__(self) -> None:
        super().__init__(ChannelKind.EMAIL)
        self.at: list = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.at.append(utc_now())
        return await super().send(message)


def _set_rate(db, per_hour: str) -> None:
    """The store's admin saves the rate on Settings → General."""
    with db.transaction() as session:
        admin = session.scalar(select(User).where(User.email == ADMIN))
        store.set_marketing_rate(
            session, login=login_as(session, 1, admin.id), per_hour=per_hour, ip="127.0.0.1"
        )


def _blast(db, orders: int = ORDERS) -> None:
    """``orders`` promotions at once (Ada orders, each time a new order)."""
    promotions_without_caps(db)
    for number in range(orders):
        placed, *_ = deliveries("Ada", order_id=9000 + number, number=19000 + number)
        post(db, placed)


def _waiting(db) -> list[Job]:
    return rows(db, Job, Job.kind == ADVANCE, Job.status == JobStatus.PENDING)


def _worker(db):
    adapters = adapters_for_channels()
    email = TimedAdapter()
    adapters[ChannelKind.EMAIL] = email
    return make_worker(db, adapters), email


def test_a_blast_goes_at_the_stores_rate_and_the_rest_waits_booked_for_its_turn(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "3,600")  # one a second, a minute's worth at once
    _blast(db)
    worker, email = _worker(db)
    start = utc_now()

    drain(worker)

    assert len(email.sent) == 60
    assert count(db, Message) == 60
    waiting = _waiting(db)
    assert len(waiting) == ORDERS - 60
    assert {job.waiting_for for job in waiting} == {WaitingFor.MARKETING_RATE}
    assert {job.attempts for job in waiting} == {0}
    # Booked one a second after the minute's burst: the last at one minute.
    assert sorted(job.due_at for job in waiting) == [
        start + timedelta(seconds=s) for s in range(1, 61)
    ]

    frozen_clock.advance(timedelta(seconds=10))
    drain(worker)
    assert len(email.sent) == 70

    frozen_clock.advance(timedelta(seconds=50))
    drain(worker)

    assert len(email.sent) == ORDERS
    assert len({message.idempotency_key for message in email.sent}) == ORDERS
    assert count(db, Message, Message.status == "sent") == ORDERS
    assert _waiting(db) == []
    # Never more than a minute's worth (60) plus one a second in any window.
    for index, at in enumerate(email.at):
        in_window = [t for t in email.at[index:] if t < at + timedelta(seconds=10)]
        assert len(in_window) <= 60 + 10


def test_without_a_rate_the_same_blast_goes_at_once(db, frozen_clock):
    seed_team(db)
    _blast(db)
    worker, email = _worker(db)

    drain(worker)

    assert len(email.sent) == ORDERS
    assert _waiting(db) == []


def test_order_updates_never_wait_for_the_stores_marketing_rate(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "1")
    promotions_without_caps(db)
    adapters = adapters_for_channels()
    for name, order in (("Ada", 701), ("Ada", 702), ("Grace", 703)):
        placed, dispatched, *_ = deliveries(name, order_id=order, number=1000 + order)
        post(db, placed)
        post(db, dispatched)

    drain(make_worker(db, adapters))

    dispatches = rows(db, Message, Message.message_type == "dispatch")
    assert sorted((m.channel, m.status) for m in dispatches) == [
        ("sms", "sent"),
        ("whatsapp", "sent"),
        ("whatsapp", "sent"),
    ]
    # One promotion an hour: Ada's first goes, her second waits its hour (Grace takes no
    # marketing email: hers is skipped, not held).
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [held] = _waiting(db)
    assert held.waiting_for == WaitingFor.MARKETING_RATE
    assert held.due_at == utc_now() + timedelta(hours=1)


def test_raising_the_rate_mid_run_replans_the_waiting_sends_at_the_new_rate(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "60")  # one a minute
    _blast(db)
    worker, email = _worker(db)
    drain(worker)
    assert len(email.sent) == 1
    assert max(job.due_at for job in _waiting(db)) == utc_now() + timedelta(minutes=119)

    _set_rate(db, "3600")
    drain(worker)

    # The waiting sends were brought forward and booked at the new rate.
    assert len(email.sent) == 1 + 60
    assert max(job.due_at for job in _waiting(db)) == utc_now() + timedelta(seconds=59)
    frozen_clock.advance(timedelta(seconds=59))
    drain(worker)
    assert len(email.sent) == ORDERS
    assert len({message.idempotency_key for message in email.sent}) == ORDERS


def test_lowering_the_rate_mid_run_slows_the_waiting_sends(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "3600")
    _blast(db)
    worker, email = _worker(db)
    drain(worker)
    assert len(email.sent) == 60

    _set_rate(db, "60")
    changed = utc_now()
    drain(worker)
    frozen_clock.advance(timedelta(seconds=30))
    drain(worker)

    # At the old rate 30 more would have gone by now; at the new one, one.
    assert len(email.sent) == 61
    assert max(job.due_at for job in _waiting(db)) == changed + timedelta(minutes=59)


def test_lifting_the_rate_lets_everything_waiting_go_now(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "60")
    _blast(db, orders=20)
    worker, email = _worker(db)
    drain(worker)
    assert len(email.sent) == 1

    _set_rate(db, "")
    drain(worker)

    assert len(email.sent) == 20
    assert _waiting(db) == []


def test_a_rate_change_is_audited_with_the_old_and_new_rate_and_saving_it_again_changes_nothing(
    db, frozen_clock
):
    seed_team(db)
    _set_rate(db, "60")
    _blast(db, orders=5)
    worker, _ = _worker(db)
    drain(worker)
    _set_rate(db, "1,000")
    _set_rate(db, "1000")
    _set_rate(db, "")

    entries = rows(db, AuditEntry, AuditEntry.action == "marketing_rate_changed")
    assert [(e.actor_email, e.detail) for e in entries] == [
        (ADMIN, {"from": None, "to": 60, "replanned": 0}),
        (ADMIN, {"from": 60, "to": 1000, "replanned": 4}),
        (ADMIN, {"from": 1000, "to": None, "replanned": 0}),
    ]


@pytest.mark.parametrize("typed", ["fast", "-5", "1.5", "2,000,000", "12 34x"])
def test_a_rate_that_is_not_a_whole_number_in_range_is_refused_and_nothing_changes(
    db, frozen_clock, typed
):
    seed_team(db)
    _set_rate(db, "500")

    with pytest.raises(Invalid, match="whole number of messages an hour from 1 to 1,000,000"):
        _set_rate(db, typed)

    with db.transaction() as session:
        assert MarketingRate.of(session.get_one(Workspace, 1).settings).per_hour == 500
    assert count(db, AuditEntry, AuditEntry.action == "marketing_rate_changed") == 1


def test_the_store_sees_what_waits_and_for_what(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "60")
    _blast(db, orders=10)
    worker, _ = _worker(db)
    start = utc_now()
    drain(worker)

    with db.transaction() as session:
        [group] = queue.waiting_jobs(session, workspace_id=1)
        assert queue.waiting_jobs(session, workspace_id=2) == []

    assert (group.waiting_for, group.count) == (WaitingFor.MARKETING_RATE, 9)
    assert (group.first_due, group.last_due) == (
        start + timedelta(minutes=1),
        start + timedelta(minutes=9),
    )


def _store_row(db) -> SenderPace:
    with db.transaction() as session:
        return session.get_one(SenderPace, "store:1:marketing")


def test_switching_off_a_booked_promotion_drops_its_bookings_and_the_next_marketing_goes_in_turn(
    db, frozen_clock
):
    seed_team(db)
    _set_rate(db, "60")  # one a minute
    _blast(db, orders=30)
    to_lane(db, "dispatch", "marketing")
    worker, email = _worker(db)
    start = utc_now()
    drain(worker)
    assert len(email.sent) == 1
    assert max(job.due_at for job in _waiting(db)) == start + timedelta(minutes=29)

    # The store spots a mistake and switches the promotion off.
    with db.transaction() as session:
        journeys.update_journey(session, workspace_id=1, key="order_confirmation", is_enabled=False)
    frozen_clock.advance(timedelta(minutes=1))
    drain(worker)

    # The first booked one came back switched off; the other 28 were brought forward and
    # ended with it, and their places went with them. What the store spent stays spent.
    assert len(email.sent) == 1
    assert _waiting(db) == []
    assert count(db, JourneyRun, JourneyRun.exit_reason == "journey switched off") == 29
    row = _store_row(db)
    assert (row.spent_until, row.marketing_booked_until) == (
        start + timedelta(minutes=1),
        start + timedelta(minutes=1),
    )

    # Two of Ada's orders ship (dispatch runs as marketing): one goes now, the other is
    # booked a minute on, not behind 28 minutes of sends that will never be made.
    for number in (0, 1):
        post(db, deliveries("Ada", order_id=9000 + number, number=19000 + number)[1])
    drain(worker)
    assert count(db, Message, Message.message_type == "dispatch", Message.status == "sent") == 1
    [held] = _waiting(db)
    assert (held.waiting_for, held.due_at) == (
        WaitingFor.MARKETING_RATE,
        utc_now() + timedelta(minutes=1),
    )


def test_a_send_booked_past_its_expiry_gives_its_place_back_to_the_sends_after_it(db, frozen_clock):
    seed_team(db)
    _set_rate(db, "1")  # one an hour
    _blast(db, orders=30)  # confirmations as promotions: each goes only within 24 h
    to_lane(db, "dispatch", "marketing")
    worker, _ = _worker(db)
    start = utc_now()
    drain(worker)

    # One went, 24 are booked within their day; the 5 booked past it will expire then,
    # and hold no place.
    assert sorted(job.due_at for job in _waiting(db)) == [
        start + timedelta(hours=hours) for hours in range(1, 30)
    ]
    assert _store_row(db).marketing_booked_until == start + timedelta(hours=25)

    # An order ships: its dispatch (48 h to go) is booked behind the 24 that will go.
    post(db, deliveries("Ada", order_id=9000, number=19000)[1])
    drain(worker)
    dispatch_job = max(_waiting(db), key=lambda job: job.id)
    assert dispatch_job.due_at == start + timedelta(hours=25)

    for _ in range(25):
        frozen_clock.advance(timedelta(hours=1))
        drain(worker)

    confirmations = Message.message_type == "order_confirmation"
    assert count(db, Message, confirmations, Message.status == "sent") == 25
    [dispatch] = rows(db, Message, Message.message_type == "dispatch")
    assert (dispatch.status, dispatch.created_at) == ("sent", start + timedelta(hours=25))
    assert [
        (m.status, m.status_reason) for m in rows(db, Message, confirmations) if m.status != "sent"
    ] == [
        (
            "skipped",
            "expired: due 25 h ago, and an order confirmation message goes only within 24 h"
            " of that",
        )
    ]
