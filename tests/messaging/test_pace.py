"""Each sender is paced to what its provider takes; sends past it wait as jobs, durably."""

from __future__ import annotations

import heapq
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from parley.channels.base import ChannelKind, TransientChannelError
from parley.channels.twilio_sms.segments import count_segments
from parley.clock import utc_now
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.jobs.models import Job, JobStatus
from parley.journeys import service as journeys
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.models import Author, Message, MessageStatus, SenderPace
from parley.messaging.pace import Allowance, Booking, Ledger, Pacer, Sender, Want, pace, unbook
from parley.messaging.types import Purpose, WaitingFor
from parley.runtime import pacer as pacer_from_settings
from parley.settings import Settings
from parley.workspaces.models import Workspace
from support import (
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    to_lane,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T, M = Purpose.TRANSACTIONAL, Purpose.MARKETING
GRACE = "+12025550143"


def rested(at: datetime = T0) -> Ledger:
    return Ledger(spent_until=at, booked_until={T: at, M: at})


def ms(milliseconds: float) -> timedelta:
    return timedelta(milliseconds=milliseconds)


# The algorithm alone.


def test_a_rested_sender_sends_a_burst_and_books_the_rest_one_interval_apart():
    ledger = rested()

    waits = pace(ledger, [(T, 1)] * 5, Allowance(2, burst=2), now=T0)

    assert waits == [None, None, T0 + ms(500), T0 + ms(1000), T0 + ms(1500)]
    assert ledger.spent_until == T0 + ms(1000)
    assert ledger.booked_until == {T: T0 + ms(2500), M: T0}


def test_a_booked_send_asking_at_its_time_goes_and_a_new_one_is_booked_behind_the_rest():
    ledger = rested()
    [_, _, first_booked, *_] = pace(ledger, [(T, 1)] * 5, Allowance(2, burst=2), now=T0)

    assert pace(ledger, [(T, 1)], Allowance(2, burst=2), now=first_booked) == [None]
    # Two sends are still booked, at 1.0 and 1.5 s: a newcomer's time is after theirs.
    assert pace(ledger, [(T, 1)], Allowance(2, burst=2), now=first_booked) == [
        T0 + timedelta(seconds=2)
    ]


def test_order_updates_in_a_batch_are_granted_before_marketing_sends_queued_ahead_of_them():
    ledger = rested()

    waits = pace(ledger, [(M, 1), (M, 1), (T, 1)], Allowance(2, burst=2), now=T0)

    assert waits == [None, T0 + ms(500), None]
    assert ledger.booked_until == {T: T0, M: T0 + ms(1500)}


def test_a_marketing_backlog_is_booked_behind_itself_not_behind_order_updates():
    ledger = rested()
    pace(ledger, [(M, 1)] * 100, Allowance(10, burst=10), now=T0)

    # 90 marketing sends are booked over the next 9 s; an order update booked now waits
    # one interval, not behind them.
    [update_wait] = pace(ledger, [(T, 1)], Allowance(10, burst=10), now=T0)

    assert update_wait == T0 + ms(100)
    assert ledger.booked_until[M] == T0 + timedelta(seconds=10)


def test_a_waiting_marketing_send_is_booked_after_the_order_updates_waiting():
    ledger = rested()

    waits = pace(ledger, [(M, 1), (T, 1), (T, 1), (T, 1)], Allowance(2, burst=2), now=T0)

    assert waits == [T0 + ms(1000), None, None, T0 + ms(500)]
    assert ledger.booked_until == {T: T0 + ms(1500), M: T0 + ms(2000)}


def test_once_a_send_finds_no_room_the_smaller_ones_behind_it_wait_too():
    ledger = rested()
    ledger.spent_until = T0 + ms(500)

    waits = pace(ledger, [(T, 3), (T, 1)], Allowance(2, burst=2), now=T0)

    # The large send goes once the sender is rested; the small one is booked after it.
    assert waits == [T0 + ms(500), T0 + ms(1500)]


def test_a_send_larger_than_a_burst_goes_when_the_sender_is_rested_and_it_rests_after():
    ledger = rested()
    allowance = Allowance(1, burst=1)

    assert pace(ledger, [(T, 3), (T, 1)], allowance, now=T0) == [None, T0 + timedelta(seconds=3)]
    assert ledger.spent_until == T0 + timedelta(seconds=3)
    assert pace(ledger, [(T, 1)], allowance, now=T0 + timedelta(seconds=3)) == [None]


def test_a_rate_or_burst_no_provider_has_is_refused():
    with pytest.raises(ValueError, match="above 0"):
        Allowance(0)
    with pytest.raises(ValueError, match="at least 1"):
        Allowance(5, burst=0.5)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([1.0, 3.0, 80.0]),
    burst_seconds=st.sampled_from([0.5, 1.0, 2.0]),
    asks=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3000),  # ms after T0
            st.sampled_from([T, M]),
            st.integers(min_value=1, max_value=4),
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_no_window_of_grants_exceeds_the_allowance_and_every_send_goes(rate, burst_seconds, asks):
    """Asks arrive at random times; each that must wait asks again at its time."""
    allowance = Allowance(rate, burst=max(1.0, rate * burst_seconds))
    ledger = rested(T0 - timedelta(hours=1))
    pending = [(T0 + ms(at), n, purpose, cost) for n, (at, purpose, cost) in enumerate(asks)]
    heapq.heapify(pending)
    granted: list[tuple[datetime, int]] = []
    turns = 0
    while pending:
        turns += 1
        assert turns <= 50 * len(asks), "a send never went"
        now = pending[0][0]
        batch = []
        while pending and pending[0][0] == now:
            batch.append(heapq.heappop(pending))
        waits = pace(ledger, [(purpose, cost) for _, _, purpose, cost in batch], allowance, now=now)
        for (_, n, purpose, cost), until in zip(batch, waits, strict=True):
            if until is None:
                granted.append((now, cost))
            else:
                assert until > now
                heapq.heappush(pending, (until, n, purpose, cost))

    assert len(granted) == len(asks)
    largest = max(cost for _, _, cost in asks)
    granted.sort()
    for i, (start, _) in enumerate(granted):
        units = 0
        for end, cost in granted[i:]:
            units += cost
            seconds = (end - start).total_seconds()
            # Times are kept to the microsecond: allow the rounding of ten of them.
            assert units <= max(allowance.burst, largest) + rate * (seconds + 1e-5)


# The pacer on the database: one allowance for every worker, inside the transaction.


def email_pacer(per_second: float = 2, burst: float = 2) -> Pacer:
    return Pacer({ChannelKind.EMAIL: Sender("email:relay", Allowance(per_second, burst=burst))})


def test_a_rolled_back_send_gives_its_room_back(db, frozen_clock):
    pacer = email_pacer()
    taken: list[object] = []

    def take_then_fail() -> None:
        with db.transaction() as session:
            taken.extend(pacer.take(session, [Want("email", "transactional")] * 2, now=T0))
            raise RuntimeError("the batch failed before it committed")

    with pytest.raises(RuntimeError):
        take_then_fail()
    assert taken == [None, None]

    with db.transaction() as session:
        assert pacer.take(session, [Want("email", "transactional")] * 2, now=T0) == [None, None]
        [third] = pacer.take(session, [Want("email", "transactional")], now=T0)
    assert third is not None
    assert third.until == T0 + ms(500)
    assert third.reason == "waiting for the sender's pace: email:relay takes 2 messages a second"


def test_a_booking_given_back_frees_its_place_only_when_nothing_was_booked_after_it(
    db, frozen_clock
):
    pacer = email_pacer(per_second=1, burst=1)

    def booked_until() -> datetime:
        with db.transaction() as session:
            return session.get_one(SenderPace, "email:relay").transactional_booked_until

    with db.transaction() as session:
        _, second, third = pacer.take(session, [Want("email", "transactional")] * 3, now=T0)
    assert isinstance(second, Booking)
    assert isinstance(third, Booking)
    assert second.slot is not None
    assert third.slot is not None
    assert (second.until, third.until) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))

    with db.transaction() as session:
        unbook(session, [second.slot])  # the third is booked after it: its place stays
    assert booked_until() == T0 + timedelta(seconds=3)

    with db.transaction() as session:
        unbook(session, [second.slot, third.slot])
    assert booked_until() == T0 + timedelta(seconds=1)
    with db.transaction() as session:
        [next_one] = pacer.take(session, [Want("email", "transactional")], now=T0)
    assert next_one is not None
    assert next_one.until == T0 + timedelta(seconds=1)


def test_a_channel_with_no_pace_is_never_held_and_writes_nothing(db, frozen_clock):
    with db.transaction() as session:
        waits = email_pacer().take(session, [Want("sms", "transactional")] * 50, now=T0)

    assert waits == [None] * 50
    with db.transaction() as session:
        assert session.scalars(select(SenderPace)).all() == []


def test_workers_taking_at_once_share_one_allowance(db, frozen_clock):
    pacer = email_pacer(per_second=10, burst=10)
    start = threading.Barrier(4)
    granted: list[int] = []

    def take() -> None:
        start.wait()
        with db.transaction() as session:
            waits = pacer.take(session, [Want("email", "transactional")] * 6, now=T0)
        granted.append(waits.count(None))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(granted) == 4
    assert sum(granted) == 10
    with db.transaction() as session:
        [row] = session.scalars(select(SenderPace)).all()
    assert row.spent_until == T0 + timedelta(seconds=1)
    assert row.transactional_booked_until == T0 + timedelta(seconds=2.4)


def test_a_stores_rate_holds_its_marketing_before_the_sender_is_asked(db, frozen_clock):
    pacer = email_pacer(per_second=10, burst=10)
    store = MarketingRate(3600).sender(1)  # one a second, a minute's worth at once
    wants = [Want("email", "marketing", store=store)] * 62 + [Want("email", "transactional")]

    with db.transaction() as session:
        waits = pacer.take(session, wants, now=T0)

    # The store lets 60 through; the sender takes 10 of them and the order update first.
    held_by_store = [w for w in waits[:62] if w and w.cause == WaitingFor.MARKETING_RATE]
    held_by_sender = [w for w in waits[:62] if w and w.cause == WaitingFor.SENDER_PACE]
    assert waits[62] is None
    assert waits[:9] == [None] * 9
    assert len(held_by_store) == 2
    assert len(held_by_sender) == 51
    assert held_by_store[0].reason == (
        "waiting for the store's marketing rate: at most 3,600 an hour"
    )
    assert [w.until for w in held_by_store] == [
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2),
    ]
    with db.transaction() as session:
        spent = {row.sender: row.spent_until for row in session.scalars(select(SenderPace))}
    # The two the store held took no room from the sender every store shares.
    assert spent == {
        "email:relay": T0 + timedelta(seconds=1),
        "store:1:marketing": T0 + timedelta(seconds=60),
    }


def test_each_stores_rate_is_its_own(db, frozen_clock):
    pacer = Pacer()
    one, two = MarketingRate(60).sender(1), MarketingRate(60).sender(2)
    wants = [Want("email", "marketing", store=one)] * 2 + [Want("email", "marketing", store=two)]

    with db.transaction() as session:
        waits = pacer.take(session, wants, now=T0)

    assert [wait and wait.until for wait in waits] == [None, T0 + timedelta(minutes=1), None]


def test_an_sms_costs_its_segments(db, frozen_clock):
    pacer = Pacer(
        {
            ChannelKind.SMS: Sender(
                "sms:+15005550006", Allowance(1), unit="SMS segment", cost=count_segments
            )
        }
    )
    long_text = "x" * 400  # three segments of 153

    with db.transaction() as session:
        first, second = pacer.take(
            session,
            [Want("sms", "transactional", long_text), Want("sms", "transactional", "short")],
            now=T0,
        )

    assert first is None
    assert second is not None
    assert second.until == T0 + timedelta(seconds=3)
    assert "takes 1 SMS segment a second" in second.reason


def test_the_deployments_senders_are_paced_as_their_providers_allow_by_default():
    senders = pacer_from_settings(Settings()).senders

    assert {kind: (s.key, s.allowance) for kind, s in senders.items()} == {
        ChannelKind.WHATSAPP: ("whatsapp:100000000000001", Allowance(80, burst=80)),
        ChannelKind.SMS: ("sms:+15005550006", Allowance(1, burst=1)),
        ChannelKind.INSTAGRAM: ("instagram:17841400000000001", Allowance(300, burst=300)),
    }
    assert senders[ChannelKind.SMS].cost("ж" * 71) == 2  # UCS-2: 67 a segment
    paced_email = pacer_from_settings(Settings(smtp_messages_per_second=14)).senders
    assert paced_email[ChannelKind.EMAIL].allowance == Allowance(14, burst=14)
    unpaced = pacer_from_settings(Settings(whatsapp_messages_per_second=0)).senders
    assert ChannelKind.WHATSAPP not in unpaced


# Through the worker: journeys and replies.


def test_confirmations_past_the_allowance_wait_as_jobs_and_each_goes_once_at_its_time(
    db, frozen_clock
):
    seed(db)
    adapters = recording_adapters()
    worker = make_worker(db, adapters, pacer=email_pacer())
    for n in range(5):
        post(db, deliveries("Grace", order_id=600 + n, number=1600 + n)[0])
    now = utc_now()

    drain(worker)

    assert len(adapters[ChannelKind.EMAIL].sent) == 2
    assert [m.status for m in rows(db, Message)] == [MessageStatus.SENT] * 2
    waiting = rows(db, Job, Job.status == JobStatus.PENDING)
    assert [(job.due_at - now, job.attempts, job.last_error) for job in waiting] == [
        (ms(500), 0, None),
        (ms(1000), 0, None),
        (ms(1500), 0, None),
    ]

    frozen_clock.advance(ms(500))
    drain(worker)
    assert len(adapters[ChannelKind.EMAIL].sent) == 3

    frozen_clock.advance(ms(1000))
    drain(worker)
    sent = adapters[ChannelKind.EMAIL].sent
    assert sorted(email.subject for email in sent) == [
        f"Your Juniper & Pine order #{1600 + n} is confirmed" for n in range(5)
    ]
    assert [(m.status, m.attempts) for m in rows(db, Message)] == [(MessageStatus.SENT, 1)] * 5
    assert {job.status for job in rows(db, Job)} == {JobStatus.DONE}


def test_a_retry_waits_for_room_as_queued_and_is_not_counted_as_an_attempt(db, frozen_clock):
    seed(db)
    adapters = recording_adapters()
    adapters[ChannelKind.EMAIL].script = [TransientChannelError("relay answered 451")]
    pacer = email_pacer(per_second=1, burst=1)
    worker = make_worker(db, adapters, pacer=pacer)
    post(db, deliveries("Grace")[0])
    drain(worker)
    [message] = rows(db, Message)
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)

    # Come the retry, the sender's room is taken (another store's send, say).
    frozen_clock.advance(timedelta(seconds=10))
    with db.transaction() as session:
        session.execute(update(Job).values(due_at=utc_now()))
        pacer.take(session, [Want("email", "transactional")], now=utc_now())
    drain(worker)

    [message] = rows(db, Message)
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)
    [job] = rows(db, Job)
    assert (job.status, job.attempts, job.due_at) == (
        JobStatus.PENDING,
        1,
        utc_now() + timedelta(seconds=1),
    )
    assert adapters[ChannelKind.EMAIL].sent == []

    frozen_clock.advance(timedelta(seconds=1))
    drain(worker)
    [message] = rows(db, Message)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 2)
    assert len(adapters[ChannelKind.EMAIL].sent) == 1


def test_an_assistant_reply_waits_for_its_senders_room_and_then_goes(db, tmp_path, frozen_clock):
    seed(db)
    adapters = all_adapters()
    sms = Pacer({ChannelKind.SMS: Sender("sms:+15005550006", Allowance(1), cost=count_segments)})
    worker = inbox_worker(db, adapters, tmp_model_dir=tmp_path, pacer=sms)
    with db.transaction() as session:
        sms.take(session, [Want("sms", "transactional")], now=utc_now())

    customer_writes(db, channel=ChannelKind.SMS, sender=GRACE, text="hello")
    drain(worker)

    [reply] = rows(db, Message, Message.author == Author.ASSISTANT)
    assert (reply.status, reply.attempts) == (MessageStatus.QUEUED, 0)
    assert adapters[ChannelKind.SMS].sent == []

    frozen_clock.advance(timedelta(seconds=1))
    drain(worker)
    [reply] = rows(db, Message, Message.author == Author.ASSISTANT)
    assert (reply.status, reply.attempts) == (MessageStatus.SENT, 1)
    [sent] = adapters[ChannelKind.SMS].sent
    assert sent.to == GRACE


def test_a_paced_sender_changes_nothing_for_sends_on_other_channels(db, frozen_clock):
    seed(db)
    adapters = recording_adapters()
    worker = make_worker(db, adapters, pacer=email_pacer(per_second=1, burst=1))
    for n in range(3):
        placed, dispatched, *_ = deliveries("Ada", order_id=700 + n, number=1700 + n)
        post(db, placed)
        post(db, dispatched)

    drain(worker)

    assert len(adapters[ChannelKind.WHATSAPP].sent) == 3
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    with db.transaction() as session:
        assert session.scalar(select(SenderPace.sender)) == "email:relay"


def test_a_switched_off_journeys_texts_leave_the_shared_sender_free_for_the_next(db, frozen_clock):
    """The deployment's SMS number takes a text a minute, for every store: ten of the
    store's texts booked on it and then switched off must not hold the next text back."""
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
        store.settings = {**store.settings, "frequency_caps": {"sms": 0}}
    to_lane(db, "dispatch", "marketing")
    frozen_clock.advance(datetime(2026, 3, 2, 15, 0, tzinfo=UTC) - frozen_clock())  # 10:00 EST
    sms = Pacer({ChannelKind.SMS: Sender("sms:+15005550006", Allowance(1 / 60))})
    adapters = recording_adapters()
    worker = make_worker(db, adapters, pacer=sms)
    orders = [deliveries("Grace", order_id=800 + n, number=1800 + n) for n in range(12)]
    for placed, dispatched, *_ in orders[:10]:
        post(db, placed)
        post(db, dispatched)
    start = utc_now()
    drain(worker)
    assert len(adapters[ChannelKind.SMS].sent) == 1
    waiting = rows(db, Job, Job.status == JobStatus.PENDING)
    assert sorted(job.due_at for job in waiting) == [
        start + timedelta(minutes=m) for m in range(1, 10)
    ]

    with db.transaction() as session:
        journeys.update_journey(
            session, workspace_id=workspace_id, key="dispatch", is_enabled=False
        )
    frozen_clock.advance(timedelta(minutes=1))
    drain(worker)
    assert rows(db, Job, Job.status == JobStatus.PENDING) == []
    with db.transaction() as session:
        row = session.get_one(SenderPace, "sms:+15005550006")
    assert (row.spent_until, row.marketing_booked_until) == (
        start + timedelta(minutes=1),
        start + timedelta(minutes=1),
    )

    # Switched back on, the next two orders' texts: one now, one a minute on.
    with db.transaction() as session:
        journeys.update_journey(session, workspace_id=workspace_id, key="dispatch", is_enabled=True)
    for placed, dispatched, *_ in orders[10:]:
        post(db, placed)
        post(db, dispatched)
    drain(worker)
    assert len(adapters[ChannelKind.SMS].sent) == 2
    [held] = rows(db, Job, Job.status == JobStatus.PENDING)
    assert held.waiting_for == WaitingFor.SENDER_PACE
    assert held.due_at == utc_now() + timedelta(minutes=1)
