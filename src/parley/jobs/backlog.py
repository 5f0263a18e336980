"""How far behind the job table is: what is due and waiting, how late, and what died.

Read from the table itself, so every process (the web server answering ``GET /metrics``,
the worker running the alerts watch, ``parley jobs backlog``) sees the same backlog
whichever workers are running, or none: a deployment whose workers all died shows its
order updates growing late, not an empty queue.

Lateness is the age of the oldest job that is due and not yet claimed. A job waiting for
its sender's room (:mod:`parley.messaging.pace`) is due at its booked time, so a paced
backlog is not late while it goes out at the sender's rate; it is late once the workers
cannot keep up with even that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, case, func, select, text
from sqlalchemy.orm import Session

from parley.db.base import UTCDateTime
from parley.db.upsert import per_dialect
from parley.jobs import claims
from parley.jobs.models import Job, JobStatus, Lane
from parley.jobs.queue import DEAD_LETTER


@dataclass(frozen=True)
class LaneBacklog:
    """One lane's due work: how many jobs, from how many stores, and the oldest due time."""

    due: int = 0
    stores: int = 0
    oldest_due_at: datetime | None = None
    longest_waiting_store: int | None = None
    """The store (workspace id) whose oldest due job is the lane's oldest; None when that
    job is the deployment's own (a periodic tick) or nothing is due."""

    def late_seconds(self, now: datetime) -> float:
        """How long the oldest due job has waited past its time (0 when none is due)."""
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_due_at).total_seconds())


@dataclass(frozen=True)
class Backlog:
    """The job table's state at ``at``."""

    at: datetime
    lanes: dict[str, LaneBacklog]
    """Every lane, due or not."""
    lease_expired: int = 0
    """Jobs still marked running whose lease ran out: their worker died, and the next
    claim takes them again."""
    dead_letter: dict[str, int] = field(default_factory=dict)
    """Jobs in the dead letter, by kind."""
    dead_lately: dict[str, int] = field(default_factory=dict)
    """Of those, the ones that got there since the ``dead_since`` asked for, by kind."""

    def late_seconds(self, lane: str) -> float:
        return self.lanes[lane].late_seconds(self.at)


def read_backlog(session: Session, *, now: datetime, dead_since: timedelta) -> Backlog:
    """The backlog as of ``now``, read from indexes, none of the finished history.

    Due work costs index probes to find the stores with due work and, for each, a count
    of its range of the pending jobs' index (:func:`store_backlog`); the dead letter and
    the expired leases are read from the index of jobs by status.
    """
    return Backlog(
        at=now,
        lanes=_due_by_lane(session, now),
        lease_expired=session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status == JobStatus.RUNNING, Job.locked_until < now)
        )
        or 0,
        **_dead_letter(session, now - dead_since),
    )


def store_backlog(session: Session, *, workspace_id: int, now: datetime) -> dict[str, LaneBacklog]:
    """One store's due work per lane, and nothing of any other store's: what its own admins
    are shown. One range of the pending jobs' index per lane, counted from the index alone."""
    row = (
        session.execute(_one_store_due_statement(session), {"store": workspace_id, "now": now})
        .mappings()
        .one()
    )
    return {
        lane: LaneBacklog(
            due=due, stores=1, oldest_due_at=oldest, longest_waiting_store=workspace_id
        )
        if due
        else LaneBacklog()
        for lane, (due, oldest) in _lanes_of(row).items()
    }


def _due_by_lane(session: Session, now: datetime) -> dict[str, LaneBacklog]:
    """Per lane: the stores with due work as a claim finds them (index probes, not the
    backlog), each one's due jobs counted in its range of the pending jobs' index, and the
    deployment's own due jobs. On SQLite, where this read holds the one writer, that is
    some 20 ms for a store's 200,000 due jobs where a grouped count over the table took
    100 (``bench/fairness.py`` runs the watch beside such a flood)."""
    heads = claims.waiting(session, now).stores
    own = _lanes_of(session.execute(_own_due_statement(session), {"now": now}).mappings().one())
    counted = {
        (lane, store): found.due
        for store in {store for waiting in heads.values() for _, store in waiting}
        for lane, found in store_backlog(session, workspace_id=store, now=now).items()
    }
    lanes: dict[str, LaneBacklog] = {}
    for lane in Lane:
        stores = heads[lane]
        own_due, own_oldest = own[lane]
        due = own_due + sum(counted[lane, store] for _, store in stores)
        if not due:
            lanes[lane] = LaneBacklog()
            continue
        store_first = bool(stores) and (own_oldest is None or stores[0][0] <= own_oldest)
        lanes[lane] = LaneBacklog(
            due=due,
            stores=len(stores),
            oldest_due_at=stores[0][0] if store_first else own_oldest,
            longest_waiting_store=stores[0][1] if store_first else None,
        )
    return lanes


def _dead_letter(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(
            Job.kind,
            func.count(),
            func.sum(case((Job.updated_at >= since, 1), else_=0)),
        )
        .where(Job.status.in_(DEAD_LETTER))
        .group_by(Job.kind)
    ).all()
    return {
        "dead_letter": {kind: count for kind, count, _ in rows},
        "dead_lately": {kind: int(lately) for kind, _, lately in rows if lately},
    }


# Per lane, the due jobs counted and the oldest found in one range of the pending jobs'
# index each. ``status = 'pending'`` is written out, not bound: SQLite then knows the
# partial index holds only pending jobs and counts from the index alone (17 ms for
# 200,000 due, not 40). One range per lane, not a grouped read of the store's range,
# which also walks what is not due yet and took half as long again.
_LANE_DUE = """
(SELECT {aggregate} FROM jobs {store_index}
  WHERE status = 'pending' AND {whose} AND lane = '{lane}' AND due_at <= :now)
"""


@per_dialect
def _own_due_statement(dialect: str) -> Any:
    return _due_statement(dialect, "workspace_id IS NULL")


@per_dialect
def _one_store_due_statement(dialect: str) -> Any:
    return _due_statement(dialect, "workspace_id = :store")


def _due_statement(dialect: str, whose: str) -> Any:
    def lane_due(lane: Lane, aggregate: str) -> str:
        return _LANE_DUE.format(
            aggregate=aggregate, store_index=claims.store_index(dialect), whose=whose, lane=lane
        )

    columns = ", ".join(
        f"{lane_due(lane, 'count(*)')} AS {lane.value}_due, "
        f"{lane_due(lane, 'min(due_at)')} AS {lane.value}_oldest"
        for lane in Lane
    )
    return (
        text(f"SELECT {columns}")
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(
            **{f"{lane.value}_due": Integer() for lane in Lane},
            **{f"{lane.value}_oldest": UTCDateTime() for lane in Lane},
        )
    )


def _lanes_of(row: Any) -> dict[str, tuple[int, datetime | None]]:
    """``(due, oldest due time)`` per lane from a row of :func:`_due_statement`."""
    return {lane: (row[f"{lane.value}_due"], row[f"{lane.value}_oldest"]) for lane in Lane}
