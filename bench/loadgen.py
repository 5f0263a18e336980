"""A lean HTTP/1.1 keep-alive load generator for signed webhooks.

Runs in its own process (pinned with ``--cpu``), pre-builds every request before the clock
starts (each a unique, correctly signed ``orders/create`` delivery: its own order id,
shopper and webhook id, so parley's dedupe never short-circuits; or, for the WhatsApp
route, the status receipt of one of the bench's sent messages), then replays them over
raw asyncio streams on uvloop:

- ``--mode max``: a closed loop, ``--connections`` connections each sending its next request
  as soon as the previous answer arrives, until ``--requests`` are sent or ``--duration``
  seconds pass. Throughput counts answers after the warm-up.
- ``--mode rate``: an open loop at ``--rate`` requests/s for ``--duration`` seconds. Each
  request's latency is measured from the moment it was *due*, not when a connection was
  free, so a stalled server cannot hide its queueing (no coordinated omission).

Prints one JSON object: counts, throughput, latency percentiles, errors, and the
generator's own CPU use (near 100% would mean the generator, not the server, was the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import time
from urllib.parse import urlsplit

import benchkit


def _build_chunk(args: tuple[int, int, str, str, str]) -> list[bytes]:
    start, count, host, path, secret = args
    requests = []
    for seq in range(start, start + count):
        if path.startswith("/api/v1/events"):
            body, headers = benchkit.order_event(seq)
        elif path.startswith("/webhooks/whatsapp/"):
            _, body, headers = benchkit.whatsapp_status_delivery(seq)
        else:
            body, headers = benchkit.order_delivery(seq, secret=secret)
        head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        requests.append(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    return requests


def build_requests(
    count: int, *, seq_start: int, host: str, path: str, secret: str, procs: int
) -> list[bytes]:
    chunk = max(500, count // (procs * 4) + 1)
    jobs = [
        (start, min(chunk, seq_start + count - start), host, path, secret)
        for start in range(seq_start, seq_start + count, chunk)
    ]
    if procs <= 1:
        return [r for job in jobs for r in _build_chunk(job)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return [r for part in pool.imap(_build_chunk, jobs) for r in part]


class Recorder:
    def __init__(self, expect: bytes | None) -> None:
        self.expect = expect
        self.records: list[tuple[float, float, float, int]] = []  # (due, sent, done, status)
        self.errors: dict[str, int] = {}

    def add(self, due: float, sent: float, done: float, status: int, body: bytes) -> None:
        if 200 <= status < 300:  # the events API answers 202
            unexpected = self.expect is not None and self.expect not in body
            status = 299 if unexpected else 200  # 299: answered, but e.g. "duplicate"
        self.records.append((due, sent, done, status))
        if status != 200:
            key = str(status)
            self.errors[key] = self.errors.get(key, 0) + 1


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:].strip())
            break
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_max(
    host: str, port: int, requests: list[bytes], connections: int, duration: float, rec: Recorder
) -> None:
    next_index = 0
    deadline = time.perf_counter() + duration

    async def client() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(requests) and time.perf_counter() < deadline:
                request = requests[next_index]
                next_index += 1
                sent = time.perf_counter()
                try:
                    status, body = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    rec.errors[type(exc).__name__] = rec.errors.get(type(exc).__name__, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                rec.add(sent, sent, time.perf_counter(), status, body)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))


async def run_rate(
    host: str,
    port: int,
    requests: list[bytes],
    connections: int,
    rate: float,
    rec: Recorder,
) -> None:
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: bytes, due: float) -> None:
        reader, writer = await idle.get()
        sent = time.perf_counter()
        try:
            status, body = await _exchange(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError) as exc:
            rec.errors[type(exc).__name__] = rec.errors.get(type(exc).__name__, 0) + 1
            writer.close()
            idle.put_nowait(await asyncio.open_connection(host, port))
            return
        rec.add(due, sent, time.perf_counter(), status, body)
        idle.put_nowait((reader, writer))

    start = time.perf_counter() + 0.05
    interval = 1.0 / rate
    i = 0
    while i < len(requests):
        now = time.perf_counter()
        while i < len(requests) and start + i * interval <= now:
            task = asyncio.create_task(one(requests[i], start + i * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < len(requests):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()


def summarise(
    rec: Recorder, *, warmup: float, mode: str, cpu: float, wall: float
) -> dict[str, object]:
    records = sorted(rec.records, key=lambda r: r[2])
    if not records:
        return {"ok": 0, "errors": rec.errors}
    t_first = min(r[0] for r in records)
    cut = t_first + warmup
    window = [r for r in records if r[0] >= cut] or records
    ok = [r for r in window if r[3] == 200]
    start = min(r[0] for r in window)
    end = max(r[2] for r in window)
    span = max(end - start, 1e-9)
    latency = [(r[2] - r[0]) * 1000 for r in ok]  # from due (rate) / sent (max)
    service = [(r[2] - r[1]) * 1000 for r in ok]
    return {
        "mode": mode,
        "requests": len(records),
        "measured": len(window),
        "ok": len(ok),
        "errors": rec.errors,
        "seconds": span,
        "throughput": len(ok) / span,
        "p50_ms": benchkit.percentile(latency, 50),
        "p90_ms": benchkit.percentile(latency, 90),
        "p99_ms": benchkit.percentile(latency, 99),
        "max_ms": max(latency) if latency else None,
        "service_p99_ms": benchkit.percentile(service, 99),
        "loadgen_cpu_pct": 100 * cpu / wall if wall else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        required=True,
        help="http://host:port/webhooks/shopify/bench, or .../api/v1/events for canonical events",
    )
    parser.add_argument("--mode", choices=("max", "rate"), default="max")
    parser.add_argument("--requests", type=int, default=20_000, help="max mode: at most this many")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds (cap in max mode)")
    parser.add_argument("--rate", type=float, default=1000.0, help="rate mode: requests/s")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds left out of the figures")
    parser.add_argument("--seq-start", type=int, default=0, help="first order/shopper number")
    parser.add_argument("--secret", default=benchkit.SECRET)
    parser.add_argument("--expect", default="accepted", help="text a good answer contains")
    parser.add_argument("--gen-procs", type=int, default=2, help="processes building requests")
    parser.add_argument("--cpu", default=None, help="pin the generator to these CPUs")
    parser.add_argument("--watch-pid", type=int, default=0, help="report this pid's CPU use")
    parser.add_argument(
        "--bench-root", type=int, default=0, help="pid whose process tree is the bench"
    )
    parser.add_argument(
        "--records",
        default=None,
        help="also write every request's [due, answered, status] here as JSON; the times "
        "are time.perf_counter(), the machine's monotonic clock, which other processes "
        "share on Linux, so a bench can pick the requests sent while something else ran",
    )
    args = parser.parse_args()

    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    count = args.requests if args.mode == "max" else int(args.rate * args.duration)
    t_build = time.perf_counter()
    requests = build_requests(
        count,
        seq_start=args.seq_start,
        host=f"{host}:{port}",
        path=url.path,
        secret=args.secret,
        procs=args.gen_procs,
    )
    build_seconds = time.perf_counter() - t_build
    benchkit.pin(args.cpu)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rec = Recorder(args.expect.encode() if args.expect else None)
    # The load window only (not the build above): the server's CPU, and what else ran.
    watch = benchkit.CpuWatch(root=args.bench_root) if args.bench_root else None
    server_cpu0 = benchkit.cpu_seconds(args.watch_pid) if args.watch_pid else 0.0
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    if args.mode == "max":
        coro = run_max(host, port, requests, args.connections, args.duration, rec)
    else:
        coro = run_rate(host, port, requests, args.connections, args.rate, rec)
    asyncio.run(coro)
    wall = time.perf_counter() - wall0
    server_cpu = benchkit.cpu_seconds(args.watch_pid) - server_cpu0 if args.watch_pid else None
    interference = watch.stop() if watch else None
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    result = summarise(rec, warmup=args.warmup, mode=args.mode, cpu=cpu, wall=wall)
    if args.records:
        with open(args.records, "w") as out:
            json.dump([[due, done, status] for due, _, done, status in rec.records], out)
    result["build_seconds"] = build_seconds
    if server_cpu is not None:
        result["server_cpu_pct"] = 100 * server_cpu / wall
    if interference is not None:
        result["interference"] = interference
    result["connections"] = args.connections
    if args.mode == "rate":
        result["offered_rate"] = args.rate
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
