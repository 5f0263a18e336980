"""Instructions per webhook and per job, counted by callgrind: the same for the same code.

``.venv/bin/python bench/instructions.py --db postgres`` (or ``sqlite``). On a shared
machine CPU time moves by half from one minute to the next (bench/README.md, "Reading
the numbers"); valgrind's callgrind counts the instructions the Python process executes,
which do not. Each phase runs in a process of its own under callgrind with counting off;
the process sets up its database and data at full speed, then turns counting on
(``callgrind_control -i on``) for the measured part only:

- ``ingest``: ``orders/create`` deliveries verified and stored ten to a transaction, as a
  group commit shares one (``sqlcount.py``'s second figure);
- ``lone``: the same deliveries each through ``receive()``, a transaction of its own, as
  a delivery arriving at a quiet moment is written (``sqlcount.py``'s first figure);
- ``dispatch``: the worker draining one order confirmation a delivery, in batches of 200,
  no-op provider (``sqlcount.py``'s third figure).

PostgreSQL's own work is in its server process and not counted. Compare two versions with
``PYTHONPATH=/other/checkout/src``; each phase takes about a minute on 2 CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import benchkit

PHASES = ("ingest", "lone", "dispatch")
_COLLECTED = re.compile(r"Collected : (\d+)")


def _count_on(on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
        check=True,
        capture_output=True,
    )


def measured(phase: str, kind: str, orders: int, pg_url: str) -> int:
    """Runs inside callgrind: set up, then count ``phase`` only; returns items measured."""
    import dispatch_worker

    from parley.db import Database
    from parley.http.webhooks.shopify import receive
    from parley.runtime import Runtime, tune_garbage_collector
    from parley.settings import Settings

    target = benchkit.Target(kind, Path(tempfile.mkdtemp(prefix="parley-instr-")), pg_url)
    try:
        url = target.fresh(f"instr_{phase}")
        # History moves only the server's work, which callgrind does not count, and would
        # make the set-up under valgrind minutes long.
        benchkit.prepare_parley_db(url, history=0)
        db = Database(url)
        deliveries = [benchkit.order_delivery(i) for i in range(orders + 50)]

        # caches warm, statements prepared
        benchkit.store_deliveries(db, deliveries[:50], per_transaction=10)
        tune_garbage_collector()
        if phase == "ingest":
            _count_on(True)
            benchkit.store_deliveries(db, deliveries[50:], per_transaction=10)
            _count_on(False)
            db.dispose()
            return orders
        if phase == "lone":
            _count_on(True)
            for body, headers in deliveries[50:]:
                receive(db, benchkit.SLUG, benchkit.shopify_headers(headers), body)
            _count_on(False)
            db.dispose()
            return orders
        benchkit.store_deliveries(db, deliveries[50:], per_transaction=10)
        # A lease far longer than the slowed-down round, so no job is claimed twice.
        settings = Settings(worker_batch_size=200, job_lease_seconds=3600, **benchkit.paced_at(0))
        runtime = Runtime(settings=settings, db=db, adapters=dispatch_worker.noop_adapters())
        worker = runtime.worker(name="instructions")
        _count_on(True)
        handled = asyncio.run(worker.run_until_idle())
        _count_on(False)
        db.dispose()
        return handled
    finally:
        target.cleanup()


def run_phase(phase: str, opts: argparse.Namespace) -> tuple[int, int]:
    """(instructions, items) of one phase, run under callgrind in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="parley-callgrind-") as out:
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}/callgrind.out",
                benchkit.PYTHON,
                __file__,
                "--child",
                phase,
                "--db",
                opts.db,
                "--orders",
                str(opts.orders),
                "--pg-url",
                opts.pg_url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    found = _COLLECTED.search(proc.stderr)
    items = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if found is None or not items:
        sys.exit(f"{phase} under callgrind failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return int(found.group(1)), int(items[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg-url", default=benchkit.DEFAULT_PG_ADMIN_URL)
    p.add_argument("--orders", type=int, default=400, help="deliveries measured")
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.child:
        print(measured(opts.child, opts.db, opts.orders, opts.pg_url))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    units = {
        "ingest": "webhook (stored ten to a transaction)",
        "lone": "webhook (a transaction each)",
        "dispatch": "job (batches of 200)",
    }
    for phase in opts.phases.split(","):
        instructions, items = run_phase(phase, opts)
        print(
            f"{opts.db} {phase}: {instructions / items / 1e6:.2f}M instructions a "
            f"{units[phase]}, {items} measured"
        )


if __name__ == "__main__":
    main()
