"""Fairness bench: one store's flood of due jobs against another store's order updates.

RELIABILITY T7: "Tenant A enqueues a flood while tenant B's transactional latency stays
under the SLO". Two stores share one job table and one worker process, built with
``parley worker``'s own settings (``Runtime.worker_config``) and parley's ``Worker`` and
claims. Its one task stands for a send: it holds each job ``--provider-ms`` (a provider
answering in 20 ms) with the worker's concurrency, so a round takes as long as a round
of real sends does, and no more of parley than the claim and the settling is measured.

The steady store's order updates (transactional) fall due at ``--rate`` a second for
``--duration`` seconds, each enqueued as it falls due. Their latency is from due to done.
Phases, each on a fresh copy of the same database:

- alone: nothing else is queued. Its latency is the ceiling.
- bulk fulfilment: the flooding store has ``--flood`` transactional jobs that fell due
  before the phase began (older than every order update), the case a due-order queue
  serves last: there an update waits for the whole flood.
- broadcast: the same flood in the marketing lane.

The worker also runs the alerts watch (``parley.alerts.watch``) every ``--watch-seconds``
(once a second by default, 30 times as often as a deployment does), so its reading of
the waiting backlog shares the database with the claims as it would.

Reported: the order updates' p50/p95/p99 latency in each phase beside the ceiling, how
many were done, the flood's jobs/s while sharing, the claim's own time with the flood
waiting and without, and the watch's: how long one took, and which alerts it fired.

Run: ``.venv/bin/python bench/fairness.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit
from benchkit import Row, Target

GOAL_P95_S = 1.0
STEADY_KIND = "bench.order_update"
FLOOD_KIND = "bench.flood"
FLOOD_SLUG = "flood"
CHUNK = 10_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StandInSend:
    """A task that answers each job after ``seconds``, as a provider would."""

    def __init__(self, kind: str, seconds: float) -> None:
        self.kind = kind
        self.seconds = seconds

    def preload(self, session: Any, jobs: list[Any]) -> None:
        return None

    def prepare(self, session: Any, job: Any, batch: Any) -> int:
        return int(job.id)

    async def perform(self, work: int) -> None:
        await asyncio.sleep(self.seconds)

    def finish_batch(self, session: Any, items: list[Any]) -> list[Any]:
        from parley.jobs.worker import Done

        return [Done() for _ in items]


def prepare(url: str, *, flood: int, lane: str | None) -> tuple[int, int]:
    """Two stores; with ``lane``, ``flood`` jobs of the flooding store due an hour ago."""
    from sqlalchemy import select

    from parley.db import Database
    from parley.jobs import queue
    from parley.workspaces.models import Workspace
    from parley.workspaces.service import create_workspace

    benchkit.prepare_parley_db(url, history=0)
    db = Database(url)
    try:
        with db.transaction() as session:
            steady = session.scalar(select(Workspace.id).where(Workspace.slug == benchkit.SLUG))
            flooding = create_workspace(session, slug=FLOOD_SLUG, name="Flooding Store").id
        assert steady is not None
        if lane is not None:
            due = datetime.now(UTC) - timedelta(hours=1)
            for start in range(0, flood, CHUNK):
                with db.transaction() as session:
                    queue.enqueue_many(
                        session,
                        [
                            {
                                "kind": FLOOD_KIND,
                                "payload": {"n": n},
                                "workspace_id": flooding,
                                "lane": lane,
                                "due_at": due + timedelta(microseconds=n),
                            }
                            for n in range(start, min(start + CHUNK, flood))
                        ],
                    )
            if db.is_postgres:
                # As autovacuum would soon after such an insert; and the flood's pages
                # written out now, not by a checkpoint in the middle of the measurement.
                with db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                ) as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE jobs")
                    connection.exec_driver_sql("CHECKPOINT")
        return steady, flooding
    finally:
        db.dispose()


async def phase(url: str, steady: int, opts: argparse.Namespace) -> dict[str, Any]:
    """Run the worker while the steady store's updates fall due; measure them."""
    from parley.alerts.watch import WatchTask, watch_schedule
    from parley.db import Database
    from parley.jobs import queue
    from parley.jobs.worker import Worker
    from parley.runtime import Runtime, thresholds
    from parley.settings import get_settings

    # The flood's sends are what is measured: no hourly read of the sending domain's DNS.
    settings = get_settings(database_url=url, email_domain_check=False)
    db = Database(url)
    runtime = Runtime(settings=settings, db=db, adapters={})
    claim_seconds: list[float] = []
    watch_seconds: list[float] = []
    fired: set[str] = set()

    class TimedWatch(WatchTask):
        def prepare(self, session: Any, job: Any, batch: Any = None) -> Any:
            start = time.perf_counter()
            changes = super().prepare(session, job, batch)
            watch_seconds.append(time.perf_counter() - start)
            fired.update(change.name for change in changes if change.firing)
            return changes

    class TimedWorker(Worker):
        def _claim(self, limit: int | None = None) -> list[Any]:
            start = time.perf_counter()
            try:
                return super()._claim(limit)
            finally:
                claim_seconds.append(time.perf_counter() - start)

    seconds = opts.provider_ms / 1000
    worker = TimedWorker(
        db,
        [
            StandInSend(STEADY_KIND, seconds),
            StandInSend(FLOOD_KIND, seconds),
            TimedWatch(thresholds(settings), notify=False),
        ],
        runtime.worker_config(),
        name="bench-fairness",
        schedules=[watch_schedule(timedelta(seconds=opts.watch_seconds))],
    )

    def enqueue_one(n: int) -> None:
        with db.transaction() as session:
            queue.enqueue(
                session,
                kind=STEADY_KIND,
                payload={"n": n},
                workspace_id=steady,
                idempotency_key=f"update:{n}",
            )

    async def arrivals() -> None:
        count = int(opts.rate * opts.duration)
        start = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / opts.rate - time.monotonic()))
            await asyncio.to_thread(enqueue_one, n)
            worker.nudge()
        # The last update's due time plus a grace of its ceiling's worth to be done.
        await asyncio.sleep(opts.grace)
        worker.stop()

    running = asyncio.ensure_future(worker.run_forever())
    started = time.monotonic()
    await arrivals()
    await running
    elapsed = time.monotonic() - started
    try:
        measured = measure(db, steady, elapsed, claim_seconds, opts)
        return {
            **measured,
            "watches": len(watch_seconds),
            "watch_p50_ms": 1000 * benchkit.percentile(watch_seconds, 50),
            "watch_max_ms": 1000 * max(watch_seconds, default=0.0),
            "fired": sorted(fired),
        }
    finally:
        db.dispose()


def measure(
    db: Any, steady: int, elapsed: float, claim_seconds: list[float], opts: argparse.Namespace
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from parley.jobs.models import Job, JobStatus

    with db.transaction() as session:
        updates = session.execute(
            select(Job.status, Job.due_at, Job.updated_at).where(
                Job.workspace_id == steady, Job.kind == STEADY_KIND
            )
        ).all()
        flood_done = session.scalar(
            select(func.count()).where(Job.kind == FLOOD_KIND, Job.status == JobStatus.DONE)
        )
        flood_left = session.scalar(
            select(func.count()).where(Job.kind == FLOOD_KIND, Job.status == JobStatus.PENDING)
        )
    done = [row for row in updates if row.status == JobStatus.DONE]
    latency = [(row.updated_at - row.due_at).total_seconds() for row in done]
    # An update not done by the end waited at least the whole rest of the phase.
    latency += [float("inf")] * (len(updates) - len(done))
    return {
        "updates": len(updates),
        "updates_done": len(done),
        "p50_s": benchkit.percentile(latency, 50),
        "p95_s": benchkit.percentile(latency, 95),
        "p99_s": benchkit.percentile(latency, 99),
        "max_s": max(latency) if latency else None,
        "flood_done": flood_done or 0,
        "flood_left": flood_left or 0,
        "flood_per_s": (flood_done or 0) / elapsed,
        "claims": len(claim_seconds),
        "claim_p50_ms": 1000 * benchkit.percentile(claim_seconds, 50),
        "claim_p95_ms": 1000 * benchkit.percentile(claim_seconds, 95),
        "elapsed_s": elapsed,
    }


PHASES = (("alone", None), ("bulk fulfilment", "transactional"), ("broadcast", "marketing"))


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="parley-bench-"))
    target = Target(kind, workdir, pg_admin_url=opts.pg_url)
    result: dict[str, Any] = {
        "db": kind,
        "flood": opts.flood,
        "rate": opts.rate,
        "duration": opts.duration,
        "provider_ms": opts.provider_ms,
        "phases": {},
    }
    try:
        for name, lane in PHASES:
            url = target.fresh(f"fair_{lane or 'alone'}")
            t0 = time.monotonic()
            steady, _ = prepare(url, flood=opts.flood, lane=lane)
            log(f"{name}: prepared in {time.monotonic() - t0:.1f} s; running")
            result["phases"][name] = asyncio.run(phase(url, steady, opts))
            log(f"{name}: {result['phases'][name]}")
            if not opts.keep:
                target.cleanup()
        result["rows"] = [row.as_dict() for row in rows_for(result)]
        return result
    finally:
        if not opts.keep:
            target.cleanup()


def rows_for(r: dict[str, Any]) -> list[Row]:
    alone = r["phases"]["alone"]
    rows = [
        Row(
            "order updates' latency p95, nothing else queued",
            alone["p95_s"],
            "s",
            note=(
                f"{alone['updates_done']} of {alone['updates']} done; p50 "
                f"{alone['p50_s']:.3f} s, p99 {alone['p99_s']:.3f} s; claim p50 "
                f"{alone['claim_p50_ms']:.1f} ms over {alone['claims']} claims; "
                f"{_watched(alone)}"
            ),
        )
    ]
    for name, _ in PHASES[1:]:
        shared = r["phases"][name]
        rows.append(
            Row(
                f"order updates' latency p95, {r['flood']:,}-job {name} waiting",
                shared["p95_s"],
                "s",
                ceiling=alone["p95_s"],
                ceiling_label="nothing else queued",
                ratio=shared["p95_s"] / alone["p95_s"] if alone["p95_s"] else None,
                goal=f"< {GOAL_P95_S:.0f} s",
                passed=shared["p95_s"] < GOAL_P95_S and shared["updates_done"] == shared["updates"],
                note=(
                    f"{shared['updates_done']} of {shared['updates']} done; p50 "
                    f"{shared['p50_s']:.3f} s, p99 {shared['p99_s']:.3f} s, max "
                    f"{shared['max_s']:.3f} s; the flood meanwhile: {shared['flood_done']:,} "
                    f"done ({shared['flood_per_s']:,.0f}/s), {shared['flood_left']:,} left; "
                    f"claim p50 {shared['claim_p50_ms']:.1f} ms, p95 "
                    f"{shared['claim_p95_ms']:.1f} ms over {shared['claims']} claims; "
                    f"{_watched(shared)}"
                ),
            )
        )
    return rows


def _watched(phase: dict[str, Any]) -> str:
    fired = ", ".join(phase["fired"]) or "nothing"
    return (
        f"the alerts watch p50 {phase['watch_p50_ms']:.1f} ms, max "
        f"{phase['watch_max_ms']:.1f} ms over {phase['watches']} watches; it fired {fired}"
    )


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    return benchkit.render_table(
        f"fairness on {result['db']}: order updates at {result['rate']:.0f}/s for "
        f"{result['duration']:.0f} s beside another store's flood of {result['flood']:,} "
        f"due jobs; sends answered in {result['provider_ms']:.0f} ms",
        rows,
        [result.get("machine", "")],
    )


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley fairness bench")
    p.add_argument("--flood", type=int, default=200_000, help="the flooding store's due jobs")
    p.add_argument("--rate", type=float, default=50.0, help="order updates a second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of order updates")
    p.add_argument("--grace", type=float, default=2.0, help="seconds after the last update")
    p.add_argument("--provider-ms", type=float, default=20.0, help="a send's answer time")
    p.add_argument("--watch-seconds", type=int, default=1, help="how often the alerts watch runs")
    return p


def main() -> None:
    opts = parser().parse_args()
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    sys.exit(main())
