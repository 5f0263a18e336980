"""Running the real ``parley demo`` as a subprocess, and talking to it over loopback.

Used by ``conftest.py`` (the fixtures) and the end-to-end tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import or_, select

from parley.clock import utc_now
from parley.db import Database
from parley.jobs.models import Job, JobStatus
from support import API_KEY, SECRET

STARTUP_TIMEOUT_SECONDS = 45.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.05
STDERR_TAIL_CHARS = 20_000


def parley_command() -> list[str]:
    """``parley`` as installed next to this interpreter (``.venv/bin/parley``)."""
    script = Path(sys.executable).with_name("parley")
    if script.exists():
        return [str(script)]
    # parley.cli has no ``__main__`` guard, so ``python -m parley.cli`` would do nothing.
    return [sys.executable, "-c", "from parley.cli import app; app()"]


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now; all sockets stay open until all are chosen."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _clean_environment() -> dict[str, str]:
    """The current environment without any PARLEY_* setting leaking into the server."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PARLEY_")}


@dataclass
class DemoServer:
    """One running ``parley demo`` and ways to talk to it."""

    base_url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    db: Database
    env: dict[str, str]
    http: httpx2.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx2.Client(base_url=self.base_url, timeout=10.0)

    def stderr(self) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return text[-STDERR_TAIL_CHARS:]

    # The sandbox.
    def captured(self, **params: str) -> list[dict[str, Any]]:
        response = self.http.get("/sandbox/api/messages", params=params)
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def inject_fault(self, **fault: Any) -> None:
        response = self.http.post("/sandbox/api/faults", json=fault)
        assert response.status_code == 201, response.text

    # The API, with the demo workspace's key.
    def api(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {API_KEY}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def messages(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/messages")
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def post_webhook(self, delivery: Any) -> httpx2.Response:
        return self.http.post(
            "/webhooks/shopify/demo", content=delivery.body, headers=delivery.headers
        )

    # Waiting, always bounded.
    def wait_for(
        self, condition: Callable[[], Any], *, timeout: float = 15.0, what: str = "condition"
    ) -> Any:
        """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
            if self.process.poll() is not None:
                pytest.fail(f"parley demo exited ({self.process.returncode}) while waiting")
            time.sleep(POLL_SECONDS)

    def is_idle(self) -> bool:
        """No job is running and none is due now.

        Jobs due later (a +24 h wait, a retry's backoff) do not count: wait for what a test
        expects first, then for idleness, so "nothing more is coming" is a fact, not a nap.
        """
        with self.db.transaction() as session:
            busy = session.scalar(
                select(Job.id)
                .where(
                    or_(
                        Job.status == JobStatus.RUNNING,
                        (Job.status == JobStatus.PENDING) & (Job.due_at <= utc_now()),
                    )
                )
                .limit(1)
            )
        return busy is None

    def wait_until_idle(self, *, timeout: float = 15.0) -> None:
        self.wait_for(self.is_idle, timeout=timeout, what="the job queue to be idle")

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SHUTDOWN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def launch(db: Database, workdir: Path, env_overrides: dict[str, str]) -> DemoServer:
    port, smtp_port = _free_ports(2)
    env = {
        **_clean_environment(),
        "PYTHONUNBUFFERED": "1",
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_SANDBOX_SMTP_PORT": str(smtp_port),
        "PARLEY_DATABASE_URL": db.url,
        "PARLEY_DEMO_SHOPIFY_SECRET": SECRET,
        "PARLEY_DEMO_API_KEY": API_KEY,
        **env_overrides,
    }
    stderr_path = workdir / f"parley-demo-{port}.stderr"
    with (
        stderr_path.open("wb") as stderr,
        (workdir / f"parley-demo-{port}.stdout").open("wb") as stdout,
    ):
        # cwd is the test's own directory: no stray .env or var/ from the repository.
        process = subprocess.Popen(
            [*parley_command(), "demo"], cwd=workdir, env=env, stdout=stdout, stderr=stderr
        )
    return DemoServer(
        base_url=f"http://127.0.0.1:{port}",
        process=process,
        stderr_path=stderr_path,
        db=db,
        env=env,
    )


def wait_healthy(server: DemoServer) -> bool:
    """True once /healthz is 200; False if the process died first. Bounded."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if server.http.get("/healthz", timeout=2.0).status_code == 200:
                return True
        except httpx2.HTTPError:
            pass
        time.sleep(POLL_SECONDS)
    server.stop()
    pytest.fail(
        f"parley demo not healthy after {STARTUP_TIMEOUT_SECONDS:g} s; stderr:\n{server.stderr()}"
    )
