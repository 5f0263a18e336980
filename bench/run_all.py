"""Every bench, on SQLite and on PostgreSQL, then every table together.

Run: ``.venv/bin/python bench/run_all.py`` (``make bench``). About 20 minutes on 2 CPUs
with the defaults; ``--quick`` for a smoke run of about 4. Each bench runs as its own
process and writes JSON into ``--out`` (default ``var/bench/``), which is where the
tables printed at the end come from; ``--profile DIR`` adds py-spy stacks of the server
and of the workers (summarise them with ``bench/profile_summary.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import benchkit

QUICK = {
    "ingest": ["--duration", "4", "--rate-duration", "4", "--memory-duration", "5"],
    "dispatch": ["--orders", "1000", "--lateness-seconds", "5"],
    "inbox_list": ["--conversations", "2000", "--requests", "20"],
    "live_latency": ["--messages", "30"],
    "sweep": ["--rows", "3000", "--duration", "10", "--quiet-duration", "4"],
    "fairness": ["--flood", "20000", "--duration", "4"],
    "pacing": ["--orders", "1500", "--rate", "300"],
    "erasure": ["--rows", "5000", "--duration", "20", "--customer-duration", "10"],
}


def source_line() -> str:
    """Which parley was measured: its path, and the commit when it is this checkout."""
    import parley

    path = Path(parley.__file__).resolve().parent
    line = f"parley from {path}"
    if path == benchkit.REPO / "src" / "parley":
        try:
            head = subprocess.run(
                ["git", "-C", str(benchkit.REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(benchkit.REPO), "status", "--porcelain", "--", "src"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            line += f" at {head}" + (
                f" + {len(dirty)} uncommitted file(s) in src/" if dirty else ""
            )
        except (OSError, subprocess.CalledProcessError):
            pass
    return line


def run_bench(name: str, db: str, out: Path, extra: list[str]) -> dict | None:
    path = out / f"{name}-{db}.json"
    path.unlink(missing_ok=True)
    args = [
        benchkit.PYTHON,
        str(benchkit.BENCH_DIR / f"{name}.py"),
        "--db",
        db,
        "--json",
        str(path),
    ]
    print(f"\n=== {name} on {db} ===", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run([*args, *extra], cwd=benchkit.REPO, check=False, timeout=1200)
    print(f"({name} on {db}: {time.monotonic() - t0:.0f}s, exit {proc.returncode})", flush=True)
    if proc.returncode != 0 or not path.exists():
        return None
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres", help="comma-separated")
    parser.add_argument(
        "--only",
        default="ingest,dispatch,inbox_list,live_latency,sweep,fairness,pacing,erasure",
        help="comma-separated benches",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--pg-url", default=benchkit.DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--profile", default=None, help="directory for py-spy stacks")
    parser.add_argument("--out", default=str(benchkit.REPO / "var" / "bench"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import dispatch
    import erasure
    import fairness
    import inbox_list
    import ingest
    import live_latency
    import pacing
    import sweep

    tables = {
        "ingest": ingest.table,
        "dispatch": dispatch.table,
        "inbox_list": inbox_list.table,
        "live_latency": live_latency.table,
        "sweep": sweep.table,
        "fairness": fairness.table,
        "pacing": pacing.table,
        "erasure": erasure.table,
    }
    # The reference work, before and after: CPU figures of runs whose times differ are
    # not comparable as they stand (this machine's speed moves from day to day).
    header = [benchkit.machine_line(), source_line(), "at the start, " + benchkit.speed_line()]
    print("\n".join(header), flush=True)
    t0 = time.monotonic()
    results: list[tuple[str, str, dict | None]] = []
    for db in args.db.split(","):
        for name in args.only.split(","):
            extra = ["--pg-url", args.pg_url]
            if args.quick:
                extra += QUICK[name]
            if args.profile:
                extra += ["--profile", args.profile]
            results.append((name, db, run_bench(name, db, out, extra)))

    print("\n" + "=" * 100)
    print("\n".join(header))
    print("at the end, " + benchkit.speed_line())
    print(f"all benches: {time.monotonic() - t0:.0f}s")
    failed = False
    for name, db, result in results:
        print()
        if result is None:
            print(f"{name} on {db}: FAILED (see output above)")
            failed = True
        else:
            print(tables[name](result))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
