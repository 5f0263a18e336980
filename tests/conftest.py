"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, a frozen clock.

Every test that asks for ``db`` runs twice, once per engine. PostgreSQL comes from
``PARLEY_TEST_POSTGRES_URL`` (default: the local server's ``test`` database); each test
session works in a database of its own created there. Without a reachable PostgreSQL
those cases are skipped with a plain reason, except under ``CI=true``, where that is a
failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from parley import clock
from parley.db import Base, Database
from parley.db.migrate import migrate

POSTGRES_URL = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _postgres_problem() -> str | None:
    url = make_url(POSTGRES_URL)
    try:
        psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            dbname=url.database,
            password=url.password,
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {url.host}:{url.port} is not reachable ({exc.__class__.__name__})"
    return None


POSTGRES_PROBLEM = _postgres_problem()


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_PROBLEM is None:
        return f"databases: SQLite and PostgreSQL ({make_url(POSTGRES_URL).host})"
    return f"databases: SQLite only: {POSTGRES_PROBLEM}; PostgreSQL cases are SKIPPED"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from e2e.inbox_browser import CHROMIUM_PROBLEM

    if CHROMIUM_PROBLEM is not None:
        terminalreporter.write_line(f"NOTE: {CHROMIUM_PROBLEM}.", yellow=True, bold=True)
    if POSTGRES_PROBLEM is not None:
        terminalreporter.write_line(
            f"NOTE: {POSTGRES_PROBLEM}: only the SQLite half of the suite ran. "
            "Set PARLEY_TEST_POSTGRES_URL to run the PostgreSQL half.",
            yellow=True,
            bold=True,
        )


def shared_data(relative: str) -> Path:
    """A file from ../shared/data: skipped when absent, a failure under CI."""
    path = SHARED_DATA / relative
    if not path.exists():
        if IN_CI:
            pytest.fail(f"shared data missing in CI: {path}")
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    if POSTGRES_PROBLEM is not None:
        if IN_CI:
            pytest.fail(f"CI=true but {POSTGRES_PROBLEM}")
        pytest.skip(POSTGRES_PROBLEM)
    url = make_url(POSTGRES_URL)
    name = f"parley_test_{uuid.uuid4().hex[:10]}"
    admin = {
        "host": url.host,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
    }
    with psycopg.connect(**admin, dbname=url.database, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    test_url = url.set(database=name).render_as_string(hide_password=False)
    migrate(test_url)
    yield test_url
    with psycopg.connect(**admin, dbname=url.database, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_all(db: Database) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated, empty database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "parley.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
    else:
        database = Database(request.getfixturevalue("postgres_database"))
        _truncate_all(database)
    yield database
    database.dispose()


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    """Time stands still at 2026-03-02 10:00 UTC until a test moves it."""
    frozen = clock.FrozenClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC)).install()
    yield frozen
    clock.reset_clock()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
