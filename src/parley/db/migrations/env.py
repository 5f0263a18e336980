"""Alembic environment: migrations run against the URL the caller configured."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import parley.db.models  # noqa: F401 - registers every table on the metadata
from parley.db.base import Base
from parley.db.engine import Database

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    if url.startswith("sqlite"):
        # Reuse parley's SQLite set-up (WAL, busy timeout) so a migration waits politely.
        # Disposed as a whole: its log checkpointer's connection open past the return
        # left the migration in the log, where a copy of the file alone missed it.
        database = Database(url)
        engine, dispose = database.engine, database.dispose
    else:
        engine = create_engine(url, poolclass=pool.NullPool)
        dispose = engine.dispose
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        dispose()


run_migrations()
