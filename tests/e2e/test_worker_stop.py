"""Stopping the real ``parley worker`` (a subprocess) in the middle of a send.

A deploy stops workers with SIGTERM, a person at a terminal with Ctrl-C (SIGINT). Either
lets the send in flight finish and its answer be recorded before the process exits 0, so
no message is left ``sending`` for the next worker to hold for review. A second signal
ends the process at once. The provider is a local stand-in for Twilio that answers a
send only after a few seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from e2e.demo_server import _clean_environment, _free_ports, parley_command
from parley.db import Database
from parley.jobs.models import Job, JobStatus
from parley.messaging.models import Message, MessageStatus
from support import deliveries, post, rows, seed

ANSWER_AFTER_SECONDS = 3.0
SID = "SM0123456789abcdef0123456789abcdef"


class SlowTwilio(ThreadingHTTPServer):
    """Twilio's Messages API answering each send after ``ANSWER_AFTER_SECONDS``; anything
    else is 404 at once. ``received`` is set as a send arrives."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received = threading.Event()
        self.sends = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: SlowTwilio

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.endswith("/Messages.json"):
            self.send_error(404)
            return
        self.server.sends += 1
        self.server.received.set()
        time.sleep(ANSWER_AFTER_SECONDS)
        body = json.dumps({"sid": SID, "status": "queued"}).encode()
        try:
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the worker was made to stop at once and hung up

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def twilio() -> Iterator[SlowTwilio]:
    server = SlowTwilio()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _start_worker(
    db: Database, tmp_path: Path, twilio: SlowTwilio, assistant_model_dir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """``parley worker`` against the test's database, sending SMS to ``twilio``; the
    other providers point at a port nothing listens on."""
    [nowhere] = _free_ports(1)
    env = {
        **_clean_environment(),
        "PYTHONUNBUFFERED": "1",
        "PARLEY_DATABASE_URL": db.url,
        "PARLEY_ASSISTANT_MODEL_DIR": str(assistant_model_dir),
        "PARLEY_TWILIO_BASE_URL": twilio.url,
        "PARLEY_WHATSAPP_BASE_URL": f"http://127.0.0.1:{nowhere}",
        "PARLEY_INSTAGRAM_BASE_URL": f"http://127.0.0.1:{nowhere}",
        "PARLEY_SMTP_HOST": "127.0.0.1",
        "PARLEY_SMTP_PORT": str(nowhere),
        "PARLEY_EMAIL_DOMAIN_CHECK": "false",
        "PARLEY_PROVIDER_TIMEOUT_SECONDS": "10",
    }
    stderr_path = tmp_path / "parley-worker.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*parley_command(), "worker"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return process, stderr_path


def _an_sms_to_send(db: Database) -> None:
    """Grace's order is dispatched: the store's journey texts her."""
    seed(db)
    _placed, dispatched, *_ = deliveries("Grace")
    post(db, dispatched)
    [job] = rows(db, Job)
    assert (job.kind, job.status) == ("journeys.advance", JobStatus.PENDING)


def _wait_for_the_send(process: subprocess.Popen[bytes], twilio: SlowTwilio) -> None:
    deadline = time.monotonic() + 30
    while not twilio.received.wait(0.05):
        assert process.poll() is None, f"parley worker exited ({process.returncode})"
        assert time.monotonic() < deadline, "parley worker never sent the SMS"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_signal",
    [
        pytest.param(signal.SIGTERM, id="sigterm_case"),
        pytest.param(signal.SIGINT, id="sigint_case"),
    ],
)
def test_a_stop_signal_lets_the_send_in_flight_finish_and_be_recorded_then_exits_0(
    db, tmp_path, twilio, assistant_model_dir, stop_signal
):
    # Given a worker handing an SMS to a provider that takes seconds to answer
    _an_sms_to_send(db)
    process, stderr_path = _start_worker(db, tmp_path, twilio, assistant_model_dir)
    try:
        _wait_for_the_send(process, twilio)

        # When it is told to stop
        signalled = time.monotonic()
        process.send_signal(stop_signal)
        returncode = process.wait(ANSWER_AFTER_SECONDS + 10)
        took = time.monotonic() - signalled
    finally:
        _stop(process)

    # Then it waited for the answer, recorded it, and exited 0
    stderr = stderr_path.read_text()
    assert returncode == 0, stderr
    assert took >= ANSWER_AFTER_SECONDS - 0.5
    assert (
        f"WARNING parley.cli: {stop_signal.name}: finishing the jobs in hand, then stopping "
        f"({stop_signal.name} again to stop now)"
    ) in stderr
    assert "Traceback" not in stderr
    [message] = rows(db, Message)
    assert (message.channel, message.status, message.provider_message_id) == (
        "sms",
        MessageStatus.SENT,
        SID,
    )
    [job] = rows(db, Job, Job.kind == "journeys.advance")
    assert (job.status, job.attempts) == (JobStatus.DONE, 1)
    assert twilio.sends == 1


@pytest.mark.slow
def test_a_second_stop_signal_ends_the_worker_at_once(db, tmp_path, twilio, assistant_model_dir):
    _an_sms_to_send(db)
    process, stderr_path = _start_worker(db, tmp_path, twilio, assistant_model_dir)
    try:
        _wait_for_the_send(process, twilio)
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while "finishing the jobs in hand" not in stderr_path.read_text():
            assert time.monotonic() < deadline, "the first SIGTERM was not acknowledged"
            time.sleep(0.05)

        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(5)
        took = time.monotonic() - signalled
    finally:
        _stop(process)

    assert returncode == -signal.SIGTERM
    assert took < ANSWER_AFTER_SECONDS / 2
    # Killed mid-send, as a worker that crashes is: the next worker settles it by its lease.
    [message] = rows(db, Message)
    assert message.status == MessageStatus.SENDING
    [job] = rows(db, Job, Job.kind == "journeys.advance")
    assert job.status == JobStatus.RUNNING
