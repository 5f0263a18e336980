"""PgQueuer, the dispatch ceiling: one process of PgQueuer's own worker on no-op jobs.

Uses PgQueuer's public API only (``Queries.install``/``enqueue``, ``PgQueuer`` with a
``PsycopgDriver`` over an autocommit psycopg connection, ``run(mode=drain)``), with its
default batch settings. Modes:

- ``install``: create PgQueuer's schema in ``--dsn``;
- ``enqueue``: add ``--count`` no-op jobs in batches (``--spread`` seconds: each job gets an
  ``execute_after`` so due times are spread evenly, starting ``--lead`` seconds from now);
- ``drain``: run PgQueuer until the queue is empty and report jobs/s;
- ``serve``: run continuously until ``--count`` jobs ran, recording each job's lateness
  (handler start minus its due time), then stop.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from datetime import timedelta
from typing import Any

import benchkit

ENTRYPOINT = "bench_noop"


async def connect(dsn: str) -> Any:
    import psycopg

    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def install(opts: argparse.Namespace) -> dict[str, Any]:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    conn = await connect(opts.dsn)
    try:
        queries = Queries(PsycopgDriver(conn))
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await conn.close()
    return {"installed": True}


async def enqueue(opts: argparse.Namespace) -> dict[str, Any]:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    conn = await connect(opts.dsn)
    t0 = time.time()
    try:
        queries = Queries(PsycopgDriver(conn))
        start = time.time() + opts.lead
        step = opts.spread / max(opts.count, 1)
        chunk = 1000
        for first in range(0, opts.count, chunk):
            n = min(chunk, opts.count - first)
            due = [start + (first + i) * step for i in range(n)] if opts.spread else [0.0] * n
            delays = (
                [timedelta(seconds=max(0.0, d - time.time())) for d in due] if opts.spread else None
            )
            await queries.enqueue(
                [ENTRYPOINT] * n,
                [json.dumps({"due": d}).encode() for d in due],
                [0] * n,
                delays,
            )
    finally:
        await conn.close()
    return {"enqueued": opts.count, "seconds": time.time() - t0}


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    from pgqueuer import PgQueuer
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.domain.types import QueueExecutionMode
    from pgqueuer.models import Job

    conn = await connect(opts.dsn)
    pgq = PgQueuer(PsycopgDriver(conn))
    handled = 0
    lateness: list[float] = []
    first_last = [0.0, 0.0]

    @pgq.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        nonlocal handled
        handled += 1
        first_last[1] = time.time()
        if not first_last[0]:
            first_last[0] = first_last[1]
        if opts.mode == "serve":
            due = json.loads(job.payload or b"{}").get("due") or 0.0
            lateness.append(time.time() - due)
            if handled >= opts.count:
                pgq.shutdown.set()

    if opts.start_at:
        await asyncio.sleep(max(0.0, opts.start_at - time.time()))
    cpu0 = time.process_time()
    t0 = time.time()
    mode = QueueExecutionMode.drain if opts.mode == "drain" else QueueExecutionMode.continuous
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(pgq.run(mode=mode), opts.deadline)
    t1 = time.time()
    cpu = time.process_time() - cpu0
    await conn.close()
    out: dict[str, Any] = {
        "mode": opts.mode,
        "handled": handled,
        "t0": t0,
        "t1": t1,
        "first_job": first_last[0],
        "last_job": first_last[1],
        "cpu_seconds": cpu,
    }
    if lateness:
        out["lateness_p50_s"] = benchkit.percentile(lateness, 50)
        out["lateness_p99_s"] = benchkit.percentile(lateness, 99)
        out["lateness_max_s"] = max(lateness)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="PgQueuer no-op drain (dispatch ceiling)")
    parser.add_argument("mode", choices=("install", "enqueue", "drain", "serve"))
    parser.add_argument("--dsn", required=True, help="postgresql://user@host:port/db")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--spread", type=float, default=0.0)
    parser.add_argument("--lead", type=float, default=1.0)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--cpu", default=None)
    opts = parser.parse_args()
    benchkit.pin(opts.cpu)
    action = {"install": install, "enqueue": enqueue}.get(opts.mode, run)
    # uvloop, as PgQueuer's own ``pgq run`` does when it is installed.
    try:
        import uvloop

        result = uvloop.run(action(opts))
    except ImportError:
        result = asyncio.run(action(opts))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
