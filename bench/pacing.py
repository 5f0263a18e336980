"""Pacing bench: a sender held to its allowance by workers that could send much faster.

DESIGN.md: "Sends are paced per sender to what the provider allows ..., with the backlog
held durably, not in memory". ``--orders`` order confirmations (one email each, all due
at once) are drained by ``--workers`` worker processes built as ``parley worker`` builds
them (``bench/dispatch_worker.py``: parley's Runtime, Worker and pacer, a no-op provider):

- unpaced: what the workers send when nothing holds them back, the ceiling;
- paced far above that (a million a second): every send takes its room, none waits, so
  the difference is the pace's own cost (goal: at least 90 % of unpaced; the median of
  ``--rounds`` interleaved rounds of these two);
- paced: the same backlog with every sender paced at ``--rate`` a second (a rested sender
  may send one second's worth at once, ``parley``'s default burst).

Reported, from the time each send was granted its room (its attempt's ``started_at``):

- the paced send rate after the first burst, beside the allowance (goal: at least 95 % of
  it: the pace wastes little of what the provider allows);
- the largest excess over the allowance in any window: sends granted in the window minus
  the allowance times its length (goal: at most one burst: never faster than allowed);
- claims per send: how often a job was claimed before its send went. A send that finds
  no room is booked for a later time and claimed again then (goal: under 2.5 on average:
  the backlog is not prepared again at every turn).

Run: ``.venv/bin/python bench/pacing.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchkit
import dispatch
from benchkit import Child, Row, Target

TEMPLATE = "pacing_tpl"
GOAL_RATE_SHARE = 0.95
GOAL_CLAIMS_PER_SEND = 2.5
GOAL_PACE_COST = 0.9
ABOVE = 1_000_000.0
"""An allowance no worker reaches: every send takes its room and none waits."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def preload(url: str, orders: int) -> int:
    """``orders`` orders taken in through parley's webhook handler: one confirmation each."""
    from parley.db import Database
    from parley.http.webhooks.shopify import receive

    db = Database(url)
    try:
        for i in range(orders):
            body, headers = benchkit.order_delivery(i, channel="email")
            answer = receive(db, benchkit.SLUG, benchkit.shopify_headers(headers), body)
            assert answer.get("status") == "accepted", answer
    finally:
        db.dispose()
    return benchkit.count_rows(url, "SELECT count(*) FROM jobs WHERE status = 'pending'")


def grant_times(url: str) -> list[float]:
    """Each send's grant, as epoch seconds, in order."""
    from sqlalchemy import text

    from parley.db import Database

    db = Database(url)
    try:
        with db.engine.connect() as connection:
            times = connection.execute(
                text("SELECT started_at FROM delivery_attempts ORDER BY started_at")
            ).scalars()
            return [_epoch(t) for t in times]
    finally:
        db.dispose()


def _epoch(value: datetime | str) -> float:
    """SQLite hands back its stored text (UTC, no zone); PostgreSQL an aware time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.timestamp()


def largest_excess(times: list[float], per_second: float) -> float:
    """max over windows [t_i, t_j] of (sends in it) - per_second * (t_j - t_i)."""
    best, lowest = 0.0, float("inf")
    for j, t in enumerate(times):
        lowest = min(lowest, j - per_second * t)
        best = max(best, (j + 1 - per_second * t) - lowest)
    return best


def busiest_second(times: list[float]) -> int:
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def phase(target: Target, name: str, pace: float, opts: argparse.Namespace) -> dict[str, Any]:
    url = target.clone(TEMPLATE, name)
    workdir = Path(opts.workdir_path)

    def wait_done(children: list[Child]) -> None:
        deadline = time.monotonic() + opts.deadline
        while time.monotonic() < deadline:
            time.sleep(0.25)
            left = benchkit.count_rows(
                url, "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')"
            )
            if left == 0:
                break
        for child in children:
            child.proc.send_signal(signal.SIGINT)  # the worker stops after its round

    run = dispatch.parley_workers(
        url,
        opts.workers,
        provider="noop",
        mode="serve",
        deadline=opts.deadline,
        workdir=workdir,
        label=name,
        cpus=opts.worker_cpus or None,
        stop_when=wait_done,
        pace=pace,
    )
    times = grant_times(url)
    claimed = sum(report["handled"] or 0 for report in run["reports"])
    out: dict[str, Any] = {
        "sent": len(times),
        "seconds": times[-1] - times[0] if len(times) > 1 else 0.0,
        "claims_per_send": claimed / len(times) if times else None,
        "busiest_second": busiest_second(times),
        "jobs": dispatch.tally(url)["jobs"],
        "interference": run["interference"],
    }
    burst = max(1.0, pace)  # one second's worth: parley's default PARLEY_SEND_BURST_SECONDS
    limiting = 0 < burst < len(times)
    # Paced below what the workers do, the rate after the first burst; else the whole run's.
    sent_after = len(times) - burst if limiting else len(times)
    out["rate"] = sent_after / out["seconds"] if out["seconds"] else 0.0
    if limiting:
        out["excess"] = largest_excess(times, pace)
        out["burst"] = burst
    log(
        f"    {name}: {out['sent']} sent in {out['seconds']:.2f}s = {out['rate']:.0f}/s, "
        f"busiest second {out['busiest_second']}, claims/send {out['claims_per_send']:.2f}"
        + (f", excess {out['excess']:.1f}" if limiting else "")
    )
    return out


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix=f"parley-bench-pacing-{kind}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    opts.workdir_path = str(workdir)
    target = Target(kind, workdir, pg_admin_url=opts.pg_url)
    result: dict[str, Any] = {"db": kind, "workdir": str(workdir), "rate": opts.rate}
    try:
        tpl = target.fresh(TEMPLATE)
        benchkit.prepare_parley_db(tpl)
        log(f"[{kind}] preload: {opts.orders} orders through parley's webhook handler")
        result["jobs"] = preload(tpl, opts.orders)
        # A drain of a few thousand sends lasts a second or two: the cost of the pace is
        # the median of interleaved rounds, each phase on a fresh copy of the backlog.
        rounds: dict[str, list[dict[str, Any]]] = {"unpaced": [], "above": []}
        for n in range(opts.rounds):
            log(f"[{kind}] round {n + 1}: {opts.workers} workers, senders unpaced")
            rounds["unpaced"].append(phase(target, f"pacing_unpaced{n}", 0.0, opts))
            log(f"[{kind}] round {n + 1}: every sender paced at {ABOVE:g}/s")
            rounds["above"].append(phase(target, f"pacing_above{n}", ABOVE, opts))
        for name, runs in rounds.items():
            result[name] = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]
            result[name]["rounds"] = [r["rate"] for r in runs]
        log(f"[{kind}] {opts.workers} workers, every sender paced at {opts.rate:g}/s")
        result["paced"] = phase(target, "pacing_paced", opts.rate, opts)
        result["rows"] = [row.as_dict() for row in rows_for(result)]
    finally:
        if not opts.keep:
            target.cleanup()
    return result


def rows_for(r: dict[str, Any]) -> list[Row]:
    unpaced, above, paced, rate = r["unpaced"], r["above"], r["paced"], r["rate"]
    return [
        Row(
            "sends/s, paced far above what the workers do",
            above["rate"],
            "/s",
            ceiling=unpaced["rate"],
            ceiling_label="senders unpaced",
            goal=f">= {GOAL_PACE_COST:.0%} of it",
            passed=above["rate"] >= GOAL_PACE_COST * unpaced["rate"],
            note=(
                f"median of {len(above['rounds'])} rounds: "
                + " · ".join(f"{x:,.0f}" for x in above["rounds"])
                + " (unpaced "
                + " · ".join(f"{x:,.0f}" for x in unpaced["rounds"])
                + "); every send takes its room"
            ),
        ),
        Row(
            "sends/s, paced, after the first burst",
            paced["rate"],
            "/s",
            ceiling=rate,
            ceiling_label="the sender's allowance",
            goal=f">= {GOAL_RATE_SHARE:.0%} of it",
            passed=paced["rate"] >= GOAL_RATE_SHARE * rate,
            note=f"{paced['sent']} sent in {paced['seconds']:.1f}s",
        ),
        Row(
            "largest excess over the allowance, any window",
            paced["excess"],
            "sends",
            ceiling=paced["burst"],
            ceiling_label="one burst",
            goal="<= one burst",
            passed=paced["excess"] <= paced["burst"] + 0.01,
            note=f"busiest second {paced['busiest_second']} (unpaced {unpaced['busiest_second']})",
        ),
        Row(
            "claims per send, paced",
            paced["claims_per_send"],
            "",
            ceiling=unpaced["claims_per_send"],
            ceiling_label="unpaced",
            goal=f"< {GOAL_CLAIMS_PER_SEND}",
            passed=paced["claims_per_send"] < GOAL_CLAIMS_PER_SEND,
            note="a send with no room is booked, then claimed once more",
        ),
    ]


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    watches = [result[p].get("interference") for p in ("unpaced", "above", "paced")]
    footer = [line for line in (benchkit.interference_line(watches),) if line]
    title = f"pacing on {result['db']} ({result.get('machine', benchkit.machine_line())})"
    return benchkit.render_table(title, rows, footer)


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley pacing bench")
    p.add_argument("--orders", type=int, default=4000, help="order confirmations to send")
    p.add_argument("--rate", type=float, default=400.0, help="the sender's allowance a second")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--rounds", type=int, default=3, help="interleaved unpaced/above rounds")
    p.add_argument("--deadline", type=float, default=120.0, help="cap per phase, seconds")
    p.add_argument("--worker-cpus", default="", help="pin workers (default: none)")
    return p


def main() -> None:
    opts = parser().parse_args()
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    main()
