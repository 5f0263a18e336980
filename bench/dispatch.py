"""Dispatch bench: due jobs -> claimed -> policy -> rendered -> provider -> status stored.

Preload: ``--orders`` signed ``orders/create`` deliveries go through parley's own
``receive`` (the webhook handler's transaction) with no worker running; every second
order is also shipped (``fulfillments/create``), to a shopper who consented to SMS or to
WhatsApp. Each delivery starts a journey run and commits one due ``journeys.advance``
job, so the queue holds orders x 1.5 jobs: order confirmations by email, dispatch notices
by SMS and by WhatsApp. That database is the template every phase starts from (a
PostgreSQL ``CREATE DATABASE ... TEMPLATE``, a SQLite backup), so each phase drains the
very same jobs.

Phases, each a separate worker process built by ``parley.runtime.Runtime.worker``:

- no-op provider, 1 process, then 2 processes (``run_until_idle``): msgs/s;
- the sandbox: ``parley serve --no-worker`` with ``PARLEY_SANDBOX=1`` is the provider host
  and the worker uses parley's real adapters pointed at it: msgs/s; its ceiling is the
  same adapters sending the same messages with no database work at all;
- lateness: jobs re-dated to fall due evenly over ``--lateness-seconds`` while a worker
  (sandbox adapters) runs; lateness = ``messages.sent_at - jobs.due_at``;
- PgQueuer, the ceiling (on PostgreSQL, also for the SQLite table): the same number of
  no-op jobs drained by PgQueuer's worker with its default batch settings, in 1 and 2
  processes, and its lateness for the same spread of due times.

Run: ``.venv/bin/python bench/dispatch.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit
from benchkit import PYTHON, Child, Row, Target

GOAL_PGQ_RATIO = 1.0
GOAL_SANDBOX = 3000.0
GOAL_LATENESS_S = 1.0
GOAL_SCALING = 1.7
TEMPLATE = "dispatch_tpl"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- preload


def channel_of(i: int) -> str | None:
    """Which shipped channel order ``i`` gets: every other order ships (SMS / WhatsApp)."""
    return {1: "sms", 3: "whatsapp"}.get(i % 4)


def preload(url: str, orders: int, *, threads: int) -> dict[str, Any]:
    """Take ``orders`` orders (and their fulfilments) in through parley's webhook handler."""
    from sqlalchemy import select

    from parley.customers import service as customers
    from parley.customers.models import Customer
    from parley.db import Database
    from parley.http.webhooks.shopify import receive
    from parley.messaging.types import Purpose
    from parley.workspaces.models import Workspace

    db = Database(url)
    errors: list[str] = []

    def work(worker_index: int) -> None:
        for i in range(worker_index, orders, threads):
            channel = channel_of(i)
            deliveries = [benchkit.order_delivery(i, channel=channel or "email")]
            if channel:
                deliveries.append(benchkit.fulfillment_delivery(i, channel=channel))
            for body, headers in deliveries:
                answer = receive(db, benchkit.SLUG, benchkit.shopify_headers(headers), body)
                if answer.get("status") != "accepted":
                    errors.append(str(answer))

    t0 = time.monotonic()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.monotonic() - t0
    # WhatsApp needs a recorded opt-in (Shopify payloads carry none): record it, as the
    # demo seed does, for the shoppers meant to be reached there.
    whatsapp = [f"shopper{i}@bench.example" for i in range(orders) if channel_of(i) == "whatsapp"]
    with db.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == benchkit.SLUG))
        assert workspace is not None
        ids = session.scalars(
            select(Customer.id).where(
                Customer.workspace_id == workspace.id, Customer.email.in_(whatsapp)
            )
        ).all()
        for customer_id in ids:
            customers.record_consent(
                session,
                workspace_id=workspace.id,
                customer_id=customer_id,
                channel="whatsapp",
                purpose=Purpose.TRANSACTIONAL,
                is_granted=True,
                source="bench: opt-in at checkout",
            )
    db.dispose()
    jobs = benchkit.count_rows(url, "SELECT count(*) FROM jobs WHERE status = 'pending'")
    return {"orders": orders, "jobs": jobs, "seconds": seconds, "errors": errors[:5]}


# --------------------------------------------------------------------------- helpers


def tally(url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from parley.db import Database

    db = Database(url)
    try:
        with db.engine.connect() as connection:
            messages = connection.execute(
                text("SELECT channel, status, count(*) FROM messages GROUP BY channel, status")
            ).all()
            jobs = connection.execute(
                text("SELECT status, count(*) FROM jobs GROUP BY status")
            ).all()
    finally:
        db.dispose()
    return {
        "messages": {f"{c}:{s}": n for c, s, n in messages},
        "jobs": dict(jobs),
        "sent": sum(n for _, s, n in messages if s == "sent"),
    }


class SpyRecorder:
    """py-spy on a child (CPU and idle stacks); it stops by itself when the child exits."""

    def __init__(self, pid: int, out: Path, *, deadline: float) -> None:
        self.procs = [
            benchkit.start_py_spy(pid, out, duration=deadline),
            benchkit.start_py_spy(
                pid, out.with_name(f"{out.stem}-idle{out.suffix}"), duration=deadline, idle=True
            ),
        ]

    def finish(self) -> None:
        benchkit.finish_py_spy(self.procs, timeout=30)


def parley_workers(
    url: str,
    n: int,
    *,
    provider: str,
    mode: str = "drain",
    sandbox: tuple[int, int] | None = None,
    deadline: float,
    workdir: Path,
    label: str,
    cpus: str | None,
    profile: Path | None = None,
    stop_when: Any = None,
    pace: float = 0.0,
) -> dict[str, Any]:
    """Start ``n`` worker processes together; collect their JSON reports. ``pace``: what
    every sender takes a second (0: not paced)."""
    start_at = time.time() + 3.0
    children = []
    for i in range(n):
        args = [
            PYTHON,
            str(benchkit.BENCH_DIR / "dispatch_worker.py"),
            "--db-url",
            url,
            "--mode",
            mode,
            "--provider",
            provider,
            "--start-at",
            f"{start_at:.3f}",
            "--deadline",
            str(deadline),
            "--name",
            f"{label}-{i}",
            "--pace",
            str(pace),
        ]
        if sandbox:
            args += ["--sandbox-port", str(sandbox[0]), "--sandbox-smtp-port", str(sandbox[1])]
        children.append(
            Child(args, capture=True, cpus=cpus, log=workdir / f"worker-{label}-{i}.log")
        )
    time.sleep(max(0.0, start_at - time.time()))
    spy = SpyRecorder(children[0].pid, profile, deadline=deadline) if profile else None
    watch = benchkit.CpuWatch()
    if stop_when is not None:
        stop_when(children)
    reports = []
    for child in children:
        out = child.communicate(timeout=deadline + 60)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"worker {label} printed nothing:\n{child.tail()}")
        reports.append(json.loads(lines[-1]))
        child.stop()
    interference = watch.stop()
    if spy:
        spy.finish()
    t0 = min(r["t0"] for r in reports)
    t1 = max(r["t1"] for r in reports)
    return {
        "reports": reports,
        "seconds": t1 - t0,
        "t0": t0,
        "t1": t1,
        "interference": interference,
    }


def pgq(mode: str, dsn: str, *, cpus: str | None = None, **kw: Any) -> dict[str, Any]:
    args = [PYTHON, str(benchkit.BENCH_DIR / "pgq_child.py"), mode, "--dsn", dsn]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    child = Child(args, capture=True, cpus=cpus)
    out = child.communicate(timeout=float(kw.get("deadline", 120)) + 60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"pgq {mode} printed nothing (exit {child.proc.returncode})")
    return json.loads(lines[-1])


def pgq_drain(dsn: str, n_jobs: int, procs: int, *, cpus: str | None, deadline: float) -> dict:
    pgq("enqueue", dsn, count=n_jobs)
    start_at = time.time() + 2.0
    script = str(benchkit.BENCH_DIR / "pgq_child.py")
    args = [
        [
            PYTHON,
            script,
            "drain",
            "--dsn",
            dsn,
            "--start-at",
            f"{start_at:.3f}",
            "--deadline",
            str(deadline),
        ]
        for _ in range(procs)
    ]
    children = [Child(a, capture=True, cpus=cpus) for a in args]
    time.sleep(max(0.0, start_at - time.time()))
    watch = benchkit.CpuWatch()
    reports = []
    for child in children:
        out = child.communicate(timeout=deadline + 60)
        reports.append(json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]))
    interference = watch.stop()
    # From the first start to the last job run: PgQueuer's shutdown (a ~4 s wait for its
    # status-log buffer to flush) is left out, which favours the ceiling.
    t0 = min(r["t0"] for r in reports)
    t1 = max(r["last_job"] or r["t1"] for r in reports)
    handled = sum(r["handled"] for r in reports)
    return {
        "handled": handled,
        "seconds": t1 - t0,
        "rate": handled / (t1 - t0),
        "reports": reports,
        "interference": interference,
    }


# --------------------------------------------------------------------------- phases


def drain_phase(
    target: Target,
    name: str,
    procs: int,
    provider: str,
    opts: argparse.Namespace,
    workdir: Path,
    *,
    sandbox: tuple[int, int] | None = None,
    profile: Path | None = None,
    limit: int = 0,
) -> dict[str, Any]:
    url = target.clone(TEMPLATE, name)
    if limit:
        keep_first(url, limit)
    run = parley_workers(
        url,
        procs,
        provider=provider,
        sandbox=sandbox,
        deadline=opts.deadline,
        workdir=workdir,
        label=name,
        cpus=opts.worker_cpus or None,
        profile=profile,
    )
    counts = tally(url)
    run.update(counts)
    run["rate"] = counts["sent"] / run["seconds"] if run["seconds"] else 0.0
    run["url"] = url
    log(
        f"    {procs} proc, {provider}: {counts['sent']} sent in {run['seconds']:.1f}s "
        f"= {run['rate']:.0f} msgs/s  jobs {counts['jobs']}"
    )
    return run


def keep_first(url: str, count_jobs: int) -> None:
    """Leave the first ``count_jobs`` pending jobs due; park the rest (status cancelled)."""
    from sqlalchemy import select, update

    from parley.db import Database
    from parley.jobs.models import Job

    db = Database(url)
    try:
        with db.transaction() as session:
            ids = session.scalars(
                select(Job.id).where(Job.status == "pending").order_by(Job.id)
            ).all()
            rest = ids[count_jobs:]
            if rest:
                session.execute(update(Job).where(Job.id.in_(rest)).values(status="cancelled"))
    finally:
        db.dispose()


def respread(url: str, *, count_jobs: int, seconds: float, lead: float) -> float:
    """Make ``count_jobs`` jobs fall due evenly over ``seconds`` from ``lead`` s from now;
    park the rest (status cancelled). Returns the first due time (epoch)."""
    from sqlalchemy import bindparam, select, update

    from parley.db import Database
    from parley.jobs.models import Job

    db = Database(url)
    first = datetime.now(UTC) + timedelta(seconds=lead)
    step = seconds / max(count_jobs, 1)
    try:
        with db.transaction() as session:
            ids = session.scalars(
                select(Job.id).where(Job.status == "pending").order_by(Job.id)
            ).all()
            chosen, rest = ids[:count_jobs], ids[count_jobs:]
            session.connection().execute(
                update(Job.__table__)
                .where(Job.__table__.c.id == bindparam("job_id"))
                .values(due_at=bindparam("due")),
                [
                    {"job_id": job_id, "due": first + timedelta(seconds=k * step)}
                    for k, job_id in enumerate(chosen)
                ],
            )
            if rest:
                session.execute(update(Job).where(Job.id.in_(rest)).values(status="cancelled"))
    finally:
        db.dispose()
    return first.timestamp()


def lateness_of(url: str) -> list[float]:
    """sent_at - due_at, per message, joined through the journey job's run id (the
    worker's own periodic jobs, such as the housekeeping sweep, have none)."""
    from sqlalchemy import select

    from parley.db import Database
    from parley.jobs.models import Job
    from parley.journeys.service import ADVANCE
    from parley.messaging.models import Message

    db = Database(url)
    try:
        with db.transaction() as session:
            due = {
                int(job.payload["run_id"]): job.due_at
                for job in session.scalars(
                    select(Job).where(Job.kind == ADVANCE, Job.status != "cancelled")
                )
            }
            rows = session.execute(
                select(Message.journey_run_id, Message.sent_at).where(Message.status == "sent")
            ).all()
    finally:
        db.dispose()
    return [
        (sent_at - due[run_id]).total_seconds()
        for run_id, sent_at in rows
        if run_id in due and sent_at is not None
    ]


def lateness_phase(
    target: Target,
    rate: float,
    opts: argparse.Namespace,
    workdir: Path,
    sandbox: tuple[int, int],
    available: int,
) -> dict[str, Any]:
    url = target.clone(TEMPLATE, "dispatch_late")
    n = max(10, min(available, int(rate * opts.lateness_seconds)))
    seconds = n / rate
    lead = 5.0  # the worker starts ~3 s from now; the first job falls due after that
    respread(url, count_jobs=n, seconds=seconds, lead=lead)
    log(f"    {n} jobs due over {seconds:.1f}s ({rate:.0f}/s)")

    def wait_done(children: list[Child]) -> None:
        deadline = time.monotonic() + lead + seconds + opts.deadline
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if (
                benchkit.count_rows(
                    url, "SELECT count(*) FROM jobs WHERE status IN ('pending','running')"
                )
                == 0
            ):
                break
        for child in children:
            child.proc.send_signal(signal.SIGINT)  # the worker stops after its round

    run = parley_workers(
        url,
        1,
        provider="sandbox",
        mode="serve",
        sandbox=sandbox,
        deadline=lead + seconds + opts.deadline,
        workdir=workdir,
        label="late",
        cpus=opts.worker_cpus or None,
        stop_when=wait_done,
    )
    late = lateness_of(url)
    out = {
        "jobs": n,
        "rate": rate,
        "sent": len(late),
        "p50_s": benchkit.percentile(late, 50),
        "p99_s": benchkit.percentile(late, 99),
        "max_s": max(late) if late else None,
        "run": run,
    }
    log(f"    lateness p50 {out['p50_s']:.3f}s p99 {out['p99_s']:.3f}s ({len(late)} sent)")
    return out


def start_sandbox(workdir: Path, cpus: str | None) -> tuple[Child, int, int]:
    port, smtp_port = benchkit.free_port(), benchkit.free_port()
    env = {
        "PARLEY_DATABASE_URL": f"sqlite:///{workdir}/sandbox-host.db",
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_SANDBOX": "1",
        "PARLEY_SANDBOX_SMTP_PORT": str(smtp_port),
        "PARLEY_LOG_LEVEL": "warning",
    }
    server = Child(
        [str(Path(PYTHON).parent / "parley"), "serve", "--no-worker"],
        env=env,
        cpus=cpus,
        log=workdir / "sandbox-host.log",
    )
    benchkit.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, child=server)
    return server, port, smtp_port


def blast(
    url: str, sandbox: tuple[int, int], opts: argparse.Namespace, channel: str = ""
) -> dict[str, Any]:
    """The sandbox ceiling: parley's adapters send stored messages, no database work."""
    args = [
        PYTHON,
        str(benchkit.BENCH_DIR / "dispatch_worker.py"),
        "--db-url",
        url,
        "--mode",
        "blast",
        "--sandbox-port",
        str(sandbox[0]),
        "--sandbox-smtp-port",
        str(sandbox[1]),
    ]
    if channel:
        args += ["--channel", channel, "--limit", str(opts.blast_per_channel)]
    child = Child(args, capture=True, cpus=opts.worker_cpus or None)
    watch = benchkit.CpuWatch()
    out = child.communicate(timeout=opts.deadline + 60)
    report = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    report["interference"] = watch.stop()
    report["rate"] = report["handled"] / (report["t1"] - report["t0"])
    report["cpu_pct"] = 100 * report["cpu_seconds"] / (report["t1"] - report["t0"])
    log(
        f"    adapters alone -> sandbox{' (' + channel + ')' if channel else ''}: "
        f"{report['rate']:.0f} msgs/s, adapter process CPU {report['cpu_pct']:.0f}%, "
        f"errors {report['errors'] or 'none'}"
    )
    return report


# --------------------------------------------------------------------------- main


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix=f"parley-bench-dispatch-{kind}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    target = Target(kind, workdir, pg_admin_url=opts.pg_url)
    pg_target = Target("postgres", workdir, pg_admin_url=opts.pg_url)
    profile_dir = Path(opts.profile) if opts.profile else None
    result: dict[str, Any] = {"db": kind, "workdir": str(workdir)}
    sandbox_server = None
    try:
        tpl = target.fresh(TEMPLATE)
        benchkit.prepare_parley_db(tpl)
        threads = 1 if kind == "sqlite" else opts.preload_threads
        log(f"[{kind}] preload: {opts.orders} orders through parley's webhook handler")
        result["preload"] = pre = preload(tpl, opts.orders, threads=threads)
        log(f"    {pre['jobs']} due jobs in {pre['seconds']:.1f}s  errors {pre['errors']}")

        log(f"[{kind}] parley worker, no-op provider")
        result["noop_1"] = drain_phase(
            target,
            "dispatch_noop1",
            1,
            "noop",
            opts,
            workdir,
            profile=profile_dir / f"dispatch-noop-{kind}.txt" if profile_dir else None,
        )
        result["noop_2"] = drain_phase(target, "dispatch_noop2", 2, "noop", opts, workdir)

        log(f"[{kind}] parley worker, sandbox providers (parley serve --no-worker, sandbox on)")
        sandbox_server, port, smtp_port = start_sandbox(workdir, opts.sandbox_cpus or None)
        sandbox = (port, smtp_port)
        result["sandbox_1"] = drain_phase(
            target,
            "dispatch_sandbox1",
            1,
            "sandbox",
            opts,
            workdir,
            sandbox=sandbox,
            profile=profile_dir / f"dispatch-sandbox-{kind}.txt" if profile_dir else None,
            limit=opts.sandbox_jobs,
        )
        host_spy = (
            SpyRecorder(sandbox_server.pid, profile_dir / f"sandbox-host-{kind}.txt", deadline=30)
            if profile_dir
            else None
        )
        result["blast"] = blast(result["sandbox_1"]["url"], sandbox, opts)
        result["blast_by_channel"] = {
            channel: blast(result["sandbox_1"]["url"], sandbox, opts, channel)
            for channel in ("email", "sms", "whatsapp")
        }
        if host_spy:
            for proc in host_spy.procs:
                proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
            host_spy.finish()

        log(f"[{kind}] lateness: jobs falling due while a worker (sandbox providers) runs")
        late_rate = max(5.0, opts.lateness_load * result["sandbox_1"]["rate"])
        result["lateness"] = lateness_phase(
            target, late_rate, opts, workdir, sandbox, available=pre["jobs"]
        )
        sandbox_server.stop()
        sandbox_server = None

        if opts.pgqueuer:
            log("[postgres] PgQueuer: no-op jobs, default batch settings")
            dsn = pg_target.fresh("pgqueuer").replace("postgresql+psycopg://", "postgresql://")
            pgq("install", dsn)
            # Enough jobs for a drain of several seconds: PgQueuer empties parley's few
            # thousand in well under a second, too short to time against start-up.
            n_jobs = max(pre["jobs"], opts.pgq_jobs)
            one = pgq_drain(dsn, n_jobs, 1, cpus=opts.worker_cpus or None, deadline=opts.deadline)
            log(f"    1 proc: {one['rate']:.0f} jobs/s")
            two = pgq_drain(dsn, n_jobs, 2, cpus=opts.worker_cpus or None, deadline=opts.deadline)
            log(f"    2 procs: {two['rate']:.0f} jobs/s")
            late = result["lateness"]
            pgq(
                "enqueue",
                dsn,
                count=late["jobs"],
                spread=late["jobs"] / late["rate"],
                lead=3.0,
            )
            lat = pgq(
                "serve",
                dsn,
                count=late["jobs"],
                deadline=3.0 + late["jobs"] / late["rate"] + opts.deadline,
            )
            log(f"    lateness p99 {lat.get('lateness_p99_s', float('nan')):.3f}s")
            result["pgqueuer"] = {"one": one, "two": two, "lateness": lat}
    finally:
        if sandbox_server is not None:
            sandbox_server.stop()
        if not opts.keep:
            target.cleanup()
            pg_target.cleanup()
    result["rows"] = [row.as_dict() for row in rows_for(kind, result)]
    return result


def rows_for(kind: str, r: dict[str, Any]) -> list[Row]:
    n1, n2, sb, bl, late = r["noop_1"], r["noop_2"], r["sandbox_1"], r["blast"], r["lateness"]
    pq = r.get("pgqueuer")
    expected = r["preload"]["jobs"]
    rows = [
        Row(
            "dispatch msgs/s, no-op provider, 1 process",
            n1["rate"],
            "/s",
            ceiling=pq["one"]["rate"] if pq else None,
            ceiling_label="PgQueuer no-op jobs/s" + (" (on PG)" if kind == "sqlite" else ""),
            goal=">= 1x PgQueuer",
            passed=(n1["rate"] >= GOAL_PGQ_RATIO * pq["one"]["rate"]) if pq else None,
            note=(
                f"{n1['sent']}/{expected} sent, jobs {n1['jobs']}, "
                f"worker CPU {100 * n1['reports'][0]['cpu_seconds'] / n1['seconds']:.0f}%"
            ),
        ),
        Row(
            "dispatch msgs/s through the sandbox, 1 process",
            sb["rate"],
            "/s",
            ceiling=bl["rate"],
            ceiling_label="same adapters, no DB",
            goal=f">= {GOAL_SANDBOX:,.0f}/s",
            passed=sb["rate"] >= GOAL_SANDBOX,
            note=(
                f"{sb['sent']} sent ({sb['messages']}), jobs {sb['jobs']}; "
                "sandbox alone per channel: "
                + ", ".join(
                    f"{c} {b['rate']:.0f}/s" for c, b in r.get("blast_by_channel", {}).items()
                )
            ),
        ),
        Row(
            f"scheduling lateness p99 at {late['rate']:.0f}/s",
            late["p99_s"],
            "s",
            ceiling=pq["lateness"].get("lateness_p99_s") if pq else None,
            ceiling_label="PgQueuer, same due times",
            goal=f"< {GOAL_LATENESS_S:.0f} s",
            passed=late["p99_s"] < GOAL_LATENESS_S and late["sent"] >= 0.99 * late["jobs"],
            note=f"p50 {late['p50_s']:.3f}s, max {late['max_s']:.3f}s, "
            f"{late['sent']}/{late['jobs']} sent (sent_at - due_at, sandbox providers)",
        ),
        Row(
            "dispatch msgs/s, no-op provider, 2 processes",
            n2["rate"],
            "/s",
            ceiling=pq["two"]["rate"] if pq else None,
            ceiling_label="PgQueuer 2 procs",
            note=f"{n2['sent']}/{expected} sent, jobs {n2['jobs']}",
        ),
    ]
    scaling = n2["rate"] / n1["rate"] if n1["rate"] else 0.0
    pgq_scaling = pq["two"]["rate"] / pq["one"]["rate"] if pq and pq["one"]["rate"] else None
    rows.append(
        Row(
            "2 processes vs 1 (no-op)",
            scaling,
            "x",
            ceiling=pgq_scaling,
            ceiling_label="PgQueuer 2 vs 1",
            ratio=scaling / pgq_scaling if pgq_scaling else None,
            goal=f">= {GOAL_SCALING}x" + ("" if kind == "postgres" else " (PG goal)"),
            passed=(scaling >= GOAL_SCALING) if kind == "postgres" else None,
            note="" if kind == "postgres" else "SQLite: both processes share one writer",
        )
    )
    return rows


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    watches = [result[p].get("interference") for p in ("noop_1", "noop_2", "sandbox_1")]
    watches.append(result["lateness"]["run"].get("interference"))
    if result.get("pgqueuer"):
        watches += [result["pgqueuer"][k].get("interference") for k in ("one", "two")]
    footer = [line for line in (benchkit.interference_line(watches),) if line]
    title = f"dispatch on {result['db']} ({result.get('machine', benchkit.machine_line())})"
    return benchkit.render_table(title, rows, footer)


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley dispatch bench")
    p.add_argument("--orders", type=int, default=4000, help="preloaded orders (x1.5 jobs)")
    p.add_argument(
        "--sandbox-jobs", type=int, default=3000, help="jobs the sandbox phase drains (0: all)"
    )
    p.add_argument("--preload-threads", type=int, default=2, help="PostgreSQL preload threads")
    p.add_argument("--lateness-seconds", type=float, default=8.0, help="spread of due times")
    p.add_argument("--lateness-load", type=float, default=0.5, help="x sandbox msgs/s")
    p.add_argument("--deadline", type=float, default=180.0, help="cap per phase, seconds")
    p.add_argument("--blast-per-channel", type=int, default=400, help="sandbox ceiling per channel")
    p.add_argument("--worker-cpus", default="", help="pin workers (default: none)")
    p.add_argument("--sandbox-cpus", default="", help="pin the sandbox host (default: none)")
    p.add_argument("--no-pgqueuer", dest="pgqueuer", action="store_false")
    p.add_argument("--pgq-jobs", type=int, default=20_000, help="jobs per PgQueuer drain (min)")
    p.add_argument("--profile", default=None, help="directory for py-spy collapsed stacks")
    return p


def main() -> None:
    opts = parser().parse_args()
    if opts.profile:
        Path(opts.profile).mkdir(parents=True, exist_ok=True)
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    main()
