"""Ingest bench: signed Shopify webhooks/s through a real ``parley serve``, beside a baseline.

One server process (``bench/server.py``: parley's own ``serve`` command, embedded worker
off, plus the baseline route) and one load-generator process (``bench/loadgen.py``,
pinned to its own CPU) run these measurements, in this order, on a fresh database (1, 1b,
2, 2b and 2c are repeated in interleaved rounds, ``--rounds``, 3 by default, and the median of
each is reported beside every round's figure: on a shared 2-core machine one 8-second
run of the PostgreSQL baseline varied from 820 to 1,360/s between invocations):

1. baseline max throughput: ``POST /webhooks/bench-baseline/bench`` (HMAC + one durable row);
1b. the same baseline through parley's group commit (``bench-baseline-grouped``): what
   sharing commits alone buys, as parley's route shares them (reported, no goal);
2. parley max throughput: ``POST /webhooks/shopify/bench`` (HMAC, store the delivery, map
   it, customer + order upserts, event, journeys planned, job enqueued, commit);
2b. the same orders as canonical events through ``POST /api/v1/events`` (API key, no
   HMAC; reported, no goal);
2c. WhatsApp delivery receipts through ``POST /webhooks/whatsapp/bench``: the Cloud API's
   signed status webhook (built by parley's sandbox), one for each of as many WhatsApp
   messages the bench recorded as sent before the server started (verify, store the
   delivery, move the message to ``delivered``, commit). Receipts come two or three per
   message sent, the largest inbound volume a store has (reported, no goal);
3. parley at a fixed rate of half its measured throughput: p50/p99 latency;
4. the baseline at that same fixed rate: the latency ceiling.

Then the memory phase: a second ``parley serve``, this time with its embedded worker on
and the sandbox providers (the ``parley demo`` configuration), takes the same half-rate
load while its worker sends every message; its peak RSS (VmHWM) is read at the end.

Run: ``.venv/bin/python bench/ingest.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
from benchkit import PYTHON, Child, Row, Target

GOALS = {"sqlite": 3000.0, "postgres": 2000.0}
SHOPIFY_TIMEOUT_MS = 5000.0
"""Shopify waits this long for a webhook's answer before it counts a failure and retries."""
P99_GOAL_MS = 50.0
RSS_GOAL_MB = 300.0


class Seq:
    """Hands out order/shopper number ranges so no two deliveries of a run collide."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> int:
        start = self.next
        self.next += count + 1000
        return start


def loadgen(
    url: str,
    *,
    mode: str,
    seq: int,
    cpu: str | None,
    requests: int = 0,
    duration: float,
    rate: float = 0.0,
    connections: int,
    warmup: float,
    gen_procs: int,
    server_pid: int = 0,
    records: Path | None = None,
) -> dict[str, Any]:
    args = [
        PYTHON,
        str(benchkit.BENCH_DIR / "loadgen.py"),
        "--url",
        url,
        "--mode",
        mode,
        "--duration",
        str(duration),
        "--connections",
        str(connections),
        "--warmup",
        str(warmup),
        "--seq-start",
        str(seq),
        "--gen-procs",
        str(gen_procs),
    ]
    if mode == "max":
        args += ["--requests", str(requests)]
    else:
        args += ["--rate", f"{rate:.3f}"]
    if cpu:
        args += ["--cpu", cpu]
    args += ["--bench-root", str(os.getpid())]
    if server_pid:
        args += ["--watch-pid", str(server_pid)]
    if records is not None:
        args += ["--records", str(records)]
    child = Child(args, capture=True)
    out = child.communicate(timeout=duration + 300)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"load generator printed nothing (exit {child.proc.returncode})")
    return json.loads(lines[-1])


def start_server(
    url: str,
    workdir: Path,
    name: str,
    *,
    cpus: str | None,
    worker: bool,
    sandbox: bool,
    experiment: str = "",
    processes: int = 1,
) -> tuple[Child, int]:
    port = benchkit.free_port()
    env = {
        "PARLEY_DATABASE_URL": url,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_LOG_LEVEL": "warning",
        "PARLEY_SANDBOX": "1" if sandbox else "0",
        "PARLEY_SANDBOX_SMTP_PORT": str(benchkit.free_port()),
        "PARLEY_EMBEDDED_WORKER": "1" if worker else "0",
        "BENCH_EXPERIMENT": experiment,
        # The embedded worker sends as fast as it can, as before senders were paced.
        **{f"PARLEY_{name.upper()}": "0" for name in benchkit.paced_at(0)},
    }
    args = [PYTHON, str(benchkit.BENCH_DIR / "server.py"), "--worker" if worker else "--no-worker"]
    if processes > 1:
        args += ["--workers", str(processes)]
    server = Child(args, env=env, cpus=cpus, log=workdir / f"{name}.log")
    benchkit.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, child=server)
    return server, port


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix=f"parley-bench-ingest-{kind}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    target = Target(kind, workdir, pg_admin_url=opts.pg_url)
    server_cpus, loadgen_cpu = benchkit.default_cpus()
    if opts.server_cpus is not None:
        server_cpus = opts.server_cpus
    if opts.loadgen_cpu is not None:
        loadgen_cpu = opts.loadgen_cpu
    seq = Seq()
    common = {
        "cpu": loadgen_cpu,
        "warmup": opts.warmup,
        "gen_procs": opts.gen_procs,
    }
    result: dict[str, Any] = {"db": kind, "workdir": str(workdir)}
    try:
        url = target.fresh("ingest")
        # Receipts need sent messages to find, recorded before the server starts.
        receipts_per_round = opts.requests // 2
        benchkit.prepare_parley_db(
            url, baseline_table=True, sent_whatsapp=receipts_per_round * opts.rounds
        )
        receipts_next = 0
        server, port = start_server(
            url,
            workdir,
            "server-ingest",
            cpus=server_cpus,
            worker=False,
            sandbox=False,
            experiment=opts.experiment,
            processes=opts.server_processes,
        )
        common["server_pid"] = server.pid
        base = f"http://127.0.0.1:{port}"
        baseline_url = f"{base}/webhooks/bench-baseline/{benchkit.SLUG}"
        grouped_url = f"{base}/webhooks/bench-baseline-grouped/{benchkit.SLUG}"
        parley_url = f"{base}/webhooks/shopify/{benchkit.SLUG}"
        events_url = f"{base}/api/v1/events"
        receipts_url = base + benchkit.whatsapp_status_delivery(0)[0]

        def max_throughput(
            label: str, url: str, requests: int, first: int | None = None
        ) -> dict[str, Any]:
            log(f"[{kind}] {label}, max throughput ({opts.duration}s)")
            run = loadgen(
                url,
                mode="max",
                seq=seq.take(requests) if first is None else first,
                requests=requests,
                duration=opts.duration,
                connections=opts.connections,
                **common,
            )
            log(f"    {run['throughput']:.0f}/s  p99 {run['p99_ms']:.1f} ms")
            return run

        try:
            rounds: dict[str, list[dict[str, Any]]] = {
                "baseline": [],
                "grouped": [],
                "parley": [],
                "events": [],
                "receipts": [],
            }
            reference = {"rounds": benchkit.python_speed()}
            for number in range(opts.rounds):
                if opts.rounds > 1:
                    log(f"[{kind}] round {number + 1} of {opts.rounds}")
                b_run = max_throughput("baseline", baseline_url, opts.requests)
                rounds["baseline"].append(b_run)
                rounds["grouped"].append(
                    max_throughput(
                        "baseline through parley's group commit", grouped_url, opts.requests
                    )
                )
                if number == 0:
                    result["rss_after_baseline_kb"] = benchkit.proc_status(server.pid).get("VmHWM")
                # parley cannot outrun its ceiling by much: build only what it can use.
                p_requests = int(
                    min(opts.requests, b_run["throughput"] * opts.duration * 1.5 + 2000)
                )
                profile = (
                    Path(opts.profile) / f"ingest-{kind}-{number + 1}.txt" if opts.profile else None
                )
                with benchkit.py_spy(server.pid, profile, duration=opts.duration + 12):
                    rounds["parley"].append(max_throughput("parley", parley_url, p_requests))
                rounds["events"].append(
                    max_throughput("parley's events API", events_url, p_requests)
                )
                rounds["receipts"].append(
                    max_throughput(
                        "parley's WhatsApp receipts",
                        receipts_url,
                        min(p_requests, receipts_per_round),
                        first=receipts_next,
                    )
                )
                receipts_next += receipts_per_round
            b_max, g_max, p_max, e_max, r_max = (median_run(rounds[name]) for name in rounds)
            result["rounds"] = {
                name: [run["throughput"] for run in runs] for name, runs in rounds.items()
            }
            half = opts.half_rate or max(1.0, p_max["throughput"] / 2)
            reference["half"] = benchkit.python_speed()
            result["reference_ms"] = reference
            log(f"[{kind}] parley at half load ({half:.0f}/s for {opts.rate_duration}s)")
            p_half = loadgen(
                parley_url,
                mode="rate",
                seq=seq.take(int(half * opts.rate_duration) + 10),
                rate=half,
                duration=opts.rate_duration,
                connections=opts.rate_connections,
                **common,
            )
            log(f"    p50 {p_half['p50_ms']:.1f} ms  p99 {p_half['p99_ms']:.1f} ms")
            log(f"[{kind}] baseline at the same rate")
            b_half = loadgen(
                baseline_url,
                mode="rate",
                seq=seq.take(int(half * opts.rate_duration) + 10),
                rate=half,
                duration=opts.rate_duration,
                connections=opts.rate_connections,
                **common,
            )
            result["rss_ingest_server_kb"] = benchkit.proc_status(server.pid).get("VmHWM")
        finally:
            server.stop()
        result["stored_deliveries"] = benchkit.count_rows(
            url, "SELECT count(*) FROM webhook_deliveries"
        )
        result["jobs_enqueued"] = benchkit.count_rows(url, "SELECT count(*) FROM jobs")
        result["receipts_applied"] = benchkit.count_rows(
            url, "SELECT count(*) FROM messages WHERE status = 'delivered'"
        )
        result.update(
            baseline_max=b_max,
            grouped_baseline_max=g_max,
            parley_max=p_max,
            events_max=e_max,
            receipts_max=r_max,
            parley_half=p_half,
            baseline_half=b_half,
        )

        if opts.memory:
            result["memory"] = memory_phase(kind, target, workdir, half, seq, opts, common)
    finally:
        if not opts.keep:
            target.cleanup()
    result["rows"] = [row.as_dict() for row in rows_for(kind, result)]
    return result


def memory_phase(
    kind: str,
    target: Target,
    workdir: Path,
    rate: float,
    seq: Seq,
    opts: argparse.Namespace,
    common: dict[str, Any],
) -> dict[str, Any]:
    """``parley serve`` with its embedded worker and the sandbox, under the half-rate load."""
    url = target.fresh("memory")
    benchkit.prepare_parley_db(url)
    server, port = start_server(
        url, workdir, "server-memory", cpus=opts.server_cpus or None, worker=True, sandbox=True
    )
    out: dict[str, Any] = {"rate": rate}
    common = {**common, "server_pid": server.pid}
    try:
        log(f"[{kind}] memory: serve + embedded worker + sandbox at {rate:.0f}/s")
        load = loadgen(
            f"http://127.0.0.1:{port}/webhooks/shopify/{benchkit.SLUG}",
            mode="rate",
            seq=seq.take(int(rate * opts.memory_duration) + 10),
            rate=rate,
            duration=opts.memory_duration,
            connections=opts.rate_connections,
            **common,
        )
        out["load"] = load
        log(
            f"    {load['throughput']:.0f}/s answered, p50 {load['p50_ms']:.1f} ms, "
            f"p90 {load['p90_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms"
        )
        deadline = time.monotonic() + opts.drain_timeout
        while time.monotonic() < deadline:
            open_jobs = benchkit.count_rows(
                url, "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')"
            )
            if open_jobs == 0:
                break
            time.sleep(0.5)
        out["open_jobs_at_end"] = open_jobs
        out["status"] = benchkit.proc_status(server.pid)
        log(f"    VmHWM {out['status'].get('VmHWM', 0) / 1024:.0f} MB, open jobs {open_jobs}")
    finally:
        server.stop()
    out["messages_sent"] = benchkit.count_rows(
        url, "SELECT count(*) FROM messages WHERE status = 'sent'"
    )
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (the lower middle one of an even count): its
    latencies and CPU figures stay those of one real run."""
    ordered = sorted(runs, key=lambda run: run["throughput"])
    return ordered[(len(ordered) - 1) // 2]


def rounds_note(rounds: dict[str, list[float]] | None) -> str:
    """Every round's figures, and parley's ratio to the baseline of its own round."""
    if not rounds or len(rounds["parley"]) < 2:
        return ""
    pairs = zip(rounds["parley"], rounds["baseline"], strict=True)
    ratios = ", ".join(f"{p / b:.2f}x" if b else "n/a" for p, b in pairs)
    return (
        f"; median of {len(rounds['parley'])} interleaved rounds: parley "
        f"{', '.join(f'{v:,.0f}' for v in rounds['parley'])}/s, baseline "
        f"{', '.join(f'{v:,.0f}' for v in rounds['baseline'])}/s, grouped baseline "
        f"{', '.join(f'{v:,.0f}' for v in rounds['grouped'])}/s, events API "
        f"{', '.join(f'{v:,.0f}' for v in rounds.get('events', []))}/s; "
        f"per-round ratios {ratios}"
    )


def cpu_per_request(run: dict[str, Any]) -> float:
    """The server's CPU ms per answered request in one run."""
    if not run.get("throughput"):
        return math.nan
    return 10 * run.get("server_cpu_pct", math.nan) / run["throughput"]


def speed_note(reference: dict[str, list[float]] | None) -> str:
    """The machine's speed before the max-throughput rounds and before the half-load run:
    half of a rate measured on a faster moment is more than half on a slower one."""
    if not reference:
        return ""
    before, half = reference["rounds"][0], reference["half"][0]
    return (
        f"reference Python work {before:.1f} ms of CPU before the max-throughput rounds, "
        f"{half:.1f} ms before this run"
    )


def rows_for(kind: str, r: dict[str, Any]) -> list[Row]:
    b, p, ph, bh = r["baseline_max"], r["parley_max"], r["parley_half"], r["baseline_half"]
    goal = GOALS[kind]
    ratio = p["throughput"] / b["throughput"] if b["throughput"] else 0.0
    rows = [
        Row(
            "ingest webhooks/s (max)",
            p["throughput"],
            "/s",
            ceiling=b["throughput"],
            ceiling_label="baseline",
            goal=f">= 0.5x and >= {goal:,.0f}/s",
            passed=ratio >= 0.5 and p["throughput"] >= goal,
            note=(
                f"{p['ok']} ok / {p['measured']} measured, errors {p['errors'] or 'none'}; "
                f"server process CPU {p.get('server_cpu_pct', 0):.0f}% "
                f"(baseline run {b.get('server_cpu_pct', 0):.0f}%), "
                f"load generator CPU {p['loadgen_cpu_pct']:.0f}%"
                f"{rounds_note(r.get('rounds'))}"
            ),
        ),
        *_grouped_row(p, r.get("grouped_baseline_max")),
        *_events_row(r.get("events_max"), b),
        *_receipts_row(r.get("receipts_max"), b, r),
        Row(
            "ingest p50 at max load",
            p["p50_ms"],
            "ms",
            ceiling=b["p50_ms"],
            ceiling_label="baseline",
        ),
        Row(
            "ingest p99 at max load",
            p["p99_ms"],
            "ms",
            ceiling=b["p99_ms"],
            ceiling_label="baseline",
        ),
        Row(
            f"ingest p50 at half load ({ph['offered_rate']:.0f}/s)",
            ph["p50_ms"],
            "ms",
            ceiling=bh["p50_ms"],
            ceiling_label="baseline, same rate",
        ),
        Row(
            f"ingest p99 at half load ({ph['offered_rate']:.0f}/s)",
            ph["p99_ms"],
            "ms",
            ceiling=bh["p99_ms"],
            ceiling_label="baseline, same rate",
            goal=f"< {P99_GOAL_MS:.0f} ms",
            passed=ph["p99_ms"] < P99_GOAL_MS and not ph["errors"],
            note=(
                (
                    f"achieved {ph['throughput']:.0f}/s, errors {ph['errors'] or 'none'}; "
                    if ph["errors"] or ph["throughput"] < 0.95 * ph["offered_rate"]
                    else ""
                )
                + f"server CPU {cpu_per_request(ph):.2f} ms a webhook (max-throughput run "
                f"{cpu_per_request(p):.2f}: fuller group commits); "
                + speed_note(r.get("reference_ms"))
            ),
        ),
    ]
    memory = r.get("memory")
    if memory:
        hwm = memory["status"].get("VmHWM", 0) / 1024
        floor = (r.get("rss_after_baseline_kb") or 0) / 1024
        load = memory["load"]
        rows.append(
            Row(
                "peak RSS, serve + embedded worker",
                hwm,
                "MB",
                ceiling=floor or None,
                ceiling_label="same server, baseline load only",
                goal=f"< {RSS_GOAL_MB:.0f} MB",
                passed=hwm < RSS_GOAL_MB,
                note=(
                    f"{memory['messages_sent']} messages sent to the sandbox, "
                    f"{memory['open_jobs_at_end']} jobs still open"
                ),
            )
        )
        rows.append(
            Row(
                f"ingest p99 at half load, embedded worker sending ({memory['rate']:.0f}/s)",
                load["p99_ms"],
                "ms",
                ceiling=ph["p99_ms"],
                ceiling_label="worker off, same rate",
                goal=f"< {SHOPIFY_TIMEOUT_MS:,.0f} ms (Shopify's timeout), all answered",
                passed=load["p99_ms"] < SHOPIFY_TIMEOUT_MS
                and load["throughput"] >= 0.95 * memory["rate"],
                note=(
                    f"answered {load['throughput']:.0f}/s of {memory['rate']:.0f}/s; "
                    f"p50 {load['p50_ms']:.1f} ms, p90 {load['p90_ms']:.1f} ms; the sandbox's "
                    "provider stand-ins run in the same process"
                ),
            )
        )
    return rows


def _grouped_row(parley: dict[str, Any], grouped: dict[str, Any] | None) -> list[Row]:
    """parley beside a baseline that shares commits as parley's route does (no goal)."""
    if not grouped:
        return []
    return [
        Row(
            "ingest webhooks/s (max), beside a group-committed baseline",
            parley["throughput"],
            "/s",
            ceiling=grouped["throughput"],
            ceiling_label="baseline through parley's group commit",
            note=f"server process CPU {grouped.get('server_cpu_pct', 0):.0f}% in that baseline run",
        )
    ]


def _events_row(events: dict[str, Any] | None, baseline: dict[str, Any]) -> list[Row]:
    """The same orders as canonical events through ``POST /api/v1/events`` (no goal)."""
    if not events:
        return []
    return [
        Row(
            "ingest events/s (max), POST /api/v1/events",
            events["throughput"],
            "/s",
            ceiling=baseline["throughput"],
            ceiling_label="baseline",
            note=(
                f"the same orders as canonical events with an API key; "
                f"{events['ok']} ok / {events['measured']} measured, "
                f"errors {events['errors'] or 'none'}"
            ),
        )
    ]


def _receipts_row(
    receipts: dict[str, Any] | None, baseline: dict[str, Any], result: dict[str, Any]
) -> list[Row]:
    """WhatsApp status webhooks, each moving one sent message to delivered (no goal)."""
    if not receipts:
        return []
    rounds = result.get("rounds") or {}
    each = ", ".join(f"{v:,.0f}" for v in rounds.get("receipts", []))
    return [
        Row(
            "provider receipts/s (max), WhatsApp status webhooks",
            receipts["throughput"],
            "/s",
            ceiling=baseline["throughput"],
            ceiling_label="baseline",
            note=(
                f"{receipts['ok']} ok / {receipts['measured']} measured, "
                f"errors {receipts['errors'] or 'none'}; server process CPU "
                f"{receipts.get('server_cpu_pct', 0):.0f}%; "
                f"{result.get('receipts_applied', 0):,} messages moved to delivered in all"
                + (f"; rounds {each}/s" if len(rounds.get("receipts", [])) > 1 else "")
            ),
        )
    ]


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    phases = [
        "baseline_max",
        "grouped_baseline_max",
        "parley_max",
        "events_max",
        "receipts_max",
        "parley_half",
        "baseline_half",
    ]
    watches = [result[p].get("interference") for p in phases if p in result]
    if result.get("memory"):
        watches.append(result["memory"]["load"].get("interference"))
    footer = [line for line in (benchkit.interference_line(watches),) if line]
    title = f"ingest on {result['db']} ({result.get('machine', benchkit.machine_line())})"
    return benchkit.render_table(title, rows, footer)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley ingest bench")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per max-throughput run")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved max-throughput rounds (baseline, grouped, parley); medians reported",
    )
    p.add_argument("--rate-duration", type=float, default=8.0, help="seconds per fixed-rate run")
    p.add_argument("--memory-duration", type=float, default=10.0)
    p.add_argument("--drain-timeout", type=float, default=30.0, help="memory phase: wait for jobs")
    p.add_argument("--requests", type=int, default=40_000, help="max deliveries built per run")
    p.add_argument("--connections", type=int, default=64, help="max-throughput connections")
    p.add_argument("--rate-connections", type=int, default=128, help="fixed-rate connections")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds left out of each figure")
    p.add_argument("--gen-procs", type=int, default=2, help="processes building deliveries")
    p.add_argument(
        "--server-processes", type=int, default=1, help="parley serve --workers (default 1)"
    )
    p.add_argument("--server-cpus", default=None, help='pin the server, e.g. "0" (default: none)')
    p.add_argument("--loadgen-cpu", default=None, help="pin the generator (default: last CPU)")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument(
        "--half-rate",
        type=float,
        default=None,
        help="fixed rate for the half-load runs (default: half of parley's max), to compare "
        "two versions' latency at one rate",
    )
    p.add_argument("--profile", default=None, help="directory for py-spy collapsed stacks")
    p.add_argument(
        "--experiment",
        default="",
        help="what-if patch applied inside the bench server only (see server.py); "
        "not for the reported figures",
    )
    return p


def main() -> None:
    opts = parser().parse_args()
    if opts.server_cpus is None:
        opts.server_cpus = ""
    if opts.profile:
        Path(opts.profile).mkdir(parents=True, exist_ok=True)
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    main()
