"""What every bench shares: databases, signed deliveries, processes, statistics, tables.

The benches are scripts run from the repository root (``.venv/bin/python bench/ingest.py``),
so this module is imported by its bare name. Nothing here edits parley: it builds
databases with parley's own migrations and workspaces with parley's own service.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable

SLUG = "bench"
SECRET = "bench-shopify-secret"
API_KEY = "bench-api-key"
META_APP_SECRET = "bench-meta-app-secret"
WHATSAPP_NUMBER_ID = "100000000000042"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
BASELINE_TABLE = "bench_baseline_deliveries"


# --------------------------------------------------------------------------- databases


def paced_at(per_second: float) -> dict[str, float]:
    """Settings pacing every sender at ``per_second`` (0: not paced). The dispatch benches
    measure parley's own work with senders unpaced, as a deployment whose providers take
    more than it sends; ``bench/pacing.py`` measures the pace."""
    return {
        "whatsapp_messages_per_second": per_second,
        "twilio_segments_per_second": per_second,
        "instagram_messages_per_second": per_second,
        "smtp_messages_per_second": per_second,
    }


def pg_url(admin_url: str, database: str) -> str:
    """The admin URL with another database name, as a SQLAlchemy psycopg URL."""
    base, _, _ = admin_url.rpartition("/")
    url = f"{base}/{database}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _admin_connect(admin_url: str) -> Any:
    import psycopg

    return psycopg.connect(
        admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )


def pg_create(admin_url: str, database: str, *, template: str | None = None) -> str:
    """(Re)create ``database`` (``bench_*`` only), optionally as a copy of ``template``."""
    if not database.startswith("bench_"):
        raise ValueError("the benches only create databases named bench_*")
    with _admin_connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if template:
            conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{database}"')
    return pg_url(admin_url, database)


def pg_drop(admin_url: str, database: str) -> None:
    if not database.startswith("bench_"):
        raise ValueError("the benches only drop databases named bench_*")
    with _admin_connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dataclass
class Target:
    """Where a bench keeps its data: a SQLite file in ``workdir`` or a bench_* PG database."""

    kind: str  # "sqlite" | "postgres"
    workdir: Path
    pg_admin_url: str = DEFAULT_PG_ADMIN_URL
    created: list[str] = field(default_factory=list)

    def fresh(self, name: str) -> str:
        if self.kind == "sqlite":
            path = self.workdir / f"{name}.db"
            _unlink_sqlite(path)
            self.created.append(str(path))
            return f"sqlite:///{path}"
        database = f"bench_{name}"
        self.created.append(database)
        return pg_create(self.pg_admin_url, database)

    def clone(self, source: str, name: str) -> str:
        """A copy of database ``source`` (made with :meth:`fresh`) named ``name``."""
        if self.kind == "sqlite":
            import sqlite3

            src = self.workdir / f"{source}.db"
            dst = self.workdir / f"{name}.db"
            _unlink_sqlite(dst)
            self.created.append(str(dst))
            with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
                a.backup(b)
            return f"sqlite:///{dst}"
        database = f"bench_{name}"
        self.created.append(database)
        return pg_create(self.pg_admin_url, database, template=f"bench_{source}")

    def cleanup(self) -> None:
        """Drop the databases this target made (a run's SQLite files are hundreds of MB);
        the work directory's logs stay."""
        for database in dict.fromkeys(self.created):
            if self.kind == "sqlite":
                _unlink_sqlite(Path(database))
                continue
            with contextlib.suppress(Exception):
                pg_drop(self.pg_admin_url, database)
        self.created.clear()


def _unlink_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


HISTORY_ORDERS = 2_000
"""Orders the bench store has taken before a bench measures it."""
HISTORY_FIRST_SEQ = 10**7
"""``order_delivery`` sequence numbers of the history, clear of every bench's own."""


def prepare_parley_db(
    url: str,
    *,
    baseline_table: bool = False,
    sent_whatsapp: int = 0,
    history: int = HISTORY_ORDERS,
) -> None:
    """Migrate with parley's migrations and create the bench workspace (and baseline table).

    ``history``: orders the store has taken already, stored through the webhook path
    (shoppers, orders, runs, events; their jobs done), and on PostgreSQL the planner's
    statistics gathered after them, as autovacuum keeps them in a running deployment. A
    database measured while still empty of statistics is measured in a state a real one
    leaves within a minute: PostgreSQL keeps plans it made for empty tables (a foreign
    key's check scanned every stored delivery, growing with each), and the server's CPU
    per delivery climbed from 1.2 to 3.2 ms over the first 4,000.

    ``sent_whatsapp``: also connect a WhatsApp Cloud account and record that many sent
    WhatsApp messages (``wamid.bench.<seq>``), for :func:`whatsapp_status_delivery`'s
    receipts to find.
    """
    from parley.db import Database
    from parley.db.migrate import migrate
    from parley.workspaces.service import add_channel_account, create_workspace

    migrate(url)
    db = Database(url)
    try:
        with db.transaction() as session:
            workspace = create_workspace(
                session, slug=SLUG, name="Bench Store", shopify_secret=SECRET, api_key=API_KEY
            )
            if sent_whatsapp:
                add_channel_account(
                    session,
                    workspace_id=workspace.id,
                    channel="whatsapp",
                    provider="whatsapp_cloud",
                    address=WHATSAPP_NUMBER_ID,
                    secrets={"app_secret": META_APP_SECRET, "verify_token": "bench"},
                )
                _record_sent_whatsapp(session, workspace.id, sent_whatsapp)
        if baseline_table:
            baseline_metadata().create_all(db.engine)
        _record_history(db, history)
    finally:
        db.dispose()


def store_deliveries(
    db: Any, deliveries: Sequence[tuple[bytes, dict[str, str]]], *, per_transaction: int
) -> None:
    """Signed deliveries verified and stored through the webhook path, ``per_transaction``
    to a transaction, as a group commit stores them (stage first, then each write)."""
    from parley.http.webhooks.shopify import stage, store, verify

    for start in range(0, len(deliveries), per_transaction):
        verified = [
            verify(db, SLUG, shopify_headers(headers), body)
            for body, headers in deliveries[start : start + per_transaction]
        ]
        with db.transaction() as session:
            stage(session, verified)
            for delivery in verified:
                store(session, delivery)


def _record_history(db: Any, orders: int) -> None:
    """``orders`` past orders through the webhook path, fifty to a transaction, their
    jobs then marked done; then ``ANALYZE`` on PostgreSQL (SQLite plans without
    statistics, as parley leaves it)."""
    from sqlalchemy import update

    from parley.jobs.models import Job, JobStatus

    history = [order_delivery(HISTORY_FIRST_SEQ + seq) for seq in range(orders)]
    store_deliveries(db, history, per_transaction=50)
    with db.transaction() as session:
        session.execute(update(Job).values(status=JobStatus.DONE))
    if db.is_postgres:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


def _record_sent_whatsapp(session: Any, workspace_id: int, count: int) -> None:
    """``count`` journey messages parley sent on WhatsApp and is waiting to hear about."""
    from parley.messaging.service import MESSAGES, blank_row

    now = datetime.now(UTC)
    rows = []
    for seq in range(count):
        row = blank_row(workspace_id=workspace_id, now=now)
        row.update(
            idempotency_key=f"bench:{seq}",
            message_type="order_dispatched",
            channel="whatsapp",
            recipient=_wa_id(seq),
            body="Your order is on its way.",
            status="sent",
            provider="whatsapp",
            provider_message_id=_wamid(seq),
            attempts=1,
            sent_at=now,
        )
        rows.append(row)
    session.connection().execute(MESSAGES.insert(), rows)


def baseline_metadata() -> Any:
    """The baseline endpoint's one table: a durable receipt of each delivery."""
    from sqlalchemy import (
        Column,
        DateTime,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    metadata = MetaData()
    Table(
        BASELINE_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("workspace", String(64), nullable=False),
        Column("delivery_key", String(300), nullable=False),
        Column("body", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("workspace", "delivery_key"),
    )
    return metadata


# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Shopper:
    index: int
    channel: str  # which channel the shopper reaches: email | sms | whatsapp

    @property
    def customer(self) -> dict[str, Any]:
        i = self.index
        has_phone = self.channel in ("sms", "whatsapp")
        return {
            "id": 5_000_000_000 + i,
            "email": f"shopper{i}@bench.example",
            "phone": f"+12022{i % 1_000_000:06d}" if has_phone else None,
            "first_name": "Bench",
            "last_name": f"Shopper{i}",
            "email_consent": False,
            "sms_consent": self.channel == "sms",
        }


ITEMS = ({"title": "Organic Cotton Tee", "quantity": 2, "price": "24.00", "sku": "SKU-8005"},)


def order_event(seq: int, *, api_key: str = API_KEY) -> tuple[bytes, dict[str, str]]:
    """The same order as :func:`order_delivery`, as a canonical ``order.created`` for
    ``POST /api/v1/events`` (mapped by parley's own Shopify mapping), with its API key."""

    from parley.integrations.shopify.mapping import map_delivery

    body, _ = order_delivery(seq)
    [event] = map_delivery("orders/create", json.loads(body), received_at=datetime.now(UTC))
    payload = {
        "id": str(uuid.uuid4()),
        "type": str(event.type),
        "occurred_at": event.occurred_at.isoformat(),
        "payload": event.payload.model_dump(mode="json"),
    }
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    return json.dumps(payload).encode(), headers


def order_delivery(
    seq: int, *, secret: str = SECRET, channel: str = "email"
) -> tuple[bytes, dict[str, str]]:
    """One unique, signed ``orders/create`` delivery (order, shopper and webhook id from seq)."""
    from parley.integrations.shopify import payloads

    now = datetime.now(UTC)
    shopper = Shopper(seq, channel)
    body = payloads.encode(
        payloads.order_payload(
            order_id=7_000_000_000 + seq,
            number=1001 + seq,
            customer=shopper.customer,
            line_items=list(ITEMS),
            created_at=now,
        )
    )
    headers = payloads.webhook_headers(
        "orders/create",
        body,
        secret,
        shop_domain=payloads.DEMO_SHOP_DOMAIN,
        webhook_id=str(uuid.uuid4()),
        triggered_at=now,
    )
    return body, headers


def fulfillment_delivery(
    seq: int, *, secret: str = SECRET, channel: str = "sms"
) -> tuple[bytes, dict[str, str]]:
    """The ``fulfillments/create`` delivery for order ``seq`` (starts the dispatch journey)."""
    from parley.integrations.shopify import payloads

    now = datetime.now(UTC)
    shopper = Shopper(seq, channel)
    body = payloads.encode(
        payloads.fulfillment_payload(
            fulfillment_id=8_000_000_000 + seq,
            order_id=7_000_000_000 + seq,
            customer=shopper.customer,
            tracking_company="UPS",
            tracking_number=f"1Z999AA1{seq:08d}",
            tracking_url=f"https://www.ups.com/track?tracknum=1Z999AA1{seq:08d}",
            shipment_status=None,
            created_at=now,
            line_items=list(ITEMS),
            order_number=1001 + seq,
        )
    )
    headers = payloads.webhook_headers(
        "fulfillments/create",
        body,
        secret,
        shop_domain=payloads.DEMO_SHOP_DOMAIN,
        webhook_id=str(uuid.uuid4()),
        triggered_at=now,
    )
    return body, headers


def _wamid(seq: int) -> str:
    return f"wamid.bench.{seq}"


def _wa_id(seq: int) -> str:
    return f"1202{seq % 10_000_000:07d}"


def whatsapp_status_delivery(
    seq: int, *, status: str = "delivered"
) -> tuple[str, bytes, dict[str, str]]:
    """The WhatsApp Cloud API's signed status webhook for sent message ``seq``, built by
    parley's own sandbox builder: its path, body and headers."""
    from urllib.parse import urlsplit

    webhook = _bench_provider_webhooks().whatsapp_status(
        message_id=_wamid(seq), wa_id=_wa_id(seq), status=status
    )
    return urlsplit(webhook.url).path, webhook.content, webhook.headers


@functools.cache
def _bench_provider_webhooks() -> Any:
    """The sandbox's webhook builder, aimed at the bench workspace's WhatsApp account."""
    from parley.sandbox.webhooks import ProviderWebhooks
    from parley.settings import Settings

    return ProviderWebhooks(
        Settings(
            sandbox_workspace=SLUG,
            demo_meta_app_secret=META_APP_SECRET,
            whatsapp_phone_number_id=WHATSAPP_NUMBER_ID,
            public_url="http://bench.invalid",
        )
    )


def shopify_headers(headers: dict[str, str]) -> Any:
    """parley's parsed view of delivery headers, for calling ``receive`` in-process."""
    from parley.http.webhooks.shopify import KEPT_HEADERS, ShopifyHeaders

    lower = {name.lower(): value for name, value in headers.items()}
    return ShopifyHeaders(
        hmac=lower.get("x-shopify-hmac-sha256"),
        topic=lower.get("x-shopify-topic"),
        shop_domain=lower.get("x-shopify-shop-domain"),
        webhook_id=lower.get("x-shopify-webhook-id"),
        event_id=lower.get("x-shopify-event-id"),
        triggered_at=lower.get("x-shopify-triggered-at"),
        kept={name: lower[name] for name in KEPT_HEADERS if name in lower},
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_list(spec: str | None) -> set[int] | None:
    """``"0"``, ``"0,1"`` or ``"0-1"`` to a CPU set; None/"" for no pinning."""
    if not spec:
        return None
    cpus: set[int] = set()
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    available = os.sched_getaffinity(0)
    return (cpus & available) or None


def pin(spec: str | None) -> None:
    cpus = cpu_list(spec)
    if cpus:
        os.sched_setaffinity(0, cpus)


def default_cpus() -> tuple[str, str]:
    """(server/worker CPUs, load-generator CPU): the last CPU for the generator."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "", ""
    return ",".join(str(c) for c in cpus[:-1]), str(cpus[-1])


class Child:
    """A subprocess this bench started: bounded, and always stopped by its own pid."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cpus: str | None = None,
        log: Path | None = None,
        capture: bool = False,
    ) -> None:
        full_env = {**os.environ, **(env or {})}
        # Keep a PYTHONPATH given to the bench (e.g. a snapshot of src/) ahead of bench/.
        paths = [p for p in (full_env.get("PYTHONPATH", ""), str(BENCH_DIR)) if p]
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
        self.log_path = log
        self._log = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        cpu_set = cpu_list(cpus)

        def preexec() -> None:
            if cpu_set:
                os.sched_setaffinity(0, cpu_set)

        self.proc = subprocess.Popen(
            list(args),
            env=full_env,
            cwd=str(REPO),
            stdout=subprocess.PIPE if capture else self._log,
            stderr=self._log if log else subprocess.DEVNULL,
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def communicate(self, timeout: float) -> str:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return (out or b"").decode()

    def stop(self, *, grace: float = 15.0) -> int | None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_http(url: str, *, timeout: float = 60.0, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.proc.poll() is not None:
            raise RuntimeError(f"process exited ({child.proc.returncode}):\n{child.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS (kB) of a process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds a process and its running descendants have used (the
    processes of ``serve --workers N`` under their supervisor)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    ticks = os.sysconf("SC_CLK_TCK")
    own = int(fields[11]) + int(fields[12])
    return (own + sum(_pid_jiffies(child) for child in _descendants(pid))) / ticks


def postgres_cpu_seconds() -> float:
    """CPU seconds this machine's PostgreSQL processes (server, backends, writers) have
    used so far, from /proc: the database's own work, where it runs on this machine. A
    backend that exits between two readings takes its share with it, so read around work
    whose connections stay open."""
    ticks = os.sysconf("SC_CLK_TCK")
    return (
        sum(_pid_jiffies(pid) for pid, _, cmdline in _processes() if _is_postgres(cmdline)) / ticks
    )


def _is_postgres(cmdline: bytes) -> bool:
    program = cmdline.split(b"\0", 1)[0]
    return program.startswith(b"postgres:") or program.endswith(b"/bin/postgres")


def start_py_spy(pid: int, out: Path, *, duration: float, idle: bool = False) -> Any:
    """py-spy ``record`` of ``pid`` as raw collapsed stacks (``idle``: waiting threads too).

    ``--nonblocking`` never pauses the target, so two recorders can watch one process.
    py-spy stops by itself after ``duration`` seconds or when the process exits.
    """
    exe = Path(PYTHON).parent / "py-spy"
    args = [str(exe), "record", "--pid", str(pid), "--rate", "200"]
    args += ["--duration", str(max(1, int(duration))), "--format", "raw", "--threads"]
    args += ["--nonblocking", "--output", str(out)]
    if idle:
        args.append("--idle")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish_py_spy(procs: Sequence[Any], *, timeout: float) -> None:
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None, *, duration: float) -> Iterator[None]:
    """Sample ``pid`` while the block runs, if asked: ``out`` (running threads only) and
    ``out`` with ``-idle`` before the suffix (waiting threads too: locks, I/O, sleeps)."""
    if out is None:
        yield
        return
    procs = [
        start_py_spy(pid, out, duration=duration),
        start_py_spy(
            pid, out.with_name(f"{out.stem}-idle{out.suffix}"), duration=duration, idle=True
        ),
    ]
    try:
        yield
    finally:
        finish_py_spy(procs, timeout=duration + 30)


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _pid_jiffies(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _processes() -> Iterator[tuple[int, int, bytes]]:
    """(pid, parent pid, command line) of every process still there when read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        yield int(entry.name), int(stat.rsplit(")", 1)[1].split()[1]), cmdline


def _descendants(root: int, parents: dict[int, int] | None = None) -> set[int]:
    """The processes below ``root`` (children, their children...), not ``root`` itself."""
    if parents is None:
        parents = {pid: parent for pid, parent, _ in _processes()}
    found: set[int] = set()
    for pid in parents:
        p, hops = parents.get(pid, 0), 0
        while p and hops < 64:
            if p == root:
                found.add(pid)
                break
            p, hops = parents.get(p, 0), hops + 1
    return found


def _bench_pids(root: int | None = None) -> set[int]:
    """The bench's processes: ``root`` (default: this one), its descendants, and the
    PostgreSQL backends serving bench_* databases."""
    parents: dict[int, int] = {}
    mine: set[int] = set()
    for pid, parent, cmdline in _processes():
        parents[pid] = parent
        if b"postgres" in cmdline and b" bench_" in cmdline:
            mine.add(pid)
    root = root or os.getpid()
    return mine | {root} | _descendants(root, parents)


class CpuWatch:
    """How much CPU the rest of the machine used while a measurement ran.

    Other work on a shared machine (a test suite, another bench) takes CPU from the
    figures; this reports it, in CPUs' worth, beside them. A thread looks at the bench's
    processes every half second so short-lived ones (the load generator) are counted too.
    """

    def __init__(self, interval: float = 0.5, *, root: int | None = None) -> None:
        self.root = root
        self.busy0, _ = _busy_jiffies()
        self.t0 = time.monotonic()
        self.first: dict[int, int] = {pid: _pid_jiffies(pid) for pid in _bench_pids(root)}
        self.last: dict[int, int] = dict(self.first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for pid in _bench_pids(self.root):
            jiffies = _pid_jiffies(pid)
            self.first.setdefault(pid, 0)
            self.last[pid] = max(self.last.get(pid, 0), jiffies)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        busy1, _ = _busy_jiffies()
        wall = max(time.monotonic() - self.t0, 1e-9)
        ticks = os.sysconf("SC_CLK_TCK")
        mine = sum(max(0, self.last[pid] - self.first[pid]) for pid in self.last)
        busy = busy1 - self.busy0
        return {
            "machine_busy_cpus": busy / ticks / wall,
            "bench_cpus": mine / ticks / wall,
            "other_cpus": max(0.0, (busy - mine) / ticks / wall),
            "loadavg_1m": os.getloadavg()[0],
        }


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


# --------------------------------------------------------------------------- tables


@dataclass
class Row:
    figure: str
    value: float | None
    unit: str
    ceiling: float | None = None
    ceiling_label: str = ""
    goal: str = ""
    passed: bool | None = None  # None: informational
    ratio: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "ms":
        text = f"{value:.1f}"
    elif unit == "s":
        text = f"{value:.3f}"
    elif unit == "x":
        return f"{value:.2f}x"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def render_table(title: str, rows: Sequence[Row], footer: Sequence[str] = ()) -> str:
    header = ("figure", "measured", "ceiling", "ratio", "goal", "result")
    body = []
    for row in rows:
        ratio = row.ratio
        if ratio is None and row.value is not None and row.ceiling:
            ratio = row.value / row.ceiling
        ceiling = fmt(row.ceiling, row.unit) if row.ceiling is not None else "-"
        if row.ceiling_label:
            ceiling = f"{ceiling} ({row.ceiling_label})"
        verdict = "info" if row.passed is None else ("PASS" if row.passed else "MISS")
        body.append(
            (
                row.figure,
                fmt(row.value, row.unit),
                ceiling,
                f"{ratio:.2f}x" if ratio is not None else "-",
                row.goal or "-",
                verdict,
            )
        )
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    sep = "+-" + "-+-".join("-" * w for w in widths) + "-+"

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [title, sep, line(header), sep, *(line(r) for r in body), sep]
    notes = [f"  * {row.figure}: {row.note}" for row in rows if row.note]
    return "\n".join(out + notes + [f"  {line}" for line in footer])


def interference_line(watches: Sequence[dict[str, float] | None]) -> str:
    """One line on what else ran on the machine during the measurements."""
    seen = [w for w in watches if w]
    if not seen:
        return ""
    other = [w["other_cpus"] for w in seen]
    return (
        f"other processes on this machine used {sum(other) / len(other):.2f} CPUs on average "
        f"(worst phase {max(other):.2f}) of {os.cpu_count()} during these measurements"
    )


def machine_line() -> str:
    cpus = len(os.sched_getaffinity(0))
    model = ""
    with contextlib.suppress(OSError):
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                model = text_line.split(":", 1)[1].strip()
                break
    return f"{cpus} CPUs ({model}), Python {sys.version.split()[0]}"


def _reference_work() -> int:
    """Plain Python of the kinds parley's own code spends its time in: calls, attribute
    and dict reads, small string building. Fixed, so its time measures the machine."""
    rows = [{"id": i, "name": f"n{i}", "total": i * 3} for i in range(2_000)]
    seen: dict[str, int] = {}
    for _ in range(10):
        for row in rows:
            key = row["name"] + ":" + str(row["id"] % 97)
            seen[key] = seen.get(key, 0) + row["total"]
    return len(seen)


def python_speed(trials: int = 7) -> tuple[float, float]:
    """The fastest and slowest of ``trials`` timings, in ms of CPU, of one fixed piece
    of Python. CPU figures (ms a delivery, a job) from machines or moments whose
    reference times differ are not comparable as they stand: divide by the ratio."""
    times = []
    for _ in range(trials):
        start = time.process_time()
        _reference_work()
        times.append(1000 * (time.process_time() - start))
    return min(times), max(times)


def speed_line() -> str:
    fastest, slowest = python_speed()
    return f"reference Python work: {fastest:.1f} ms of CPU (slowest of 7 trials {slowest:.1f})"


def bench_parser(description: str) -> argparse.ArgumentParser:
    """The options every bench takes: the engine, where its data lives, where it reports."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL, help="admin connection")
    p.add_argument("--workdir", default=None)
    p.add_argument("--keep", action="store_true", help="keep the bench databases")
    p.add_argument("--json", default=None, help="write the results here")
    return p


def report(opts: argparse.Namespace, result: dict[str, Any], table: Any) -> None:
    """Print a bench's table and write its JSON, stamped with this machine."""
    result["machine"] = machine_line()
    print(table(result))
    write_json(opts.json, result)


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))


def count_rows(url: str, sql: str) -> int:
    """One number from the database at ``url`` (a bench's before/after check)."""
    from sqlalchemy import text

    from parley.db import Database

    db = Database(url)
    try:
        with db.engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar() or 0)
    finally:
        db.dispose()
