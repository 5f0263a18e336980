"""A privacy request is owed an answer within a month (RELIABILITY P2): each shows its due
date, and one not carried out 25 days after receipt raises the deployment's alert."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from parley.alerts.models import Alert
from parley.alerts.rules import PRIVACY, Thresholds
from parley.alerts.watch import watch
from parley.clock import utc_now
from parley.jobs.worker import Worker, WorkerConfig
from parley.privacy.models import PrivacyRequest, one_month_after
from parley.privacy.tasks import CustomerRequestTask
from support import post, rows, seed, signed

THRESHOLDS = Thresholds(privacy_after=timedelta(days=25))


def test_the_answer_is_due_a_calendar_month_after_receipt() -> None:
    at = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    assert one_month_after(at) == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert one_month_after(at.replace(year=2028)) == datetime(2028, 2, 29, 9, 30, tzinfo=UTC)
    assert one_month_after(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)
    assert one_month_after(datetime(2026, 4, 30, tzinfo=UTC)) == datetime(2026, 5, 30, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_a_month_is_28_to_31_days_later_at_the_same_time_of_day(moment: datetime) -> None:
    due = one_month_after(moment)
    assert timedelta(days=28) <= due - moment <= timedelta(days=31)
    assert (due.hour, due.minute, due.second, due.microsecond) == (
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
    )
    assert due.day == moment.day or due.month != (due + timedelta(days=1)).month


def _request(db, *, webhook_id: str) -> None:
    """Ada's access request as Shopify forwards it, received now and not yet carried out."""
    payload = {"customer": {"id": 7001, "email": "ada@example.com"}, "orders_requested": []}
    body, headers = signed("customers/data_request", payload, webhook_id=webhook_id)
    assert post(db, None, body=body, headers=headers)["status"] == "accepted"


def _watch(db):
    with db.transaction() as session:
        return watch(session, THRESHOLDS, now=utc_now(), notify=False)


def test_a_request_not_done_25_days_after_receipt_raises_the_alert_once(db, frozen_clock):
    seed(db)
    _request(db, webhook_id="access-1")
    frozen_clock.advance(timedelta(days=24, hours=23))
    assert [c.name for c in _watch(db) if c.name == PRIVACY] == []

    frozen_clock.advance(timedelta(hours=2))
    [fired] = [c for c in _watch(db) if c.name == PRIVACY]
    assert fired.firing
    assert fired.summary == (
        "1 privacy request not carried out 25 days after receipt (the oldest, access "
        "request 1 of store 'demo', was received 2026-03-02 and is due by 2026-04-02); the "
        "store owes the answer within a month. Requests are done in seconds: see why in "
        "`parley jobs dead` (kind privacy.customer_request) and the store's Settings → "
        "Privacy requests."
    )
    frozen_clock.advance(timedelta(minutes=1))
    assert [c for c in _watch(db) if c.name == PRIVACY] == []  # still firing: no change

    asyncio.run(Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig()).run_once())
    [request] = rows(db, PrivacyRequest)
    assert request.status == "done"
    [resolved] = [c for c in _watch(db) if c.name == PRIVACY]
    assert not resolved.firing
    assert resolved.summary == (
        "Every privacy request is carried out or was received recently (this alert fired "
        "for 1 min)."
    )
    [row] = rows(db, Alert, Alert.name == PRIVACY, order_by=lambda model: model.name)
    assert row.firing_since is None


def test_a_request_done_in_time_raises_nothing(db, frozen_clock):
    seed(db)
    _request(db, webhook_id="access-1")
    asyncio.run(Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig()).run_once())
    frozen_clock.advance(timedelta(days=40))
    assert [c for c in _watch(db) if c.name == PRIVACY] == []
