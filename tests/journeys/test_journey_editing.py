"""Store owners edit journeys: timings within the playbook's bounds, on/off, conditions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete

from parley.customers.models import Customer
from parley.errors import Invalid
from parley.journeys import service as journeys
from parley.journeys import upcoming
from parley.journeys.models import Journey, JourneyRun, JourneyVersion, RunStatus
from parley.messaging.models import Message
from support import count, deliveries, drain, make_worker, post, recording_adapters, rows, seed


def _satisfaction(hours: float) -> dict:
    return {
        "key": "satisfaction_check",
        "name": "Satisfaction check",
        "trigger": {"event": "fulfillment.delivered"},
        "run_key": "order",
        "exit": [{"event": "order.cancelled"}],
        "steps": [
            {"type": "wait", "hours": hours},
            {"type": "send", "message": "satisfaction_check"},
        ],
    }


def _update(db, key: str, **change):
    workspace_id = seed(db)
    with db.transaction() as session:
        return journeys.update_journey(session, workspace_id=workspace_id, key=key, **change)


@pytest.mark.parametrize("hours", [24, 36, 48])
def test_satisfaction_check_wait_can_be_set_between_24_and_48_hours(db, hours):
    journey = _update(db, "satisfaction_check", definition=_satisfaction(hours))
    assert journey.version == 2
    assert journey.definition["steps"][0]["hours"] == hours


@pytest.mark.parametrize("hours", [23.5, 49, 1])
def test_satisfaction_check_wait_outside_24_to_48_hours_is_refused(db, hours):
    with pytest.raises(Invalid, match="waits between 24 and 48 hours"):
        _update(db, "satisfaction_check", definition=_satisfaction(hours))
    [journey] = rows(db, Journey, Journey.key == "satisfaction_check")
    assert (journey.version, journey.definition["steps"][0]["hours"]) == (1, 24.0)


def test_edited_satisfaction_wait_is_used_for_new_deliveries(db, frozen_clock):
    _update(db, "satisfaction_check", definition=_satisfaction(36))
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    for delivery in deliveries("Alan"):
        post(db, delivery)
    drain(worker)

    frozen_clock.advance(timedelta(hours=35, minutes=59))
    drain(worker)
    assert count(db, Message, Message.message_type == "satisfaction_check") == 0
    frozen_clock.advance(timedelta(minutes=1))
    drain(worker)
    assert count(db, Message, Message.message_type == "satisfaction_check") == 1


def test_disabled_journey_starts_no_runs(db, frozen_clock):
    _update(db, "order_confirmation", is_enabled=False)
    post(db, deliveries("Ada")[0])
    drain(make_worker(db, recording_adapters()))

    assert count(db, JourneyRun) == 0
    assert count(db, Message) == 0


def test_condition_step_exits_the_run_when_it_does_not_hold(db, frozen_clock):
    definition = {
        "key": "order_confirmation",
        "name": "Order confirmation",
        "trigger": {"event": "order.created"},
        "run_key": "order",
        "steps": [
            {
                "type": "condition",
                "if": {"path": "order.financial_status", "op": "eq", "value": "pending"},
            },
            {"type": "send", "message": "order_confirmation"},
        ],
    }
    _update(db, "order_confirmation", definition=definition)
    post(db, deliveries("Ada")[0])  # the simulated order is paid
    drain(make_worker(db, recording_adapters()))

    [run] = rows(db, JourneyRun)
    assert (run.status, run.exit_reason) == (
        RunStatus.EXITED,
        "condition not met: order.financial_status eq",
    )
    assert count(db, Message) == 0


def test_a_journey_switched_off_sends_nothing_more_to_runs_already_waiting(db, frozen_clock):
    """The Journeys page promises it: a switched-off journey starts no new runs and sends
    nothing more to runs already waiting (here, a satisfaction check due in 24 h)."""
    workspace_id = _update(db, "satisfaction_check", is_enabled=True).workspace_id
    worker = make_worker(db, recording_adapters())
    for delivery in deliveries("Alan"):
        post(db, delivery)
    drain(worker)
    [journey] = rows(db, Journey, Journey.key == "satisfaction_check")
    [run] = rows(db, JourneyRun, JourneyRun.journey_id == journey.id)
    assert [send.journey_name for send in _upcoming(db, workspace_id, run.customer_id)] == [
        "Satisfaction check"
    ]
    with db.transaction() as session:
        journeys.update_journey(
            session, workspace_id=workspace_id, key="satisfaction_check", is_enabled=False
        )
    assert _upcoming(db, workspace_id, run.customer_id) == []
    frozen_clock.advance(timedelta(hours=24))
    drain(worker)

    assert count(db, Message, Message.message_type == "satisfaction_check") == 0
    [run] = rows(db, JourneyRun, JourneyRun.journey_id == journey.id)
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, "journey switched off")


def _upcoming(db, workspace_id: int, customer_id: int) -> list:
    with db.transaction() as session:
        return upcoming.upcoming_sends(session, workspace_id=workspace_id, customer_id=customer_id)


def test_ending_many_runs_leaves_a_run_that_already_ended_as_it_ended(db, frozen_clock):
    workspace_id = seed(db)
    with db.transaction() as session:
        [journey, *_] = journeys.list_journeys(session, workspace_id=workspace_id)
        runs = [
            JourneyRun(
                workspace_id=workspace_id,
                journey_id=journey.id,
                run_key=f"order:{n}",
                started_at=frozen_clock.now,
            )
            for n in range(3)
        ]
        session.add_all(runs)
        session.flush()
        exited = runs[0]
        journeys.end_run(
            session,
            run_id=exited.id,
            status=RunStatus.EXITED,
            reason="order.cancelled",
            now=frozen_clock.now,
        )
    later = frozen_clock.now + timedelta(minutes=5)

    with db.transaction() as session:
        journeys.end_runs(
            session, run_ids=[run.id for run in runs], status=RunStatus.COMPLETED, now=later
        )

    ended = {run.id: (run.status, run.exit_reason, run.ended_at) for run in rows(db, JourneyRun)}
    assert ended == {
        exited.id: (RunStatus.EXITED, "order.cancelled", frozen_clock.now),
        runs[1].id: (RunStatus.COMPLETED, None, later),
        runs[2].id: (RunStatus.COMPLETED, None, later),
    }


def test_a_run_in_flight_finishes_on_the_version_it_started_on(db, frozen_clock):
    """Alan's satisfaction check waits a day at step 1 when the store drops the wait: his
    job's step 1 would be past the end of the new steps, and he would get nothing. He gets
    his check once, a day after delivery; Grace, delivered after the edit, at once."""
    workspace_id = seed(db)
    adapters = recording_adapters()
    worker = make_worker(db, adapters)
    for delivery in deliveries("Alan"):
        post(db, delivery)
    drain(worker)
    with db.transaction() as session:
        journeys.update_journey(
            session,
            workspace_id=workspace_id,
            key="satisfaction_check",
            definition={**_satisfaction(24), "steps": [_satisfaction(24)["steps"][1]]},
        )
    [alan] = rows(db, Customer, Customer.first_name == "Alan")
    assert [
        (send.journey_name, send.due_at - frozen_clock.now)
        for send in _upcoming(db, workspace_id, alan.id)
    ] == [("Satisfaction check", timedelta(hours=24))]

    for delivery in deliveries("Grace", order_id=502, number=1502):
        post(db, delivery)
    drain(worker)
    assert _satisfaction_checks(db) == ["Grace"]
    frozen_clock.advance(timedelta(hours=24))
    drain(worker)
    drain(worker)

    assert _satisfaction_checks(db) == ["Grace", "Alan"]
    assert [(run.context["journey_version"], run.status) for run in _satisfaction_runs(db)] == [
        (1, RunStatus.COMPLETED),
        (2, RunStatus.COMPLETED),
    ]
    versions = rows(db, JourneyVersion, JourneyVersion.journey_id == _satisfaction_journey_id(db))
    assert [(v.version, len(v.definition["steps"])) for v in versions] == [(1, 2), (2, 1)]


def test_a_run_whose_version_was_edited_away_before_versions_were_kept_follows_the_current(
    db, frozen_clock
):
    """Before migration 0013 only the current definition was kept."""
    seed(db)
    worker = make_worker(db, recording_adapters())
    for delivery in deliveries("Alan"):
        post(db, delivery)
    drain(worker)
    _update(db, "satisfaction_check", definition=_satisfaction(36))
    with db.transaction() as session:
        session.execute(delete(JourneyVersion).where(JourneyVersion.version == 1))

    frozen_clock.advance(timedelta(hours=24))
    drain(worker)

    assert _satisfaction_checks(db) == ["Alan"]


def _satisfaction_runs(db) -> list[JourneyRun]:
    return rows(db, JourneyRun, JourneyRun.journey_id == _satisfaction_journey_id(db))


def _satisfaction_journey_id(db) -> int:
    [journey] = rows(db, Journey, Journey.key == "satisfaction_check")
    return journey.id


def _satisfaction_checks(db) -> list[str]:
    customers = {customer.id: customer.first_name for customer in rows(db, Customer)}
    return [
        customers[message.customer_id]
        for message in rows(db, Message, Message.message_type == "satisfaction_check")
        if message.status == "sent"
    ]
