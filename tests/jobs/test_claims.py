"""Fair claims (RELIABILITY T7): one store's flood never holds back another store's order
updates, and transactional work goes before marketing work. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from parley.clock import utc_now
from parley.db import Database
from parley.jobs import claims, queue
from parley.jobs.models import Job, JobStatus, Lane
from parley.workspaces.service import create_workspace
from support import count, rows

LEASE = timedelta(seconds=60)
MARKETING, TRANSACTIONAL = Lane.MARKETING, Lane.TRANSACTIONAL


@pytest.fixture
def stores(db: Database) -> list[int]:
    """Four stores, A to D, in the order of their ids."""
    with db.transaction() as session:
        return [
            create_workspace(session, slug=f"store-{letter}", name=f"Store {letter}").id
            for letter in "abcd"
        ]


def _backlog(
    db: Database,
    store: int | None,
    jobs: int,
    *,
    lane: Lane = TRANSACTIONAL,
    minutes_ago: int = 0,
    kind: str = "test.job",
) -> None:
    """``jobs`` due jobs of one store, fallen due ``minutes_ago`` (oldest first)."""
    due = utc_now() - timedelta(minutes=minutes_ago)
    with db.transaction() as session:
        queue.enqueue_many(
            session,
            [
                {
                    "kind": kind,
                    "payload": {"n": n},
                    "workspace_id": store,
                    "lane": lane,
                    "due_at": due - timedelta(microseconds=jobs - n),
                }
                for n in range(jobs)
            ],
        )


def _claim(db: Database, worker: str = "w1", *, limit: int) -> list[queue.ClaimedJob]:
    with db.transaction() as session:
        return claims.claim(session, worker=worker, limit=limit, lease=LEASE)


def _per_store(jobs: list[queue.ClaimedJob]) -> Counter[int | None]:
    return Counter(job.workspace_id for job in jobs)


def test_a_store_with_a_flood_of_due_jobs_leaves_room_for_another_stores_order_update(
    db, frozen_clock, stores
):
    flooding, quiet = stores[0], stores[1]
    _backlog(db, flooding, 500, minutes_ago=30)
    _backlog(db, quiet, 1, kind="order.update")

    claimed = _claim(db, limit=50)

    assert _per_store(claimed) == {flooding: 49, quiet: 1}
    [update] = [job for job in claimed if job.workspace_id == quiet]
    assert update.kind == "order.update"
    # The flood's oldest jobs, in due order: its own order is kept.
    flood = [job.payload["n"] for job in claimed if job.workspace_id == flooding]
    assert flood == list(range(49))


def test_a_store_alone_with_due_work_gets_the_whole_batch(db, frozen_clock, stores):
    _backlog(db, stores[0], 300)

    assert _per_store(_claim(db, limit=200)) == {stores[0]: 200}
    assert _per_store(_claim(db, limit=200)) == {stores[0]: 100}
    assert _claim(db, limit=200) == []


def test_what_a_store_cannot_use_is_shared_by_the_stores_that_have_more(db, frozen_clock, stores):
    a, b, c = stores[:3]
    _backlog(db, a, 100, minutes_ago=30)
    _backlog(db, b, 100, minutes_ago=20)
    _backlog(db, c, 3, minutes_ago=10)

    claimed = _claim(db, limit=30)

    # Parts of 10; C uses 3, and its 7 go to A (waiting longest: 4) and B (3).
    assert _per_store(claimed) == {a: 14, b: 13, c: 3}


def test_with_more_stores_due_than_room_every_stores_turn_comes_in_rotation(
    db, frozen_clock, stores
):
    a, b, c, d = stores
    _backlog(db, d, 50, minutes_ago=40)  # the oldest backlog does not keep the others out
    for store in (a, b, c):
        _backlog(db, store, 5, minutes_ago=10)
    rotation = claims.Rotation()

    def turn() -> Counter[int | None]:
        with db.transaction() as session:
            claimed = claims.claim(session, worker="w1", limit=3, lease=LEASE, rotation=rotation)
        return _per_store(claimed)

    assert [turn(), turn(), turn()] == [
        {a: 1, b: 1, c: 1},
        {d: 1, a: 1, b: 1},
        {c: 1, d: 1, a: 1},
    ]


def test_transactional_work_is_claimed_before_older_marketing_work(db, frozen_clock, stores):
    broadcasting, shipping = stores[0], stores[1]
    _backlog(db, broadcasting, 50, lane=MARKETING, minutes_ago=60)
    _backlog(db, shipping, 4, lane=TRANSACTIONAL)
    _backlog(db, broadcasting, 2, lane=TRANSACTIONAL)

    claimed = _claim(db, limit=10)

    lanes = {job.id: job.lane for job in rows(db, Job)}
    assert Counter(lanes[job.id] for job in claimed) == {TRANSACTIONAL: 6, MARKETING: 4}
    waiting = [lanes[job.id] for job in rows(db, Job, Job.status == JobStatus.PENDING)]
    assert Counter(waiting) == {MARKETING: 46}


def test_marketing_work_waits_only_while_transactional_work_is_due(db, frozen_clock, stores):
    _backlog(db, stores[0], 3, lane=MARKETING, minutes_ago=60)
    _backlog(db, stores[1], 2, lane=TRANSACTIONAL)

    claimed = _claim(db, limit=10)

    lanes = {job.id: job.lane for job in rows(db, Job)}
    assert Counter(lanes[job.id] for job in claimed) == {MARKETING: 3, TRANSACTIONAL: 2}
    # Oldest due first within the batch, whatever the lane.
    assert [lanes[job.id] for job in claimed] == [MARKETING] * 3 + [TRANSACTIONAL] * 2


def test_a_store_whose_jobs_are_not_yet_due_takes_no_part(db, frozen_clock, stores):
    _backlog(db, stores[0], 5, minutes_ago=-60)  # due in an hour
    _backlog(db, stores[1], 20)

    assert _per_store(_claim(db, limit=10)) == {stores[1]: 10}


def test_an_expired_lease_is_taken_back_alone_and_the_deployments_own_jobs_before_any_store(
    db, frozen_clock, stores
):
    _backlog(db, stores[0], 1, kind="crashed", minutes_ago=90)
    [crashed] = _claim(db, "dead-worker", limit=1)
    _backlog(db, stores[0], 20, minutes_ago=60)
    _backlog(db, None, 1, kind="periodic.tick")
    frozen_clock.advance(LEASE + timedelta(seconds=1))

    taken_back = _claim(db, "w2", limit=3)
    claimed = _claim(db, "w3", limit=3)

    # The job taken back is taken alone: it may be what killed its worker
    assert [(job.id, job.kind, job.attempts) for job in taken_back] == [(crashed.id, "crashed", 2)]
    # Then the deployment's own job before any store's (returned in due order)
    assert [job.kind for job in claimed] == ["test.job", "test.job", "periodic.tick"]


def test_a_job_in_a_lane_no_claim_knows_is_refused_and_nothing_is_written(db, frozen_clock, stores):
    with pytest.raises(ValueError, match="bulk"), db.transaction() as session:
        queue.enqueue(session, kind="test.job", payload={}, workspace_id=stores[0], lane="bulk")

    assert count(db, Job) == 0


def test_every_lane_is_claimed():
    assert set(claims.LANES) == set(Lane)


@pytest.mark.parametrize(
    ("room", "stores", "parts"),
    [(10, 1, [10]), (10, 3, [4, 3, 3]), (3, 3, [1, 1, 1]), (200, 7, [29] * 4 + [28] * 3)],
)
def test_room_is_split_as_equally_as_it_can_be_the_longest_waiting_first(room, stores, parts):
    assert claims.shares(room, stores) == parts


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    backlogs=st.lists(st.integers(min_value=0, max_value=40), min_size=4, max_size=4),
    limit=st.integers(min_value=1, max_value=60),
)
def test_a_claim_is_full_whenever_work_is_due_and_no_store_is_short_changed(
    db, stores, backlogs, limit
):
    """Max-min fair: the claim takes ``min(limit, due)`` jobs, and a store that got fewer
    than it had due got at most one fewer than any other store."""
    with db.transaction() as session:
        session.query(Job).delete()
    for store, jobs in zip(stores, backlogs, strict=True):
        _backlog(db, store, jobs, minutes_ago=store)

    got = _per_store(_claim(db, limit=limit))

    assert sum(got.values()) == min(limit, sum(backlogs))
    for store, due in zip(stores, backlogs, strict=True):
        assert got[store] <= due
        if got[store] < due:
            assert all(got[other] <= got[store] + 1 for other in stores)


def test_concurrent_claimers_share_every_stores_jobs_without_overlap(db, frozen_clock, stores):
    for index, store in enumerate(stores):
        _backlog(db, store, 60 + 10 * index, lane=MARKETING if index == 3 else TRANSACTIONAL)
    _backlog(db, None, 50, kind="periodic.tick")
    claimers = 4
    start = threading.Barrier(claimers)

    def claim_until_empty(name: str) -> list[int]:
        start.wait()
        mine: list[int] = []
        while True:
            with db.transaction() as session:
                jobs = claims.claim(session, worker=name, limit=9, lease=LEASE)
                # Hold the claim's transaction open so the others must go around it.
                time.sleep(0.002)
            if not jobs:
                return mine
            mine.extend(job.id for job in jobs)

    names = [f"w{n}" for n in range(claimers)]
    with ThreadPoolExecutor(claimers) as pool:
        claimed = dict(zip(names, pool.map(claim_until_empty, names), strict=True))

    every = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every) == sorted(job.id for job in rows(db, Job))
    assert len(every) == 60 + 70 + 80 + 90 + 50
    holder = {job_id: name for name, ids in claimed.items() for job_id in ids}
    for job in rows(db, Job):
        assert (job.status, job.attempts, job.locked_by) == (
            JobStatus.RUNNING,
            1,
            holder[job.id],
        )


def _claim_steps(db: Database, *, limit: int) -> int:
    """SQLite virtual-machine steps (in thousands) one claim takes."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    with db.transaction() as session:
        raw = session.connection().connection.driver_connection
        raw.set_progress_handler(step, 1000)
        try:
            claims.claim(session, worker="w1", limit=limit, lease=LEASE)
        finally:
            raw.set_progress_handler(None, 0)
    return steps


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_claim_costs_the_same_however_large_a_stores_backlog(db, frozen_clock, stores):
    """The claim reads indexes in due order: another store's 20,000 due jobs, older and in
    the same lane, cost it no more than 200 do."""
    _backlog(db, stores[1], 1)
    _backlog(db, None, 1, kind="periodic.tick")
    _backlog(db, stores[0], 200, minutes_ago=60)
    small = _claim_steps(db, limit=10)
    with db.transaction() as session:
        session.query(Job).filter(Job.status == JobStatus.RUNNING).update(
            {"status": JobStatus.PENDING, "attempts": 0}
        )
    _backlog(db, stores[0], 19_800, minutes_ago=90)

    large = _claim_steps(db, limit=10)

    assert large <= small + 2


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_claim_reads_only_the_rows_it_takes_beside_another_stores_backlog(
    db, frozen_clock, stores
):
    """PostgreSQL plans from statistics: with one store's 20,000 due jobs analysed, a claim
    for both stores still searches each store's own range, and reads no table through."""
    _backlog(db, stores[0], 20_000, minutes_ago=60)
    _backlog(db, stores[1], 5)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE jobs")

    with db.transaction() as session:
        claimed = claims.claim(session, worker="w1", limit=50, lease=LEASE)
        read = session.execute(
            text(
                "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables"
                " WHERE relname = 'jobs'"
            )
        ).one()

    assert _per_store(claimed) == {stores[0]: 45, stores[1]: 5}
    assert read.seq_tup_read == 0
    assert read.idx_tup_fetch < 500  # walking the backlog in due order fetched ~10,000
