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

from sqlalchemy import Integer, String, bindparam, case, func, select, text
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
    """The backlog as of ``now``: three grouped reads, none of the finished history.

    Due work is read from the pending jobs' index (``ix_jobs_pending_by_store``), so it
    costs the size of the waiting backlog; the dead letter and the expired leases from the
    index of jobs by status.
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


_OWN_DUE = """
SELECT lane, count(*) AS due, min(due_at) AS oldest FROM jobs {store_index}
 WHERE status = 'pending' AND workspace_id IS NULL AND due_at <= :now
 GROUP BY lane
"""

# ``status = 'pending'`` written out, not bound: SQLite then knows the partial index holds
# only pending jobs and counts from the index alone (17 ms for 200,000 due, not 40).
_STORE_DUE = """
SELECT count(*) FROM jobs {store_index}
 WHERE status = 'pending' AND workspace_id = :store AND lane = :lane AND due_at <= :now
"""


def _due_by_lane(session: Session, now: datetime) -> dict[str, LaneBacklog]:
    """Per lane: the stores with due work as a claim finds them (index probes, not the
    backlog), then each one's due jobs counted in its range of the pending jobs' index,
    and the deployment's own due jobs. On SQLite, where this read holds the one writer,
    that is some 17 ms for a store's 200,000 due jobs where a grouped count over the
    table took 100 (``bench/fairness.py`` runs the watch beside such a flood)."""
    heads = claims.waiting(session, now).stores
    own = {
        row.lane: (row.due, row.oldest)
        for row in session.execute(_own_due_statement(session), {"now": now})
    }
    lanes: dict[str, LaneBacklog] = {}
    for lane in Lane:
        stores = heads[lane]
        own_due, own_oldest = own.get(lane, (0, None))
        due = own_due + sum(
            session.scalar(
                _store_due_statement(session), {"store": store, "lane": lane, "now": now}
            )
            or 0
            for _, store in stores
        )
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


@per_dialect
def _own_due_statement(dialect: str) -> Any:
    return (
        text(_OWN_DUE.format(store_index=claims.store_index(dialect)))
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(lane=String(), due=Integer(), oldest=UTCDateTime())
    )


@per_dialect
def _store_due_statement(dialect: str) -> Any:
    return text(_STORE_DUE.format(store_index=claims.store_index(dialect))).bindparams(
        bindparam("now", type_=UTCDateTime())
    )


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
