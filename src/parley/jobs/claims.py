"""Who goes next: due jobs are claimed transactional work first, shared fairly between stores.

One store's flood of due jobs (a broadcast, a bulk fulfilment, a backlog after an
outage) must not hold back another store's order updates (DESIGN.md, "Beyond one
machine"; RELIABILITY.md T7). A claim of ``limit`` jobs therefore takes, in order:

1. a job whose lease ran out (its worker died), alone: a claim that takes one back takes
   nothing else. Whatever killed the worker may be that job (a poison job: it runs out of
   memory, or crashes a C extension, every time), and the jobs taken with it would die
   with it again, attempt after attempt, into the dead letter beside it, never run.
2. the deployment's own jobs (no store: the periodic ticks), oldest first. They are few,
   and nobody else would take them.
3. Each lane in turn, transactional before marketing. Within a lane, the stores with due
   work share what room is left in parts as equal as the room allows, the larger parts
   to the stores whose oldest due job has waited longest; what a store cannot use (it
   had fewer due jobs, or another worker holds them) is shared again between the stores
   that filled their part. A store alone with due work gets the whole batch. When more
   stores have due work than the batch has room, one job each goes to the next stores
   in the worker's :class:`Rotation`, so every store's turn comes within a few claims
   however old another store's backlog is.

Finding the stores with due work is a loose index scan of ``ix_jobs_pending_by_store``:
one index probe per store with waiting jobs and one per store and lane, never a read of
the backlog, so a store's million queued jobs cost a claim what one job does. Each
store's part is a range of that index in due order. On PostgreSQL every store's part is
taken in one statement (``LATERAL (... LIMIT part FOR UPDATE SKIP LOCKED)`` per store),
so workers claim side by side without waiting on each other's rows. On SQLite, where the
caller's ``BEGIN IMMEDIATE`` already makes the claim the only writer, each part is one
short statement. The same read says whether anything of (1) is waiting, so a usual
claim is two statements: in a worker process busy sending, every round trip also waits
for its thread's turn at the interpreter (measured on PostgreSQL: a claim of three
statements took 9 ms alone and 62 ms beside one busy thread).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.db.base import UTCDateTime
from parley.db.upsert import per_dialect
from parley.jobs.models import Job, JobStatus, Lane
from parley.jobs.queue import ClaimedJob

log = logging.getLogger(__name__)

LANES = (Lane.TRANSACTIONAL, Lane.MARKETING)
"""Claim order: a marketing job waits while transactional work is due."""

LOST_LEASE = "the worker holding it lost its lease (it stopped or stalled)"
"""The dead letter's reason for a job whose last attempts lost their lease."""

_SPENT = "status = 'running' AND attempts > COALESCE(CAST(:budget AS INTEGER), max_attempts)"
"""A lease ran out on a job whose attempts were spent, and then on the claim that took it
back only to settle what it left (:mod:`parley.jobs.worker`): what runs it kills its
worker. Such a job is not taken again but put in the dead letter."""

_TAKE = """
UPDATE jobs
   SET status = CASE WHEN {spent} THEN 'dead' ELSE 'running' END,
       attempts = CASE WHEN {spent} THEN attempts ELSE attempts + 1 END,
       locked_until = CASE WHEN {spent} THEN NULL ELSE :lease_until END,
       last_error = CASE WHEN {spent}
                         THEN 'gave up after ' || attempts || ' attempts: ' || :lost
                         ELSE last_error END,
       locked_by = :worker, updated_at = :now
 WHERE {chosen}
RETURNING id, kind, payload, workspace_id, attempts, max_attempts, due_at, status
"""

_UNOWNED = """
SELECT id FROM jobs {store_index}
 WHERE status = 'pending' AND workspace_id IS NULL
   AND lane IN ('transactional', 'marketing') AND due_at <= :now
 ORDER BY due_at
 LIMIT :room
 {lock}
"""

_EXPIRED = """
SELECT id FROM jobs
 WHERE status = 'running' AND locked_until < :now
 ORDER BY due_at
 LIMIT 1
 {lock}
"""

_ONE_STORE_PART = """
SELECT id FROM jobs
 WHERE status = 'pending' AND workspace_id = :store AND lane = :lane AND due_at <= :now
 ORDER BY workspace_id, lane, due_at
 LIMIT :part
"""

_EVERY_STORE_PART = """
SELECT taken.id
  FROM unnest(CAST(:stores AS BIGINT[]), CAST(:parts AS INTEGER[])) AS store(id, part)
 CROSS JOIN LATERAL (
       SELECT id FROM jobs
        WHERE status = 'pending' AND workspace_id = store.id AND lane = :lane
          AND due_at <= :now
        ORDER BY workspace_id, lane, due_at
        LIMIT store.part
          FOR UPDATE SKIP LOCKED) AS taken
"""

_DUE_WORK = """
WITH RECURSIVE stores(id) AS (
    SELECT (SELECT workspace_id FROM jobs {store_index}
             WHERE status = 'pending' AND workspace_id IS NOT NULL
             ORDER BY workspace_id, lane, due_at LIMIT 1)
  UNION ALL
    SELECT (SELECT workspace_id FROM jobs {store_index}
             WHERE status = 'pending' AND workspace_id > stores.id
             ORDER BY workspace_id, lane, due_at LIMIT 1)
      FROM stores
     WHERE stores.id IS NOT NULL
)
SELECT id, transactional, marketing, 0 AS overdue FROM (
    SELECT stores.id,
           (SELECT due_at FROM jobs
             WHERE status = 'pending' AND workspace_id = stores.id AND lane = 'transactional'
             ORDER BY workspace_id, lane, due_at LIMIT 1) AS transactional,
           (SELECT due_at FROM jobs
             WHERE status = 'pending' AND workspace_id = stores.id AND lane = 'marketing'
             ORDER BY workspace_id, lane, due_at LIMIT 1) AS marketing
      FROM stores
     WHERE stores.id IS NOT NULL) AS heads
 WHERE transactional <= :now OR marketing <= :now
UNION ALL
SELECT NULL, NULL, NULL, {unowned}
 WHERE EXISTS (SELECT 1 FROM jobs {store_index}
                WHERE status = 'pending' AND workspace_id IS NULL
                  AND lane IN ('transactional', 'marketing') AND due_at <= :now)
UNION ALL
SELECT NULL, NULL, NULL, {expired}
 WHERE EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND locked_until < :now)
"""

_UNOWNED_DUE = 1
_LEASE_EXPIRED = 2
"""The ``overdue`` column of :data:`_DUE_WORK`'s rows that are not a store's."""


@dataclass
class Rotation:
    """Where a worker's claims stopped, per lane, when more stores had due work than the
    batch had room: the next such claim starts with the stores after it, by id."""

    after: dict[Lane, int] = field(default_factory=dict)

    def order(self, lane: Lane, stores: list[int], room: int) -> list[int]:
        """``stores`` by id, starting after the last store served, wrapping round; the
        first ``room`` of them are served now."""
        ring = sorted(stores)
        start = bisect_right(ring, self.after.get(lane, 0))
        ordered = ring[start:] + ring[:start]
        self.after[lane] = ordered[min(room, len(ordered)) - 1]
        return ordered


def claim(
    session: Session,
    *,
    worker: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    rotation: Rotation | None = None,
    max_attempts: int | None = None,
) -> list[ClaimedJob]:
    """Take up to ``limit`` due jobs (and jobs whose lease expired) for this worker, fairly.

    ``worker`` is written as the jobs' lease owner, and only it settles them: it must name
    this one claim (a :class:`~parley.jobs.worker.Worker` writes ``<its name>/<claim
    number>``), so that a claim whose lease ran out cannot settle a job that a later claim
    of the same worker took back.
    Returned oldest due first. The caller's transaction holds them; on SQLite it must be
    ``BEGIN IMMEDIATE`` (:meth:`parley.db.Database.transaction`). A worker passes the same
    ``rotation`` to each of its claims; without one, a claim starts at the lowest store id.

    A job whose lease ran out is taken back with its attempt counted, as any claim counts
    one, and alone (the claim takes nothing else: it may be what killed its worker).
    ``max_attempts`` is the deployment's budget (each job's own when None): a job whose
    attempts are spent is taken back once more, for its worker to settle what the lost
    attempt left without running it again (a send left ``sending`` is held for review);
    if that claim's lease runs out too, the job goes to the dead letter instead.
    """
    now = now or utc_now()
    taking = _Taking(
        session,
        worker=worker,
        now=now,
        lease_until=now + lease,
        rotation=rotation or Rotation(),
        budget=max_attempts,
    )
    found = waiting(session, now)
    if found.lease_expired:
        taken_back = taking.expired()
        if taken_back:
            return taken_back
    jobs = taking.unowned(limit) if found.unowned else []
    for lane in LANES:
        room = limit - len(jobs)
        if room <= 0:
            break
        jobs += taking.shared(lane, [store for _, store in found.stores[lane]], room)
    return sorted(jobs, key=lambda job: (job.due_at, job.id))


def shares(room: int, stores: int) -> list[int]:
    """``room`` split into ``stores`` parts as equal as can be, the larger ones first."""
    whole, extra = divmod(room, stores)
    return [whole + 1 if index < extra else whole for index in range(stores)]


@dataclass(frozen=True)
class Waiting:
    """What a claim finds due, without reading the backlog itself."""

    stores: dict[Lane, list[tuple[datetime, int]]]
    """Per lane, the stores with due work as ``(oldest due time, store)``, the longest
    waiting first."""
    unowned: bool
    """Whether any of the deployment's own jobs is due."""
    lease_expired: bool
    """Whether any job's lease ran out."""


def waiting(session: Session, now: datetime) -> Waiting:
    """The stores with due work, whether any of the deployment's own jobs is due and
    whether any lease ran out, in one read: so a claim with nothing else to take (nearly
    every one) costs two round trips, not three or four. The alerts
    watch reads it too (:mod:`parley.jobs.backlog`)."""
    statement = _due_work_statement(session)
    stores: dict[Lane, list[tuple[datetime, int]]] = {lane: [] for lane in LANES}
    unowned = lease_expired = False
    for row in session.execute(statement, {"now": now}).mappings():
        if row["overdue"] == _UNOWNED_DUE:
            unowned = True
            continue
        if row["overdue"] == _LEASE_EXPIRED:
            lease_expired = True
            continue
        for lane in LANES:
            oldest = row[lane.value]
            if oldest is not None and oldest <= now:
                stores[lane].append((oldest, row["id"]))
    return Waiting({lane: sorted(heads) for lane, heads in stores.items()}, unowned, lease_expired)


class _Taking:
    """The claim's statements, bound to one worker, one moment and one lease."""

    def __init__(
        self,
        session: Session,
        *,
        worker: str,
        now: datetime,
        lease_until: datetime,
        rotation: Rotation,
        budget: int | None,
    ) -> None:
        self.session = session
        self.worker = worker
        self.rotation = rotation
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.values = {
            "worker": worker,
            "now": now,
            "lease_until": lease_until,
            "budget": budget,
            "lost": LOST_LEASE,
        }

    def expired(self) -> list[ClaimedJob]:
        """The job whose lease ran out longest ago, or none if that one's attempts were
        spent (it goes to the dead letter instead)."""
        return self._take(_expired_statement(self.session), {})

    def unowned(self, room: int) -> list[ClaimedJob]:
        """The deployment's own due jobs, oldest first."""
        return self._take(_unowned_statement(self.session), {"room": room})

    def shared(self, lane: Lane, stores: list[int], room: int) -> list[ClaimedJob]:
        """Up to ``room`` due jobs of ``lane``, shared between ``stores`` (longest waiting
        first). What a store cannot use goes round again to the stores that filled their
        part, those with the fewest so far first, so that no two stores that still have
        due work end more than one job apart."""
        taken: list[ClaimedJob] = []
        so_far: Counter[int | None] = Counter()
        if len(stores) > room:
            stores = self.rotation.order(lane, stores, room)
        while stores and room > 0:
            turn, waiting = stores[:room], stores[room:]
            parts = shares(room, len(turn))
            got = self._parts(lane, turn, parts)
            taken += got
            room -= len(got)
            this_round = Counter(job.workspace_id for job in got)
            so_far += this_round
            filled = [
                store for store, part in zip(turn, parts, strict=True) if this_round[store] == part
            ]
            stores = sorted(filled + waiting, key=lambda store: so_far[store])
        return taken

    def _parts(self, lane: Lane, stores: list[int], parts: list[int]) -> list[ClaimedJob]:
        values: dict[str, Any]
        if self.postgres:
            values = {"lane": lane.value, "stores": stores, "parts": parts}
            return self._take(_every_store_statement(self.session), values)
        taken: list[ClaimedJob] = []
        for store, part in zip(stores, parts, strict=True):
            values = {"lane": lane.value, "store": store, "part": part}
            taken += self._take(_one_store_statement(self.session), values)
        return taken

    def _take(self, statement: Any, values: dict[str, Any]) -> list[ClaimedJob]:
        rows = self.session.execute(statement, {**self.values, **values}).all()
        for row in rows:
            if row.status == JobStatus.DEAD:
                log.error(
                    "job %s (%s) is dead: gave up after %s attempts: %s",
                    row.id,
                    row.kind,
                    row.attempts,
                    LOST_LEASE,
                )
        return [
            ClaimedJob(
                id=row.id,
                kind=row.kind,
                payload=row.payload,
                workspace_id=row.workspace_id,
                attempts=row.attempts,
                max_attempts=row.max_attempts,
                due_at=row.due_at,
                locked_by=self.worker,
            )
            for row in rows
            if row.status != JobStatus.DEAD
        ]


def _taking(dialect: str, chosen: str) -> Any:
    # On PostgreSQL as ``= ANY(ARRAY(...))``: the chosen ids are then an array the
    # planner sizes as a handful, looked up by primary key. As ``IN (...)``, a part whose
    # LIMIT is a column is planned at a tenth of the store's rows, and the update turned
    # into a hash join over a sequential scan of the whole table (400 ms a claim beside a
    # million waiting jobs).
    membership = "id = ANY(ARRAY({}))" if dialect == "postgresql" else "id IN ({})"
    return (
        text(_TAKE.format(chosen=membership.format(chosen), spent=_SPENT))
        .bindparams(
            bindparam("now", type_=UTCDateTime()),
            bindparam("lease_until", type_=UTCDateTime()),
            bindparam("budget", type_=Integer()),
            bindparam("lost", type_=String()),
        )
        .columns(
            Job.id,
            Job.kind,
            Job.payload,
            Job.workspace_id,
            Job.attempts,
            Job.max_attempts,
            Job.due_at,
            Job.status,
        )
    )


def _lock(dialect: str) -> str:
    return "FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""


def store_index(dialect: str) -> str:
    """SQLite, with no statistics, plans ``status = 'pending'`` on ``ix_jobs_due`` and
    reads every pending job of every store; the partial index has them by store."""
    return "" if dialect == "postgresql" else "INDEXED BY ix_jobs_pending_by_store"


@per_dialect
def _due_work_statement(dialect: str) -> Any:
    return (
        text(
            _DUE_WORK.format(
                store_index=store_index(dialect), unowned=_UNOWNED_DUE, expired=_LEASE_EXPIRED
            )
        )
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .columns(
            id=BigInteger(), overdue=Integer(), **{lane.value: UTCDateTime() for lane in LANES}
        )
    )


@per_dialect
def _unowned_statement(dialect: str) -> Any:
    return _taking(dialect, _UNOWNED.format(lock=_lock(dialect), store_index=store_index(dialect)))


@per_dialect
def _expired_statement(dialect: str) -> Any:
    return _taking(dialect, _EXPIRED.format(lock=_lock(dialect)))


@per_dialect
def _one_store_statement(dialect: str) -> Any:
    """SQLite's: one store's part (no row locks: the claim holds the one writer)."""
    return _taking(dialect, _ONE_STORE_PART)


@per_dialect
def _every_store_statement(dialect: str) -> Any:
    return _taking(dialect, _EVERY_STORE_PART).bindparams(
        bindparam("stores", type_=ARRAY(BigInteger())), bindparam("parts", type_=ARRAY(Integer()))
    )
