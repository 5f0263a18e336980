"""The ``parley`` command: its help, ``migrate``, ``workspace create``, ``user create``,
``jobs status``, ``marketing``, ``worker`` and ``serve``.

``--help`` runs the installed console script; the rest run in-process through Typer's
runner with ``PARLEY_DATABASE_URL`` pointing at the test's database.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx2
import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, update
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from parley.accounts.models import AuditEntry, Membership, User
from parley.accounts.passwords import verify_password
from parley.alerts.rules import Thresholds
from parley.alerts.watch import watch
from parley.cli import app
from parley.clock import utc_now
from parley.db import Base
from parley.db.migrate import alembic_config
from parley.db.migrate import migrate as migrate_to
from parley.jobs.models import Job
from parley.journeys.models import Journey
from parley.runtime import GC_YOUNG_THRESHOLD
from parley.sandbox.nameserver import SandboxNameserver
from parley.store_events.models import WebhookDelivery
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import count, deliveries, post, rows, seed

COMMANDS = ("serve", "worker", "migrate", "demo", "simulate", "workspace", "jobs", "marketing")


@pytest.fixture
def run(monkeypatch, tmp_path):
    """Invoke ``parley`` in-process from an empty directory (no stray .env)."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(database_url: str, *args: str, input: str | None = None):
        monkeypatch.setenv("PARLEY_DATABASE_URL", database_url)
        return runner.invoke(app, list(args), input=input)

    return invoke


def _help_commands(text: str) -> set[str]:
    return {name for name in COMMANDS if re.search(rf"^\W*{name}\b", text, re.MULTILINE)}


def test_help_lists_every_command():
    script = Path(sys.executable).with_name("parley")
    result = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"},
    )

    assert result.returncode == 0, result.stderr
    assert _help_commands(result.stdout) == set(COMMANDS)


def test_migrate_creates_the_schema_on_a_fresh_sqlite_database(run, tmp_path):
    path = tmp_path / "fresh.db"
    url = f"sqlite:///{path}"

    first = run(url, "migrate")
    second = run(url, "migrate")

    assert (first.exit_code, first.output) == (0, "database is up to date\n")
    assert (second.exit_code, second.output) == (0, "database is up to date\n")
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == {*Base.metadata.tables, "alembic_version"}


def test_workspace_create_prints_its_api_key_once(run, db):
    result = run(db.url, "workspace", "create", "--slug", "acme", "--name", "Acme Outfitters")

    assert result.exit_code == 0, result.output
    match = re.fullmatch(
        r"workspace 'acme' created; API key \(shown once\): (?P<key>[A-Za-z0-9_-]{43})\n",
        result.output,
    )
    assert match is not None, result.output
    key = match["key"]
    assert result.output.count(key) == 1
    with db.transaction() as session:
        found = workspaces.find_by_api_key(session, api_key=key)
        assert (found.slug, found.name, found.timezone) == ("acme", "Acme Outfitters", "UTC")
    [workspace] = rows(db, Workspace)
    assert workspace.api_key_hash != key
    assert count(db, Journey) == 5
    [entry] = rows(db, AuditEntry)
    assert (entry.workspace_id, entry.action, entry.actor_email, entry.detail) == (
        workspace.id,
        "store_created",
        "parley workspace create",
        {"slug": "acme", "api_key_created": True},
    )


def test_workspace_create_with_an_unknown_time_zone_is_refused_and_creates_nothing(run, db):
    result = run(
        db.url,
        "workspace",
        "create",
        "--slug",
        "mars",
        "--name",
        "Mars",
        "--timezone",
        "Mars/Olympus",
    )

    assert (result.exit_code, result.output) == (2, "error: unknown time zone 'Mars/Olympus'\n")
    assert count(db, Workspace) == 0


def test_workspace_create_with_a_slug_no_webhook_address_can_name_creates_nothing(run, db):
    result = run(db.url, "workspace", "create", "--slug", "acme/eu", "--name", "Acme EU")

    assert result.exit_code == 2
    assert result.output.startswith("error: a store's slug is 1 to 64 lowercase letters")
    assert count(db, Workspace) == 0


def test_workspace_create_twice_keeps_the_first(run, db):
    first = run(db.url, "workspace", "create", "--slug", "acme", "--name", "Acme")
    second = run(db.url, "workspace", "create", "--slug", "acme", "--name", "Acme again")

    assert first.exit_code == 0
    assert second.exit_code != 0
    assert "API key" not in second.output
    assert [w.name for w in rows(db, Workspace)] == ["Acme"]


FIRST_PASSWORD = "correct horse battery"


def _typed_twice(password: str) -> str:
    """The prompt asks for the password and then for its confirmation."""
    return f"{password}\n{password}\n"


def test_user_create_makes_the_first_admin_of_one_workspace(run, db):
    run(db.url, "workspace", "create", "--slug", "acme", "--name", "Acme")
    run(db.url, "workspace", "create", "--slug", "other", "--name", "Other")
    [acme, _other] = rows(db, Workspace)

    result = run(
        db.url,
        *("user", "create", "--workspace", "acme", "--email", "ada@acme.test", "--name", "Ada"),
        input=_typed_twice(FIRST_PASSWORD),
    )

    assert result.exit_code == 0, result.output
    assert result.output.endswith("admin ada@acme.test can now sign in to 'acme' at /login\n")
    assert FIRST_PASSWORD not in result.output
    [user] = rows(db, User)
    assert (user.email, user.name) == ("ada@acme.test", "Ada")
    assert user.password_hash.startswith("$argon2id$")
    assert FIRST_PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, FIRST_PASSWORD).ok
    assert [(m.workspace_id, m.user_id, m.role) for m in rows(db, Membership)] == [
        (acme.id, user.id, "admin")
    ]


def test_user_create_with_a_taken_email_is_refused_and_changes_nothing(run, db):
    run(db.url, "workspace", "create", "--slug", "acme", "--name", "Acme")
    create = ("user", "create", "--workspace", "acme", "--email", "ada@acme.test")
    first = run(db.url, *create, "--name", "Ada", input=_typed_twice(FIRST_PASSWORD))
    assert first.exit_code == 0, first.output
    [before] = rows(db, User)
    audit_entries = count(db, AuditEntry)

    second = run(db.url, *create, "--name", "Impostor", input=_typed_twice("another password"))

    assert second.exit_code == 1
    assert second.stderr == "error: a user with the email ada@acme.test already exists\n"
    assert "can now sign in" not in second.output
    [after] = rows(db, User)
    assert (after.id, after.name, after.password_hash) == (
        before.id,
        "Ada",
        before.password_hash,
    )
    assert [(m.user_id, m.role) for m in rows(db, Membership)] == [(before.id, "admin")]
    assert count(db, AuditEntry) == audit_entries


def test_jobs_status_prints_counts_as_json(run, db):
    assert json.loads(run(db.url, "jobs", "status").output) == {}
    seed(db)
    post(db, deliveries("Ada")[0])
    post(db, deliveries("Grace", order_id=502, number=1502)[0])

    result = run(db.url, "jobs", "status")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"pending": 2}
    assert count(db, Job) == 2


def test_jobs_backlog_shows_what_is_due_how_late_and_which_alerts_fire(run, db, frozen_clock):
    seed(db)
    for n in range(3):
        post(db, deliveries("Ada", order_id=700 + n, number=1700 + n)[0])
    frozen_clock.advance(timedelta(minutes=4))
    with db.transaction() as session:
        [changed] = watch(session, Thresholds(), now=utc_now(), notify=False)

    result = run(db.url, "jobs", "backlog")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "lanes": {
            "transactional": {
                "due": 3,
                "stores": 1,
                "late_seconds": 240.0,
                "longest_waiting_store": "demo",
            },
            "marketing": {
                "due": 0,
                "stores": 0,
                "late_seconds": 0.0,
                "longest_waiting_store": None,
            },
        },
        "lease_expired": 0,
        "dead_letter": {},
        "alerts": {
            "late:transactional": {
                "firing_since": utc_now().isoformat(),
                "summary": changed.summary,
            }
        },
    }


def test_jobs_sweep_deletes_what_is_past_its_retention_now(run, db, frozen_clock, monkeypatch):
    seed(db)
    for delivery in deliveries("Ada"):
        post(db, delivery)
    young = deliveries("Grace", order_id=502, number=1502)[0]
    frozen_clock.advance(timedelta(days=2))
    post(db, young)
    frozen_clock.advance(timedelta(days=1, seconds=1))

    result = run(db.url, "jobs", "sweep")
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 0 raw deliveries and 0 finished jobs\n"

    monkeypatch.setenv("PARLEY_WEBHOOK_RETENTION_DAYS", "3")
    result = run(db.url, "jobs", "sweep")
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 4 raw deliveries and 0 finished jobs\n"
    [kept] = rows(db, WebhookDelivery)
    assert kept.received_at == utc_now() - timedelta(days=1, seconds=1)


def _dead_jobs(db, how_many: int) -> list[int]:
    seed(db)
    for n in range(how_many):
        post(db, deliveries("Ada", order_id=501 + n, number=1501 + n)[0])
    with db.transaction() as session:
        session.execute(update(Job).values(status="dead", attempts=8, last_error="gave up: 503"))
    return [job.id for job in rows(db, Job)]


def test_jobs_dead_lists_and_jobs_retry_re_drives_the_named_jobs(run, db):
    first, second = _dead_jobs(db, 2)

    listed = run(db.url, "jobs", "dead")
    assert listed.exit_code == 0, listed.output
    assert sorted(listed.output.splitlines()) == [
        f"{first} journeys.advance dead attempts=8 gave up: 503",
        f"{second} journeys.advance dead attempts=8 gave up: 503",
    ]

    result = run(db.url, "jobs", "retry", str(first))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{first} journeys.advance re-driven (re-drive 1)",
        "1 jobs re-driven, due now: a running worker takes them",
    ]
    assert {job.id: job.status for job in rows(db, Job)} == {first: "pending", second: "dead"}


def test_jobs_retry_all_re_drives_the_whole_dead_letter(run, db):
    ids = _dead_jobs(db, 3)

    result = run(db.url, "jobs", "retry", "--all")

    assert result.exit_code == 0, result.output
    last = result.output.splitlines()[-1]
    assert last == "3 jobs re-driven, due now: a running worker takes them"
    assert {job.id: job.status for job in rows(db, Job)} == dict.fromkeys(ids, "pending")


def test_jobs_retry_refuses_a_job_outside_the_dead_letter_and_exits_non_zero(run, db):
    [job_id] = _dead_jobs(db, 1)
    with db.transaction() as session:
        session.execute(update(Job).values(status="done"))

    result = run(db.url, "jobs", "retry", str(job_id), "404")

    assert result.exit_code == 1
    assert f"error: job {job_id} is done: only dead or failed jobs are re-driven" in result.output
    assert "error: no job 404" in result.output
    assert rows(db, Job)[0].status == "done"


def test_jobs_retry_wants_job_ids_or_all(run, db):
    result = run(db.url, "jobs", "retry")
    assert result.exit_code == 2
    assert "name the jobs to retry, or pass --all" in result.output


def test_marketing_pause_and_resume_from_the_command_line_are_audited_as_the_cli(
    run, db, frozen_clock
):
    seed(db)

    paused = run(db.url, "marketing", "pause", "--workspace", "demo")
    again = run(db.url, "marketing", "pause", "--workspace", "demo")
    resumed = run(db.url, "marketing", "resume", "--workspace", "demo")

    assert paused.exit_code == 0, paused.output
    assert json.loads(paused.output)["paused"] == {
        "since": utc_now().isoformat(),
        "by": "parley marketing pause",
    }
    assert again.exit_code == 0, again.output
    assert json.loads(resumed.output) == {"paused": None, "rate": None, "waiting": []}
    entries = rows(db, AuditEntry, AuditEntry.action.like("marketing_%"))
    assert [(e.action, e.actor_email) for e in entries] == [
        ("marketing_paused", "parley marketing pause"),
        ("marketing_resumed", "parley marketing resume"),
    ]


def test_marketing_rate_sets_and_lifts_the_rate_and_refuses_a_bad_one(run, db):
    seed(db)

    set_ = run(db.url, "marketing", "rate", "--workspace", "demo", "2,500")
    refused = run(db.url, "marketing", "rate", "--workspace", "demo", "lots")
    status = run(db.url, "marketing", "status", "--workspace", "demo")
    lifted = run(db.url, "marketing", "rate", "--workspace", "demo", "0")

    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output)["rate"] == {"per_hour": 2500}
    assert refused.exit_code == 1
    assert "error: marketing rate: enter a whole number of messages an hour" in refused.output
    assert json.loads(status.output)["rate"] == {"per_hour": 2500}
    assert json.loads(lifted.output)["rate"] is None
    entries = rows(db, AuditEntry, AuditEntry.action == "marketing_rate_changed")
    assert [(e.actor_email, e.detail["to"]) for e in entries] == [
        ("parley marketing rate", 2500),
        ("parley marketing rate", None),
    ]


def test_marketing_for_an_unknown_workspace_exits_non_zero(run, db):
    seed(db)

    result = run(db.url, "marketing", "pause", "--workspace", "nope")

    assert result.exit_code == 1
    assert "error: workspace 'nope' not found" in result.output
    assert rows(db, AuditEntry, AuditEntry.action.like("marketing_%")) == []


def test_worker_sets_the_collector_up_for_a_long_running_process(run, db):
    before = gc.get_threshold()
    try:
        result = run(db.url, "worker", "--drain")

        assert result.exit_code == 0, result.output
        assert result.output.strip() == "drained 0 jobs"
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_serve_refuses_several_processes_with_the_sandbox(run, tmp_path):
    os.environ["PARLEY_SANDBOX"] = "1"
    try:
        result = run(f"sqlite:///{tmp_path / 'p.db'}", "serve", "--workers", "2")
    finally:
        del os.environ["PARLEY_SANDBOX"]
    assert result.exit_code == 1
    assert "the sandbox runs in one process" in result.output


def test_serve_with_two_workers_migrates_once_and_answers(tmp_path):
    port = _free_port()
    script = Path(sys.executable).with_name("parley")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")},
        "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PARLEY_PORT": str(port),
    }
    server = subprocess.Popen(
        [str(script), "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _wait_healthy(port, seconds=30), "server did not become healthy"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert output.count("Started server process") == 2
    assert "Context impl" not in output  # the children did not migrate: the parent had
    version = (
        create_engine(env["PARLEY_DATABASE_URL"])
        .connect()
        .exec_driver_sql("SELECT version_num FROM alembic_version")
    )
    head = ScriptDirectory.from_config(
        alembic_config(env["PARLEY_DATABASE_URL"])
    ).get_current_head()
    assert version.scalar_one() == head


def _serve_two_processes(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")},
        "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PARLEY_PORT": str(port),
    }
    script = Path(sys.executable).with_name("parley")
    return subprocess.Popen(
        [str(script), "serve", "--workers", "2", "--no-worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _server_processes(parent: int) -> set[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {
        int(pid)
        for pid in children
        if "multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_text()
        and "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()
    }


ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them


def _sockets_held(pid: int, port: int, state: str) -> int:
    """This process's TCP sockets on local ``port`` in ``state``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held += os.readlink(fd) in inodes
        except FileNotFoundError:
            continue
    return held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads on Linux")
def test_serve_processes_share_connections_opened_all_at_once(tmp_path):
    port = _free_port()
    server = _serve_two_processes(tmp_path, port)
    clients: list[socket.socket] = []
    try:
        assert _wait_healthy(port, seconds=30), "server did not become healthy"
        processes = _server_processes(server.pid)
        assert len(processes) == 2
        # Each process listens once its app has started; wait for both.
        assert _eventually(lambda: all(_sockets_held(p, port, LISTEN) for p in processes))
        # A burst, as a proxy's upstream pool or the ingest bench opens it: every
        # connection is queued before either process accepts one. With one shared
        # socket, the first process to wake takes them all.
        for pid in processes:
            os.kill(pid, signal.SIGSTOP)
        try:
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        finally:
            for pid in processes:
                os.kill(pid, signal.SIGCONT)
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
        for client in clients:
            assert client.recv(64).startswith(b"HTTP/1.1 200")
        held = {pid: _sockets_held(pid, port, ESTABLISHED) for pid in processes}
    finally:
        for client in clients:
            client.close()
        server.terminate()
        server.communicate(timeout=30)
    assert sum(held.values()) == 32
    assert all(count > 0 for count in held.values()), held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads on Linux")
def test_serve_starts_another_process_when_one_dies(tmp_path):
    port = _free_port()
    server = _serve_two_processes(tmp_path, port)
    try:
        assert _wait_healthy(port, seconds=30), "server did not become healthy"
        first = _server_processes(server.pid)
        assert _eventually(lambda: all(_sockets_held(p, port, LISTEN) for p in first))
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        listening: set[int] = set()

        def replaced() -> bool:
            nonlocal listening
            now = _server_processes(server.pid)
            listening = {pid for pid in now if _sockets_held(pid, port, LISTEN)}
            return len(listening) == 2 and killed not in listening

        assert _eventually(replaced), listening
        assert _wait_healthy(port, seconds=30)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert f"server process {killed} exited with -9; starting another" in output
    assert output.count("Started server process") == 3


def test_serve_with_several_processes_says_when_the_port_is_taken(run, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        os.environ["PARLEY_PORT"] = str(port)
        try:
            result = run(f"sqlite:///{tmp_path / 'p.db'}", "serve", "--workers", "2")
        finally:
            del os.environ["PARLEY_PORT"]
    assert result.exit_code == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.output


def _eventually(check: Callable[[], bool], *, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(port: int, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return True
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    return False


def test_workspace_connect_adds_a_provider_account_whose_webhooks_then_verify(db, monkeypatch):
    from typer.testing import CliRunner

    from parley.cli import app
    from parley.workspaces.models import ChannelAccount
    from support import rows, seed

    seed(db)
    monkeypatch.setenv("PARLEY_DATABASE_URL", db.url)
    runner = CliRunner()
    args = ["workspace", "connect", "--slug", "demo", "--provider", "twilio"]
    missing = runner.invoke(app, [*args, "--address", "+15550001111", "--secret", "x=y"])
    assert missing.exit_code == 2
    assert "needs --secret auth_token=" in missing.output
    ok = runner.invoke(app, [*args, "--address", "+15550001111", "--secret", "auth_token=t0k"])
    assert ok.exit_code == 0, ok.output
    assert "POST /webhooks/twilio/demo" in ok.output
    (account,) = rows(db, ChannelAccount, ChannelAccount.address == "+15550001111")
    assert (account.channel, account.secrets) == ("sms", {"auth_token": "t0k"})
    again = runner.invoke(app, [*args, "--address", "+15550001111", "--secret", "auth_token=x"])
    assert again.exit_code == 1
    assert "already connected" in again.output


def test_workspace_connect_with_a_sending_field_makes_the_store_send_from_that_account(
    db, monkeypatch
):
    from typer.testing import CliRunner

    from parley.channels.base import ChannelKind
    from parley.cli import app
    from parley.messaging.senders import sending_accounts
    from parley.workspaces.models import ChannelAccount
    from support import rows, seed

    store = seed(db)
    monkeypatch.setenv("PARLEY_DATABASE_URL", db.url)
    runner = CliRunner()
    args = ["workspace", "connect", "--slug", "demo", "--provider", "twilio"]
    args += ["--address", "+15550001111", "--secret", "auth_token=t0k"]
    sid = "AC0123456789abcdef0123456789abcdef"

    malformed = runner.invoke(app, [*args, "--secret", "account_sid=AC-nope"])
    assert malformed.exit_code == 2
    assert "account_sid must be AC and 32 hexadecimal digits" in malformed.output
    assert rows(db, ChannelAccount, ChannelAccount.address == "+15550001111") == []

    ok = runner.invoke(app, [*args, "--secret", f"account_sid={sid}"])
    assert ok.exit_code == 0, ok.output
    (account,) = rows(db, ChannelAccount, ChannelAccount.address == "+15550001111")
    assert account.secrets == {"auth_token": "t0k", "account_sid": sid}
    with db.transaction() as session:
        sends = sending_accounts(session, [store])[store]
    assert sends[ChannelKind.SMS].address == "+15550001111"


@pytest.fixture
def nameserver() -> Iterator[SandboxNameserver]:
    """The sandbox's nameserver on a loop of its own, as the CLI reads DNS with its own."""
    loop = asyncio.new_event_loop()
    server = SandboxNameserver({}, port=0)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=5)
    yield server
    loop.call_soon_threadsafe(server.stop)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def test_a_stores_own_email_address_is_set_and_checked_from_the_command_line(
    db, run, nameserver, monkeypatch
):
    from parley.channels.base import ChannelKind
    from parley.messaging.senders import sending_accounts

    store = seed(db)
    monkeypatch.setenv("PARLEY_DNS_NAMESERVERS", f"127.0.0.1:{nameserver.port}")
    check = ("providers", "check", "email", "--workspace", "demo")
    none_yet = run(db.url, *check)
    saved = run(
        db.url, "workspace", "email-sender", "--slug", "demo",
        "--address", "orders@north.example", "--dkim-selector", "s1",
    )  # fmt: skip
    token = re.search(r'north\.example TXT "parley-verification=([^"]+)"', saved.output)
    assert token, saved.output
    unpublished = run(db.url, *check)
    nameserver.zone.update(
        {
            "north.example": ["v=spf1 ip4:127.0.0.1 -all", f"parley-verification={token[1]}"],
            "s1._domainkey.north.example": ["v=DKIM1; k=rsa; p=MIIB"],
            "_dmarc.north.example": ["v=DMARC1; p=none"],
        }
    )
    published = run(db.url, *check)

    assert none_yet.exit_code == 0
    assert "'demo' sends from the deployment's accounts" in none_yet.output
    assert saved.exit_code == 0, saved.output
    assert unpublished.exit_code == 1
    assert (
        "email      FAILED  email goes from the deployment's address until "
        f'orders@north.example is ready: no TXT record "parley-verification={token[1]}" '
        "at north.example"
    ) in unpublished.output
    assert published.exit_code == 0, published.output
    assert published.output == (
        "email      ok      email goes from orders@north.example: "
        "north.example is this store's and set up\n"
    )
    with db.transaction() as session:
        sends = sending_accounts(session, [store])[store]
    assert sends[ChannelKind.EMAIL].address == "orders@north.example"


def test_a_malformed_own_email_address_is_refused_and_remove_goes_back(db, run):
    store = seed(db)
    base = ("workspace", "email-sender", "--slug", "demo")

    malformed = run(db.url, *base, "--address", "orders@localhost")
    unknown = run(db.url, "workspace", "email-sender", "--slug", "nope", "--address", "a@b.example")
    neither = run(db.url, *base)
    set_ = run(db.url, *base, "--address", "orders@north.example")
    removed = run(db.url, *base, "--remove")

    assert (malformed.exit_code, unknown.exit_code, neither.exit_code) == (2, 1, 2)
    assert "enter the address to send from, on your own domain" in malformed.output
    assert "give --address, or --remove" in neither.output
    assert (set_.exit_code, removed.exit_code) == (0, 0)
    assert "'demo' sends email from the deployment's address" in removed.output
    (workspace,) = rows(db, Workspace, Workspace.id == store)
    assert "email_sender" not in workspace.settings


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database no ``parley migrate`` has touched, on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    from conftest import POSTGRES_PROBLEM, POSTGRES_URL

    if POSTGRES_PROBLEM is not None:
        pytest.skip(POSTGRES_PROBLEM)
    url = make_url(POSTGRES_URL)
    admin = {"host": url.host, "port": url.port or 5432, "user": url.username}
    name = f"parley_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**admin, password=url.password, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin, password=url.password, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _where(url: str) -> str:
    found = make_url(url)
    if found.drivername.startswith("sqlite"):
        return str(found.database)
    return f"{found.host}:{found.port or 5432}/{found.database}"


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_worker_and_serve_refuse_a_database_never_migrated_in_one_line(
    run, empty_database, command, monkeypatch
):
    # SQLite is migrated by serve itself unless that is turned off.
    monkeypatch.setenv("PARLEY_MIGRATE_ON_START", "false")

    result = run(empty_database, command)

    assert result.exit_code == 1
    assert result.output == (
        f"error: the database at {_where(empty_database)} is not migrated "
        f"(at no revision, code expects {_head(empty_database)}): run `parley migrate`\n"
    )
    engine = create_engine(empty_database)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "status"],
        ["jobs", "backlog"],
        ["jobs", "dead"],
        ["jobs", "sweep"],
        ["jobs", "retry", "--all"],
        ["marketing", "status", "--workspace", "demo"],
        ["workspace", "create", "--slug", "shop", "--name", "Shop"],
        ["workspace", "email-sender", "--slug", "demo", "--remove"],
        ["user", "create", "--workspace", "demo", "--email", "a@b.test", "--password", "pw"],
        [
            "workspace",
            "connect",
            "--slug",
            "demo",
            "--provider",
            "twilio",
            "--address",
            "+15550001111",
            "--secret",
            "auth_token=t",
        ],
        ["providers", "check", "--workspace", "demo"],
    ],
    ids=lambda command: "_".join(part.strip("-") for part in command[:2]),
)
def test_commands_on_a_database_never_migrated_say_so_in_one_line_and_touch_nothing(
    run, empty_database, command
):
    result = run(empty_database, *command)

    assert (result.exit_code, result.output) == (
        1,
        f"error: the database at {_where(empty_database)} is not migrated "
        f"(at no revision, code expects {_head(empty_database)}): run `parley migrate`\n",
    )
    engine = create_engine(empty_database)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_assistant_train_from_a_workspace_on_a_database_never_migrated_says_so(
    run, empty_database, tmp_path
):
    result = run(
        empty_database, "assistant", "train", "--workspace", "demo", "--model-dir", str(tmp_path)
    )

    assert (result.exit_code, result.output) == (
        1,
        f"error: the database at {_where(empty_database)} is not migrated "
        f"(at no revision, code expects {_head(empty_database)}): run `parley migrate`\n",
    )


def test_worker_names_the_revision_a_database_behind_the_code_is_at(run, tmp_path):
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_revision(_head(url))
    assert isinstance(head.down_revision, str)
    migrate_to(url, head.down_revision)

    result = run(url, "worker")

    assert result.exit_code == 1
    assert result.output == (
        f"error: the database at {tmp_path / 'behind.db'} is not migrated "
        f"(at revision {head.down_revision}, code expects {head.revision}): "
        "run `parley migrate`\n"
    )


def test_worker_says_in_one_line_when_the_database_cannot_be_reached(run):
    port = _free_port()
    url = f"postgresql://parley:s3cret-password@127.0.0.1:{port}/parley"

    result = run(url, "worker")

    assert result.exit_code == 1
    assert result.output == (
        f"error: cannot reach the database at 127.0.0.1:{port}/parley: connection failed: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused\n'
    )


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        pytest.param(
            "PARLEY_PORT",
            "abc",
            "Input should be a valid integer, unable to parse string as an integer",
            id="port_case",
        ),
        pytest.param(
            "PARLEY_DATABASE_URL",
            "not-a-url",
            "not a database URL; sqlite:///path or postgresql://user:password@host/database",
            id="not_a_url_case",
        ),
        pytest.param(
            "PARLEY_DATABASE_URL",
            "mysql://parley:s3cret-password@db.internal/parley",
            "parley runs on SQLite or PostgreSQL, not mysql; "
            "sqlite:///path or postgresql://user:password@host/database",
            id="mysql_case",
        ),
    ],
)
@pytest.mark.parametrize("command", [["jobs", "status"], ["migrate"], ["worker"]])
def test_a_malformed_setting_is_named_in_one_line_and_exits_2(
    run, tmp_path, monkeypatch, variable, value, said, command
):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    monkeypatch.setenv(variable, value)
    if variable == "PARLEY_DATABASE_URL":
        url = value

    result = run(url, *command)

    assert (result.exit_code, result.output) == (2, f"error: {variable}: {said}\n")
    assert not (tmp_path / "p.db").exists()


def test_a_malformed_database_url_is_named_beside_the_other_malformed_settings(run, monkeypatch):
    monkeypatch.setenv("PARLEY_PORT", "abc")

    result = run("not-a-url", "jobs", "status")

    assert result.exit_code == 2
    assert result.output == (
        "error: PARLEY_DATABASE_URL: not a database URL; "
        "sqlite:///path or postgresql://user:password@host/database\n"
        "error: PARLEY_PORT: Input should be a valid integer, unable to parse string as an "
        "integer\n"
    )


@pytest.mark.parametrize(
    "command",
    [["assistant", "classify"], ["assistant", "train", "--workspace", "demo"]],
    ids=["classify", "train"],
)
def test_assistant_commands_name_a_malformed_setting_in_one_line(
    run, tmp_path, monkeypatch, command
):
    monkeypatch.setenv("PARLEY_PORT", "abc")

    result = run(f"sqlite:///{tmp_path / 'p.db'}", *command, input="hello\n")

    assert (result.exit_code, result.output) == (
        2,
        "error: PARLEY_PORT: Input should be a valid integer, unable to parse string as an "
        "integer\n",
    )
    assert not (tmp_path / "p.db").exists()


def test_every_malformed_setting_is_named_each_on_its_line(run, tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_PORT", "abc")
    monkeypatch.setenv("PARLEY_SQLITE_SYNCHRONOUS", "FULL")

    result = run(f"sqlite:///{tmp_path / 'p.db'}", "jobs", "status")

    assert result.exit_code == 2
    assert result.output == (
        "error: PARLEY_SQLITE_SYNCHRONOUS: Input should be 'full' or 'normal'\n"
        "error: PARLEY_PORT: Input should be a valid integer, unable to parse string as an "
        "integer\n"
    )


def test_simulate_against_a_server_that_is_not_running_says_so_in_one_line(run, tmp_path):
    # Given no parley listening where simulate is pointed
    port = _free_port()

    # When simulate is run against it
    result = run(
        f"sqlite:///{tmp_path / 'p.db'}",
        "simulate",
        "--url",
        f"http://127.0.0.1:{port}",
        "--orders",
        "2",
        "--delay",
        "0",
    )

    # Then it exits 1 with one line naming where it looked, not a traceback
    assert result.exit_code == 1
    assert result.output == (
        f"error: cannot reach parley at http://127.0.0.1:{port}: is it running there? "
        "(start it with `parley demo`)\n"
    )


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        pytest.param(404, '{"error":"unknown workspace \'shop\'"}', id="unknown_workspace_case"),
        pytest.param(401, '{"error":"HMAC signature does not match"}', id="wrong_secret_case"),
    ],
)
def test_simulate_stops_at_the_first_refused_delivery_and_exits_1(
    run, tmp_path, monkeypatch, status, answer
):
    # Given a parley that refuses every delivery (another store's route, another secret)
    posted: list[str] = []

    def refuse(request: httpx2.Request) -> httpx2.Response:
        posted.append(str(request.url))
        return httpx2.Response(status, text=answer)

    real_client = httpx2.Client
    monkeypatch.setattr(
        httpx2,
        "Client",
        lambda **options: real_client(transport=httpx2.MockTransport(refuse), **options),
    )

    # When four orders (sixteen deliveries) are simulated for it
    result = run(
        f"sqlite:///{tmp_path / 'p.db'}",
        "simulate",
        "--url",
        "http://parley.test",
        "--workspace",
        "shop",
        "--orders",
        "4",
        "--delay",
        "0",
    )

    # Then the first refusal ends the run: the others would be refused alike
    assert posted == ["http://parley.test/webhooks/shopify/shop"]
    assert result.exit_code == 1
    first_line = result.output.splitlines()[0]
    assert first_line.endswith(f"→ {status} {answer}")
    assert result.output.splitlines()[1:] == [
        f"error: parley refused the delivery (HTTP {status}): check --workspace and "
        "--secret (PARLEY_DEMO_SHOPIFY_SECRET) name a store that has that Shopify secret"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        pytest.param(
            "PARLEY_LOG_LEVEL",
            "trace",
            "Value error, one of debug, info, warning, error, critical (or warn, fatal)",
            id="unknown_log_level_case",
        ),
        pytest.param(
            "PARLEY_PORT", "80000", "Input should be less than or equal to 65535", id="port_case"
        ),
        pytest.param(
            "PARLEY_WORKER_CONCURRENCY",
            "0",
            "Input should be greater than or equal to 1",
            id="no_concurrency_case",
        ),
        pytest.param(
            "PARLEY_PUBLIC_URL",
            "parley.example.com",
            "Value error, an http(s) URL such as https://parley.example.com, the address "
            "providers and customers reach parley at",
            id="public_url_without_scheme_case",
        ),
    ],
)
def test_a_setting_out_of_range_is_refused_at_start_in_one_line(
    run, tmp_path, monkeypatch, variable, value, said
):
    monkeypatch.setenv(variable, value)

    result = run(f"sqlite:///{tmp_path / 'p.db'}", "worker", "--drain")

    assert (result.exit_code, result.output) == (2, f"error: {variable}: {said}\n")


def test_migrate_says_in_one_line_when_the_database_cannot_be_reached(run):
    port = _free_port()
    url = f"postgresql://parley:s3cret-password@127.0.0.1:{port}/parley"

    result = run(url, "migrate")

    assert result.exit_code == 1
    assert result.output == (
        f"error: cannot reach the database at 127.0.0.1:{port}/parley: connection failed: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused\n'
    )


def test_migrate_refuses_a_database_a_newer_parley_migrated_in_one_line(run, tmp_path):
    # Given a database a later version of parley took to a revision this code lacks
    url = f"sqlite:///{tmp_path / 'ahead.db'}"
    migrate_to(url)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dcafe1234'")
    finally:
        engine.dispose()

    # When migrate is run on it
    result = run(url, "migrate")

    # Then it says so, as worker does, and leaves the database as it found it
    assert (result.exit_code, result.output) == (
        1,
        f"error: the database at {tmp_path / 'ahead.db'} is at revision f00dcafe1234, which "
        f"this version of parley does not know (it expects {_head(url)}): run the version "
        "that migrated it\n",
    )


def test_serve_refuses_a_sqlite_database_a_newer_parley_migrated_in_one_line(
    run, tmp_path, monkeypatch
):
    # Given a SQLite database a later version of parley migrated (a deploy rolled back)
    url = f"sqlite:///{tmp_path / 'ahead.db'}"
    migrate_to(url)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dcafe1234'")
    finally:
        engine.dispose()
    monkeypatch.setenv("PARLEY_PORT", str(_free_port()))

    # When serve starts on it, migrating on start as it does by default
    result = run(url, "serve")

    # Then it says why in one line and exits 1, before any server starts
    assert (result.exit_code, result.output) == (
        1,
        f"error: the database at {tmp_path / 'ahead.db'} is at revision f00dcafe1234, which "
        f"this version of parley does not know (it expects {_head(url)}): run the version "
        "that migrated it\n",
    )


def test_demo_names_its_database_without_the_password(run, db, monkeypatch):
    # Given a database URL that carries a password, as a PostgreSQL one does
    url = make_url(db.url)
    if url.get_backend_name() == "postgresql":
        url = url.set(username=url.username or getpass.getuser(), password="s3cret-password")
    shown = url.render_as_string(hide_password=False)
    assert "s3cret-password" in shown or url.get_backend_name() == "sqlite"
    served: list[object] = []
    monkeypatch.setattr("parley.cli._serve", served.append)
    monkeypatch.setattr("parley.assistant.classifier.load_classifier", lambda _: None)

    # When the demo seeds it and says where it runs
    result = run(shown, "demo", "--port", str(_free_port()))

    # Then the store is seeded and the database is named by where it is, never its login
    assert result.exit_code == 0, result.output
    assert len(served) == 1
    assert "s3cret-password" not in result.output
    where = _where(shown)
    assert f'parley demo: Juniper & Pine (workspace "demo") on {where}\n' in result.output


@pytest.mark.parametrize("command", [["demo"], ["serve"]])
def test_a_sandbox_whose_smtp_port_is_taken_says_so_in_one_line_before_starting(
    run, tmp_path, monkeypatch, command
):
    # Given a second demo on another web port, its sandbox SMTP port held by the first
    served: list[object] = []
    monkeypatch.setattr("parley.cli._serve", served.append)
    monkeypatch.setattr("parley.assistant.classifier.load_classifier", lambda _: None)
    monkeypatch.setenv("PARLEY_SANDBOX", "true")
    with socket.socket() as first:
        first.bind(("127.0.0.1", 0))
        first.listen()
        taken = first.getsockname()[1]
        monkeypatch.setenv("PARLEY_SANDBOX_SMTP_PORT", str(taken))

        # When it starts
        result = run(f"sqlite:///{tmp_path / 'p.db'}", *command, "--port", str(_free_port()))

    # Then it says which port and which setting, and starts nothing
    assert (result.exit_code, result.output) == (
        1,
        f"error: the sandbox's SMTP server cannot listen on 127.0.0.1:{taken}, it is taken "
        "(another parley demo?): set PARLEY_SANDBOX_SMTP_PORT to a free port\n",
    )
    assert served == []
