"""Running Alembic migrations from code (``parley migrate``, ``parley serve`` on SQLite),
and checking a database is migrated before a process runs on it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

from parley.db.engine import describe, normalise_url

MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT_SECONDS = 10


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database schema to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def schema_problem(database_url: str) -> str | None:
    """Why this code cannot run on the database at ``database_url``, or None when it can.

    ``parley worker`` and ``parley serve`` ask at start: on a schema that is missing or
    behind, every round of a worker fails with a traceback, and it never says why. The
    database is named by host and name (or SQLite's file), never by its credentials.
    """
    where = describe(database_url)
    url = normalise_url(database_url)
    script = ScriptDirectory.from_config(alembic_config(database_url))
    head = script.get_current_head()
    connect_args = {} if url.startswith("sqlite") else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
        return f"cannot reach the database at {where}: {reason}"
    finally:
        engine.dispose()
    if current == head:
        return None
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        return (
            f"the database at {where} is at revision {current}, which this version of parley "
            f"does not know (it expects {head}): run the version that migrated it"
        )
    at = f"at revision {current}" if current else "at no revision"
    return (
        f"the database at {where} is not migrated ({at}, code expects {head}): run `parley migrate`"
    )
