"""The real ``parley demo`` as a subprocess, on free ports, against the test's database.

``start_demo(**env)`` launches ``parley demo`` (the console script installed beside the
running interpreter) with ``PARLEY_PORT``, ``PARLEY_SANDBOX_SMTP_PORT`` and
``PARLEY_DATABASE_URL`` set, waits (bounded) until ``GET /healthz`` answers 200, and stops
it at the end of the test: SIGTERM, then SIGKILL. Its database is the ``db`` fixture's, so
every test here runs once on SQLite and once on PostgreSQL; the demo migrates and seeds
that (already migrated, emptied) database itself. When a test fails, the server's stderr
is attached to the failure report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.demo_server import DemoServer, launch, wait_healthy
from e2e.inbox_browser import CHROMIUM_PROBLEM, Chromium, start_chromium
from parley.assistant.classifier import load_shipped_classifier
from parley.db import Database

IN_CI = os.environ.get("CI", "").lower() == "true"

SERVERS = pytest.StashKey[list[DemoServer]]()


@pytest.fixture(scope="session")
def assistant_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped assistant model, built once for every demo this session starts."""
    path = tmp_path_factory.mktemp("assistant")
    load_shipped_classifier(path)
    return path


@pytest.fixture
def start_demo(
    db: Database, tmp_path: Path, request: pytest.FixtureRequest, assistant_model_dir: Path
) -> Iterator[Callable[..., DemoServer]]:
    """Start ``parley demo`` with extra ``PARLEY_*`` settings; stopped after the test."""
    servers = request.node.stash.setdefault(SERVERS, [])

    def start(**env_overrides: str) -> DemoServer:
        env_overrides = {"PARLEY_ASSISTANT_MODEL_DIR": str(assistant_model_dir), **env_overrides}
        for _attempt in range(3):
            server = launch(db, tmp_path, env_overrides)
            servers.append(server)
            if wait_healthy(server):
                return server
            server.stop()
            # Another process may have taken a port between choosing it and binding it.
            if "address already in use" not in server.stderr().lower():
                break
        pytest.fail(f"parley demo exited during startup; stderr:\n{server.stderr()}")

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def demo(start_demo: Callable[..., DemoServer]) -> DemoServer:
    """The demo with default settings (and a short backoff, so retries are quick)."""
    return start_demo(PARLEY_JOB_BACKOFF_BASE_SECONDS="0.2")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """Debian's chromium under Playwright, once per module; skipped when absent (a failure
    under ``CI=true``, where ``.ci/run`` installs it).

    Not session-wide: Playwright's sync API keeps an event loop running on the main thread
    while it is open, and later tests that call ``asyncio.run`` would fail.
    """
    if CHROMIUM_PROBLEM is not None:
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM_PROBLEM}")
        pytest.skip(CHROMIUM_PROBLEM)
    with start_chromium() as browser:
        yield browser


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append(
                (f"parley demo stderr ({server.base_url}, {report.when})", server.stderr())
            )
