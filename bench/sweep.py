"""Sweep bench: webhook latency while the housekeeping sweep deletes a month of old rows.

A store that has run for a while has weeks of raw deliveries (about 5 KB each) and done
jobs past their retention when the sweep first runs, or after a deployment raised the
retention and lowered it again. The sweep deletes them a small batch to a transaction,
with a rest after each, so that webhooks keep their turn (on SQLite every transaction
holds the one writer). This bench checks that where it matters, in the latency of the
webhooks arriving meanwhile.

One database: the bench store's history (2,000 orders through the webhook path) and
``--rows`` more raw deliveries (a real ``orders/create`` body each) and as many done jobs,
all 30 days old. One ``parley serve`` (``bench/server.py``, embedded worker off) and the
load generator (``bench/loadgen.py``, its own CPU):
1. parley's webhook at ``--rate`` for ``--quiet-duration`` seconds, nothing else running:
   the ceiling;
2. the same rate for ``--duration`` seconds; ``--sweep-after`` seconds in, a process
   pinned to the server's CPUs runs parley's sweep (``parley.housekeeping.sweep``, what
   ``parley jobs sweep`` and every worker's periodic job run, with the default
   retention). The webhooks *due* while it ran are picked out by time (both processes
   read the machine's monotonic clock) and their p50/p99 reported against run 1.
Then the database is checked: every aged row gone, every delivery of the runs kept.
3. (unless ``--no-embedded``) on a second database filled the same way, ``parley serve``
   as deployed by default, its embedded worker on and sending through the sandbox: the
   worker sweeps the backlog it finds at start while the same load arrives; the sweep's
   end is seen by polling its jobs, and the same server at the same rate afterwards is
   the ceiling.

Run: ``.venv/bin/python bench/sweep.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit
from benchkit import PYTHON, Child, Row, Target
from ingest import Seq, loadgen, log, start_server

P99_GOAL_MS = 50.0
AGE = timedelta(days=30)
FILL_CHUNK = 5_000


def age_store(url: str, rows: int) -> None:
    """``rows`` raw deliveries and ``rows`` done jobs, ``AGE`` old, after the history."""
    from sqlalchemy import insert, select

    from parley.db import Database
    from parley.jobs.models import Job, JobStatus
    from parley.store_events.models import WebhookDelivery
    from parley.workspaces.models import Workspace

    body, headers = benchkit.order_delivery(0)
    text = body.decode()
    old = datetime.now(UTC) - AGE
    db = Database(url)
    try:
        with db.transaction() as session:
            workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == "bench"))
        for start in range(0, rows, FILL_CHUNK):
            numbers = range(start, min(rows, start + FILL_CHUNK))
            with db.transaction() as session:
                session.execute(
                    insert(WebhookDelivery),
                    [
                        {
                            "workspace_id": workspace_id,
                            "source": "shopify",
                            "delivery_key": f"aged-{n}",
                            "topic": "orders/create",
                            "headers": headers,
                            "body": text,
                            "status": "processed",
                            "received_at": old + timedelta(milliseconds=n),
                        }
                        for n in numbers
                    ],
                )
                session.execute(
                    insert(Job),
                    [
                        {
                            "workspace_id": workspace_id,
                            "kind": "journeys.advance",
                            "payload": {"run_id": n, "step": 0},
                            "idempotency_key": f"aged-{n}",
                            "status": JobStatus.DONE,
                            "due_at": old,
                            "attempts": 1,
                            "max_attempts": 8,
                            "lane": "transactional",
                            "created_at": old,
                            "updated_at": old,
                        }
                        for n in numbers
                    ],
                )
    finally:
        db.dispose()


def prepare(url: str, rows: int) -> None:
    """The bench store, its history dated ``AGE`` ago, then the aged rows."""
    from parley import clock

    clock.set_clock(lambda: datetime.now(UTC) - AGE - timedelta(days=1))
    try:
        benchkit.prepare_parley_db(url)
    finally:
        clock.reset_clock()
    age_store(url, rows)


def sweep_child(url: str) -> None:
    """Run parley's sweep once with the default retention; print its window as JSON."""
    from parley.db import Database
    from parley.housekeeping import Retention, sweep

    db = Database(url)
    started = time.perf_counter()
    cpu0 = time.process_time()
    swept = sweep(db, Retention())
    ended = time.perf_counter()
    cpu = time.process_time() - cpu0
    db.dispose()
    print(
        json.dumps(
            {
                "start": started,
                "end": ended,
                "cpu_seconds": cpu,
                "deliveries": swept.deliveries,
                "jobs": swept.jobs,
            }
        )
    )


def at_rate(
    url: str,
    opts: argparse.Namespace,
    seq: Seq,
    common: dict[str, Any],
    *,
    duration: float,
    **extra: Any,
) -> dict[str, Any]:
    """parley's webhook at ``--rate`` for ``duration`` seconds (``loadgen``'s options)."""
    return loadgen(
        url,
        mode="rate",
        seq=seq.take(int(opts.rate * duration) + 10),
        rate=opts.rate,
        duration=duration,
        **common,
        **extra,
    )


def in_background(
    url: str, opts: argparse.Namespace, seq: Seq, common: dict[str, Any], records: Path
) -> tuple[threading.Thread, dict[str, Any]]:
    """:func:`at_rate` for ``--duration`` on a thread; its figures land in the dict."""
    loaded: dict[str, Any] = {}

    def load() -> None:
        loaded.update(at_rate(url, opts, seq, common, duration=opts.duration, records=records))

    generator = threading.Thread(target=load)
    generator.start()
    return generator, loaded


def window_figures(records: list[list[float]], start: float, end: float) -> dict[str, Any]:
    """Latency of the requests due while the sweep ran."""
    inside = [(due, done, status) for due, done, status in records if start <= due <= end]
    ok_inside = [(done - due) * 1000 for due, done, status in inside if status == 200]
    return {
        "requests": len(inside),
        "ok": len(ok_inside),
        "p50_ms": benchkit.percentile(ok_inside, 50),
        "p99_ms": benchkit.percentile(ok_inside, 99),
        "max_ms": max(ok_inside) if ok_inside else None,
    }


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix=f"parley-bench-sweep-{kind}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    target = Target(kind, workdir, pg_admin_url=opts.pg_url)
    server_cpus, loadgen_cpu = benchkit.default_cpus()
    seq = Seq()
    common = {"cpu": loadgen_cpu, "warmup": 1.0, "gen_procs": 2, "connections": 128}
    result: dict[str, Any] = {"db": kind, "workdir": str(workdir), "rate": opts.rate}
    try:
        url = target.fresh("sweep")
        log(f"[{kind}] filling: history, then {opts.rows:,} aged deliveries and done jobs")
        t0 = time.monotonic()
        prepare(url, opts.rows)
        result["fill_seconds"] = time.monotonic() - t0
        result["aged_before"] = benchkit.count_rows(url, "SELECT count(*) FROM webhook_deliveries")
        server, port = start_server(
            url, workdir, "server-sweep", cpus=server_cpus, worker=False, sandbox=False
        )
        parley_url = f"http://127.0.0.1:{port}/webhooks/shopify/{benchkit.SLUG}"
        try:
            log(f"[{kind}] {opts.rate:.0f}/s for {opts.quiet_duration}s, nothing else running")
            result["quiet"] = at_rate(
                parley_url,
                opts,
                seq,
                common,
                duration=opts.quiet_duration,
                server_pid=server.pid,
            )
            quiet = result["quiet"]
            log(f"    p50 {quiet['p50_ms']:.1f} ms  p99 {quiet['p99_ms']:.1f} ms")
            log(f"[{kind}] {opts.rate:.0f}/s for {opts.duration}s, sweeping {opts.sweep_after}s in")
            records_path = workdir / "records.json"
            generator, loaded = in_background(parley_url, opts, seq, common, records_path)
            time.sleep(opts.sweep_after)
            sweeper = Child(
                [PYTHON, str(Path(__file__).resolve()), "--sweep-only", url],
                cpus=server_cpus,
                capture=True,
            )
            out = sweeper.communicate(timeout=600)
            generator.join(timeout=600)
            swept = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
            records = json.loads(records_path.read_text())
        finally:
            server.stop()
        result["swept"] = swept
        result["during"] = window_figures(records, swept["start"], swept["end"])
        result["last_due"] = max(due for due, _, _ in records)
        result["all"] = loaded
        log(
            f"    swept {swept['deliveries']:,} deliveries and {swept['jobs']:,} jobs in "
            f"{swept['end'] - swept['start']:.2f}s; during it p50 "
            f"{result['during']['p50_ms']:.1f} ms p99 {result['during']['p99_ms']:.1f} ms"
        )
        result["aged_left"] = benchkit.count_rows(
            url, "SELECT count(*) FROM webhook_deliveries WHERE delivery_key LIKE 'aged-%'"
        )
        result["aged_jobs_left"] = benchkit.count_rows(
            url, "SELECT count(*) FROM jobs WHERE idempotency_key LIKE 'aged-%'"
        )
        result["young_deliveries"] = benchkit.count_rows(
            url, "SELECT count(*) FROM webhook_deliveries"
        )
        result["accepted"] = sum(
            run["requests"] - sum(run["errors"].values()) for run in (result["quiet"], loaded)
        )
        if opts.embedded:
            result["embedded"] = embedded_phase(kind, target, workdir, opts, seq, common)
    finally:
        if not opts.keep:
            target.cleanup()
    result["rows"] = [row.as_dict() for row in rows_for(result)]
    return result


SWEEP_JOBS_LEFT = "SELECT count(*) FROM jobs WHERE kind = 'housekeeping.sweep' AND status <> 'done'"
SWEEP_JOBS = "SELECT count(*) FROM jobs WHERE kind = 'housekeeping.sweep'"


def embedded_phase(
    kind: str,
    target: Target,
    workdir: Path,
    opts: argparse.Namespace,
    seq: Seq,
    common: dict[str, Any],
) -> dict[str, Any]:
    """``parley serve`` as deployed by default: its embedded worker (sending every
    message through the sandbox) sweeps the backlog it finds at start, in its own process,
    while the webhooks arrive. The sweep's end is seen by polling its jobs; the ceiling
    is the same server at the same rate afterwards."""
    url = target.fresh("sweep_embedded")
    log(f"[{kind}] embedded worker: filling again, then serve + worker + sandbox")
    prepare(url, opts.rows)
    aged = benchkit.count_rows(url, "SELECT count(*) FROM webhook_deliveries")
    server_cpus, _ = benchkit.default_cpus()
    started = time.perf_counter()
    server, port = start_server(
        url, workdir, "server-sweep-embedded", cpus=server_cpus, worker=True, sandbox=True
    )
    parley_url = f"http://127.0.0.1:{port}/webhooks/shopify/{benchkit.SLUG}"
    records_path = workdir / "records-embedded.json"
    try:
        generator, _ = in_background(parley_url, opts, seq, common, records_path)
        ended = None
        deadline = time.monotonic() + 600
        while ended is None and time.monotonic() < deadline:
            time.sleep(0.1)
            if benchkit.count_rows(url, SWEEP_JOBS) and not benchkit.count_rows(
                url, SWEEP_JOBS_LEFT
            ):
                ended = time.perf_counter()
        generator.join(timeout=600)
        if ended is None:
            raise RuntimeError("the embedded worker's sweep did not finish in 10 minutes")
        log(f"[{kind}] the same server at {opts.rate:.0f}/s after the sweep")
        quiet = at_rate(
            parley_url, opts, seq, common, duration=opts.quiet_duration, server_pid=server.pid
        )
    finally:
        server.stop()
    records = json.loads(records_path.read_text())
    during = window_figures(records, started, ended)
    log(
        f"    swept in {ended - started:.1f}s from the server's start; webhooks due meanwhile "
        f"p50 {during['p50_ms']:.1f} ms p99 {during['p99_ms']:.1f} ms; after it p99 "
        f"{quiet['p99_ms']:.1f} ms"
    )
    return {
        "aged_before": aged,
        "seconds_from_start": ended - started,
        "during": during,
        "quiet": quiet,
        "aged_left": benchkit.count_rows(
            url, "SELECT count(*) FROM webhook_deliveries WHERE delivery_key LIKE 'aged-%'"
        ),
    }


def rows_for(r: dict[str, Any]) -> list[Row]:
    quiet, during, swept = r["quiet"], r["during"], r["swept"]
    seconds = swept["end"] - swept["start"]
    deleted = swept["deliveries"] + swept["jobs"]
    truncated = r["last_due"] < swept["end"]
    p99 = during["p99_ms"]
    rows = [
        Row(
            f"webhook p99 while the sweep runs ({r['rate']:.0f}/s)",
            p99,
            "ms",
            ceiling=quiet["p99_ms"],
            ceiling_label="same rate, no sweep",
            goal=f"< {P99_GOAL_MS:.0f} ms",
            passed=p99 < P99_GOAL_MS,
            note=(
                f"{during['ok']} of {during['requests']} webhooks due during the sweep "
                f"answered 200; p50 {during['p50_ms']:.1f} ms (no sweep "
                f"{quiet['p50_ms']:.1f}), max {during['max_ms']:.1f} ms"
                + ("; the load ended before the sweep did" if truncated else "")
            ),
        ),
        Row(
            "rows deleted by the sweep /s",
            deleted / seconds if seconds else None,
            "/s",
            note=(
                f"{swept['deliveries']:,} raw deliveries and {swept['jobs']:,} done jobs in "
                f"{seconds:.2f} s, {swept['cpu_seconds']:.2f} s of the sweeper's CPU"
            ),
        ),
        Row(
            "rows kept that should go, or gone that should stay",
            r["aged_left"] + r["aged_jobs_left"] + abs(r["young_deliveries"] - r["accepted"]),
            "",
            goal="0",
            passed=(
                r["aged_left"] == 0
                and r["aged_jobs_left"] == 0
                and r["young_deliveries"] == r["accepted"]
            ),
            note=(
                f"aged deliveries left {r['aged_left']}, aged jobs left {r['aged_jobs_left']}; "
                f"deliveries of the runs kept {r['young_deliveries']:,} of {r['accepted']:,} "
                "accepted"
            ),
        ),
    ]
    embedded = r.get("embedded")
    if embedded:
        inside = embedded["during"]
        rows.append(
            Row(
                "the same, swept by serve's embedded worker (+ sandbox sends)",
                inside["p99_ms"],
                "ms",
                ceiling=embedded["quiet"]["p99_ms"],
                ceiling_label="same server and rate, after the sweep",
                goal=f"< {P99_GOAL_MS:.0f} ms",
                passed=inside["p99_ms"] < P99_GOAL_MS and embedded["aged_left"] == 0,
                note=(
                    f"{inside['ok']} of {inside['requests']} webhooks due before the sweep "
                    f"ended answered 200; p50 {inside['p50_ms']:.1f} ms, max "
                    f"{inside['max_ms']:.1f} ms; {embedded['aged_before']:,} deliveries, "
                    f"swept {embedded['seconds_from_start']:.1f} s after the server started; "
                    f"aged deliveries left {embedded['aged_left']}"
                ),
            )
        )
    return rows


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    return benchkit.render_table(
        f"sweep on {result['db']}: {result['aged_before']:,} raw deliveries stored, "
        f"filled in {result['fill_seconds']:.0f} s",
        rows,
        [result.get("machine", "")],
    )


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley sweep bench")
    p.add_argument("--rows", type=int, default=20_000, help="aged deliveries (and done jobs)")
    p.add_argument("--rate", type=float, default=200.0, help="webhooks/s during both runs")
    p.add_argument("--quiet-duration", type=float, default=6.0)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the sweep run")
    p.add_argument("--sweep-after", type=float, default=3.0, help="seconds into that run")
    p.add_argument(
        "--no-embedded",
        dest="embedded",
        action="store_false",
        help="skip the run where serve's embedded worker sweeps",
    )
    p.add_argument("--sweep-only", default=None, help=argparse.SUPPRESS)
    return p


def main() -> None:
    opts = parser().parse_args()
    if opts.sweep_only:
        sweep_child(opts.sweep_only)
        return
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    sys.exit(main())
