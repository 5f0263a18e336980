"""SQL statements, commits and single-thread CPU per webhook and per job, in-process.

A cheap, noise-free companion to the throughput benches: no server, no concurrency, one
thread, so the figures barely move with machine load. Counts every statement the engine
sends (``before_cursor_execute``: an ``executemany`` counts once) and every commit, and
the CPU spent in the garbage collector. The collector is set up as ``parley serve`` and
``parley worker`` set it up (``tune_garbage_collector``); ``--default-gc`` keeps Python's
defaults to compare.

Run: ``.venv/bin/python bench/sqlcount.py --db sqlite`` (or ``--db postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import math
import pstats
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchkit
from sqlalchemy import event

BATCH = 10
"""Deliveries to a transaction in the batched measurement, about what a group commit
takes at a time under load."""


class Counting:
    def __init__(self, engine: Any) -> None:
        self.statements = 0
        self.commits = 0
        self.kinds: Counter[str] = Counter()
        self.recorded: list[str] | None = None
        event.listen(engine, "before_cursor_execute", self._on_execute)
        event.listen(engine, "commit", self._on_commit)

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements += 1
        words = statement.split()
        self.kinds[" ".join(words[:1]).upper()] += 1
        if self.recorded is not None:
            self.recorded.append(" ".join(words))

    def _on_commit(self, _conn: Any) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.statements = self.commits = 0
        self.kinds.clear()


class Collections:
    """CPU time the garbage collector takes, from its own start and stop callbacks."""

    def __init__(self) -> None:
        self.count = 0
        self.cpu = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_phase)

    def _on_phase(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.count += 1
            self.cpu += time.process_time() - self._started

    def reset(self) -> None:
        self.count, self.cpu = 0, 0.0

    def line(self, n: int, unit: str) -> str:
        return f"  collector: {self.count} collections, {1000 * self.cpu / n:.3f} ms CPU per {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=benchkit.DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="also print cProfile tables of receive() and of the worker's jobs, in CPU time "
        "(waits left out)",
    )
    parser.add_argument(
        "--show-sql", action="store_true", help="also print the statements of one delivery"
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's garbage collector settings instead of parley's long-running ones",
    )
    args = parser.parse_args()

    import dispatch_worker

    from parley.db import Database
    from parley.http.webhooks.shopify import receive
    from parley.runtime import Runtime, tune_garbage_collector
    from parley.settings import Settings

    target = benchkit.Target(
        args.db, Path(tempfile.mkdtemp(prefix="parley-sqlcount-")), pg_admin_url=args.pg_url
    )
    try:
        url = target.fresh("sqlcount")
        benchkit.prepare_parley_db(url)
        db = Database(url)
        counting = Counting(db.engine)
        orders = [benchkit.order_delivery(i) for i in range(args.orders + 50)]
        for body, headers in orders[:50]:  # warm caches
            receive(db, benchkit.SLUG, benchkit.shopify_headers(headers), body)
        if args.show_sql:
            counting.recorded = []
            body, headers = benchkit.order_delivery(10**6)
            receive(db, benchkit.SLUG, benchkit.shopify_headers(headers), body)
            print("statements of one orders/create delivery:")
            for statement in counting.recorded:
                print(f"  {statement[:300]}")
            counting.recorded = None
        if not args.default_gc:
            tune_garbage_collector()
        collections = Collections()
        counting.reset()
        profiler = cProfile.Profile(time.process_time) if args.cprofile else None
        cpu0, t0, server0 = time.process_time(), time.perf_counter(), server_cpu(args.db)
        if profiler:
            profiler.enable()
        for body, headers in orders[50:]:
            receive(db, benchkit.SLUG, benchkit.shopify_headers(headers), body)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        server = server_cpu(args.db) - server0
        n = args.orders
        print(f"{args.db}: orders/create through receive(), one thread, {n} deliveries")
        print(f"  {counting.statements / n:.1f} statements, {counting.commits / n:.2f} commits")
        print(f"  {1000 * cpu / n:.2f} ms CPU, {1000 * wall / n:.2f} ms wall per delivery")
        print(server_line(server, n, "delivery"))
        print(
            "  statements by kind per delivery: "
            + ", ".join(f"{k} {v / n:.1f}" for k, v in counting.kinds.most_common())
        )
        print(collections.line(n, "delivery"))

        if profiler:
            print_profile("ingest: receive()", profiler)
        batched = [benchkit.order_delivery(i) for i in range(10**5, 10**5 + args.orders)]
        counting.reset()
        collections.reset()
        cpu0, t0, server0 = time.process_time(), time.perf_counter(), server_cpu(args.db)
        benchkit.store_deliveries(db, batched, per_transaction=BATCH)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        server = server_cpu(args.db) - server0
        print(
            f"{args.db}: orders/create through store(), {BATCH} to a transaction "
            "(as a group commit shares one)"
        )
        print(f"  {counting.statements / n:.1f} statements, {counting.commits / n:.2f} commits")
        print(f"  {1000 * cpu / n:.2f} ms CPU, {1000 * wall / n:.2f} ms wall per delivery")
        print(server_line(server, n, "delivery"))
        print(collections.line(n, "delivery"))
        runtime = Runtime(
            settings=Settings(**benchkit.paced_at(0)),
            db=db,
            adapters=dispatch_worker.noop_adapters(),
        )
        worker = runtime.worker(name="sqlcount")
        counting.reset()
        collections.reset()
        job_profiler = cProfile.Profile(time.process_time) if args.cprofile else None
        cpu0, t0, server0 = time.process_time(), time.perf_counter(), server_cpu(args.db)
        if job_profiler:
            with inline_threads():
                job_profiler.enable()
                handled = asyncio.run(worker.run_until_idle())
                job_profiler.disable()
        else:
            handled = asyncio.run(worker.run_until_idle())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        server = server_cpu(args.db) - server0
        print(f"{args.db}: journeys.advance with a no-op provider, one worker, {handled} jobs")
        print(
            f"  {counting.statements / handled:.1f} statements, "
            f"{counting.commits / handled:.3f} commits per job"
        )
        print(f"  {1000 * cpu / handled:.2f} ms CPU, {1000 * wall / handled:.2f} ms wall per job")
        print(server_line(server, handled, "job"))
        print(
            "  statements by kind per job: "
            + ", ".join(f"{k} {v / handled:.2f}" for k, v in counting.kinds.most_common())
        )
        print(collections.line(handled, "job"))
        if job_profiler:
            print_profile("worker: journeys.advance jobs (threads run inline)", job_profiler)
        print(benchkit.speed_line())
        db.dispose()
    finally:
        target.cleanup()


def server_cpu(db: str) -> float:
    """PostgreSQL's own CPU seconds so far when it runs on this machine; NaN for SQLite,
    whose work is this process's."""
    return benchkit.postgres_cpu_seconds() if db == "postgres" else math.nan


def server_line(seconds: float, n: int, unit: str) -> str:
    if math.isnan(seconds):
        return "  database server: in this process (SQLite)"
    return f"  database server: {1000 * seconds / n:.2f} ms CPU per {unit} (PostgreSQL's processes)"


@contextlib.contextmanager
def inline_threads() -> Iterator[None]:
    """``asyncio.to_thread`` runs its function in the calling thread, so cProfile (which
    sees one thread) sees the worker's database phases too."""

    async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    original = asyncio.to_thread
    asyncio.to_thread = inline  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.to_thread = original


def print_profile(title: str, profiler: cProfile.Profile) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(r"parley", 30)
    stats.sort_stats("tottime").print_stats(20)
    print(f"--- cProfile: {title}")
    print(stream.getvalue())


if __name__ == "__main__":
    main()
