"""The store's kill switch for marketing (RELIABILITY S18): pressed in the middle of a
blast, at most the batch already planned goes; every later marketing send waits, nothing
recorded and nothing dropped, and goes once marketing resumes. Order updates never wait."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from parley.accounts.models import AuditEntry, User
from parley.channels.base import ChannelKind, OutboundMessage, SendResult
from parley.http.web.admin import store
from parley.jobs.models import Job, JobStatus
from parley.journeys.engine import ADVANCE
from parley.messaging.marketing_pause import RECHECK, MarketingPause
from parley.messaging.models import Message
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
    recording_adapters,
    rows,
)
from web_support import ADMIN, login_as, seed_team

ORDERS = 120
BATCH = 50  # make_worker's batch size


def _press(db, *, paused: bool) -> None:
    """The store's admin presses the switch on Settings → General."""
    with db.transaction() as session:
        admin = session.scalar(select(User).where(User.email == ADMIN))
        store.set_marketing_paused(
            session, login=login_as(session, 1, admin.id), paused=paused, ip="127.0.0.1"
        )


class PressesPauseOnFirstSend(RecordingAdapter):
    """The store owner presses the switch while the first batch is with the provider."""

    def __init__(self, db) -> None:
        super().__init__(ChannelKind.EMAIL)
        self.db = db

    async def send(self, message: OutboundMessage) -> SendResult:
        if not self.sent:
            _press(self.db, paused=True)
        return await super().send(message)


def test_pausing_mid_blast_lets_only_the_planned_batch_go_and_resuming_sends_the_rest(
    db, frozen_clock
):
    seed_team(db)
    promotions_without_caps(db)
    for number in range(ORDERS):
        placed, *_ = deliveries("Ada", order_id=9000 + number, number=19000 + number)
        post(db, placed)
    adapters = recording_adapters()
    adapters[ChannelKind.EMAIL] = PressesPauseOnFirstSend(db)
    worker = make_worker(db, adapters)

    drain(worker)

    sent = adapters[ChannelKind.EMAIL].sent
    assert len(sent) == BATCH
    assert count(db, Message) == BATCH
    waiting = rows(db, Job, Job.kind == ADVANCE, Job.status == JobStatus.PENDING)
    assert len(waiting) == ORDERS - BATCH
    assert {job.attempts for job in waiting} == {0}

    frozen_clock.advance(RECHECK)
    drain(worker)
    assert len(sent) == BATCH

    _press(db, paused=False)
    frozen_clock.advance(RECHECK)
    drain(worker)

    assert len(sent) == ORDERS
    assert len({message.idempotency_key for message in sent}) == ORDERS
    assert count(db, Message, Message.status == "sent") == ORDERS


def test_order_updates_go_while_marketing_is_paused(db, frozen_clock):
    seed_team(db)
    promotions_without_caps(db)
    _press(db, paused=True)
    adapters = recording_adapters()
    for name in ("Ada", "Grace"):
        placed, dispatched, *_ = deliveries(name, order_id=700 + len(name), number=1700 + len(name))
        post(db, placed)
        post(db, dispatched)

    drain(make_worker(db, adapters))

    assert adapters[ChannelKind.EMAIL].sent == []
    dispatches = rows(db, Message, Message.message_type == "dispatch")
    assert sorted((m.channel, m.status) for m in dispatches) == [
        ("sms", "sent"),
        ("whatsapp", "sent"),
    ]
    assert count(db, Message, Message.message_type == "order_confirmation") == 0


def test_the_switch_is_audited_with_who_pressed_it_and_pressing_it_twice_changes_nothing(
    db, frozen_clock
):
    seed_team(db)
    _press(db, paused=True)
    _press(db, paused=True)
    with db.transaction() as session:
        pause = MarketingPause.of(session.get_one(Workspace, 1).settings)
    frozen_clock.advance(timedelta(minutes=5))
    _press(db, paused=False)

    assert pause.by == ADMIN
    actions = [entry.action for entry in rows(db, AuditEntry, AuditEntry.action.like("market%"))]
    assert actions == ["marketing_paused", "marketing_resumed"]
    with db.transaction() as session:
        assert MarketingPause.of(session.get_one(Workspace, 1).settings).is_paused is False


def test_resuming_lets_the_held_sends_go_in_the_next_batch_not_at_their_next_look(db, frozen_clock):
    seed_team(db)
    promotions_without_caps(db)
    _press(db, paused=True)
    for number in range(10):
        placed, *_ = deliveries("Ada", order_id=9000 + number, number=19000 + number)
        post(db, placed)
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    drain(worker)
    held = rows(db, Job, Job.kind == ADVANCE, Job.status == JobStatus.PENDING)
    assert {job.waiting_for for job in held} == {WaitingFor.MARKETING_PAUSED}
    assert len(held) == 10

    _press(db, paused=False)
    drain(worker)

    assert len(adapters[ChannelKind.EMAIL].sent) == 10
    [resumed] = rows(db, AuditEntry, AuditEntry.action == "marketing_resumed")
    assert resumed.detail["brought_forward"] == 10
