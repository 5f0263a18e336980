"""Each process keeps a workspace's enabled journeys for a second: a change made in the
same process shows at once, one made in another within the second, and a run started in
that second for a journey just switched off ends before it sends anything."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from parley.db import Database
from parley.db.recent import Recent
from parley.journeys import service as journeys
from parley.journeys.engine import JOURNEY_SWITCHED_OFF
from parley.journeys.models import JourneyRun, RunStatus
from parley.journeys.service import ENABLED_TTL_SECONDS
from parley.messaging.models import Message
from support import count, deliveries, drain, make_worker, post, recording_adapters, rows, seed


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _with_clock(db: Database) -> Ticks:
    ticks = Ticks()
    cache = db.shared("journeys.enabled", lambda: Recent(ttl=ENABLED_TTL_SECONDS, clock=ticks))
    assert cache.clock is ticks  # made here, before anything touched the journeys
    return ticks


def _placed(first_name: str, order_id: int) -> Any:
    return deliveries(first_name, order_id=order_id, number=order_id + 1000)[0]


def _switch(db: Database, workspace_id: int, key: str, *, on: bool) -> None:
    with db.transaction() as session:
        journeys.update_journey(session, workspace_id=workspace_id, key=key, is_enabled=on)


def _runs(db: Database) -> dict[str, tuple[RunStatus, str | None]]:
    return {
        run.order_external_id: (run.status, run.exit_reason)
        for run in rows(db, JourneyRun, JourneyRun.order_external_id.is_not(None))
    }


def _enabled_reads(db: Database) -> list[str]:
    """Every read of a workspace's enabled journeys from now on."""
    reads: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM journeys" in statement and "is_enabled" in statement:
            reads.append(statement)

    return reads


def test_deliveries_within_the_ttl_read_the_enabled_journeys_once(db, frozen_clock):
    ticks = _with_clock(db)
    seed(db)
    reads = _enabled_reads(db)

    post(db, _placed("Ada", 601))
    ticks.now += ENABLED_TTL_SECONDS - 0.01
    post(db, _placed("Alan", 602))
    assert len(reads) == 1
    ticks.now += 0.01
    post(db, _placed("Grace", 603))

    assert len(reads) == 2
    assert count(db, JourneyRun) == 3


def test_a_journey_switched_off_in_this_process_starts_no_run_on_the_next_event(db, frozen_clock):
    _with_clock(db)  # stands still: only the switch itself can make the change show
    workspace_id = seed(db)
    post(db, _placed("Ada", 601))

    _switch(db, workspace_id, "order_confirmation", on=False)
    post(db, _placed("Alan", 602))

    assert set(_runs(db)) == {"601"}


def test_a_journey_switched_on_in_this_process_starts_runs_on_the_next_event(db, frozen_clock):
    _with_clock(db)
    workspace_id = seed(db)
    _switch(db, workspace_id, "order_confirmation", on=False)
    post(db, _placed("Ada", 601))

    _switch(db, workspace_id, "order_confirmation", on=True)
    post(db, _placed("Alan", 602))

    assert set(_runs(db)) == {"602"}


def test_a_journey_switched_off_elsewhere_shows_within_the_ttl_and_sends_nothing_meanwhile(
    db, frozen_clock
):
    ticks = _with_clock(db)
    workspace_id = seed(db)
    elsewhere = Database(db.url)  # another process on the same database
    try:
        post(db, _placed("Ada", 601))
        _switch(elsewhere, workspace_id, "order_confirmation", on=False)
    finally:
        elsewhere.dispose()

    ticks.now += ENABLED_TTL_SECONDS / 2
    post(db, _placed("Alan", 602))  # this process has not seen the switch yet
    ticks.now += ENABLED_TTL_SECONDS / 2
    post(db, _placed("Grace", 603))  # now it has
    adapters = recording_adapters()
    drain(make_worker(db, adapters))

    assert _runs(db) == {
        "601": (RunStatus.EXITED, JOURNEY_SWITCHED_OFF),
        "602": (RunStatus.EXITED, JOURNEY_SWITCHED_OFF),
    }
    assert count(db, Message) == 0
    assert [adapter.sent for adapter in adapters.values()] == [[], [], []]


def test_a_change_rolled_back_leaves_the_enabled_journeys_as_they_were(db, frozen_clock):
    _with_clock(db)
    workspace_id = seed(db)
    with db.sessions() as session, session.begin():
        journeys.update_journey(
            session, workspace_id=workspace_id, key="order_confirmation", is_enabled=False
        )
        seen = journeys.enabled_journeys(session, workspace_id=workspace_id)
        assert "order_confirmation" not in {j.definition.key for j in seen}
        session.rollback()

    post(db, _placed("Ada", 601))

    assert set(_runs(db)) == {"601"}
