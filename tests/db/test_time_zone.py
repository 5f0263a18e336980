"""Times go in as any aware datetime and come back as the same instant in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from parley.db import Database
from parley.workspaces.models import Workspace

MONTREAL_WINTER = timezone(timedelta(hours=-5))


def test_a_time_written_in_any_zone_reads_back_as_the_same_instant_in_utc(db):
    written = datetime(2026, 12, 4, 9, 30, 15, 250_000, tzinfo=MONTREAL_WINTER)
    with db.transaction() as session:
        session.add(Workspace(slug="tz", name="Time zones", created_at=written))

    with db.transaction() as session:
        read = session.scalar(select(Workspace.created_at).where(Workspace.slug == "tz"))

    assert read == datetime(2026, 12, 4, 14, 30, 15, 250_000, tzinfo=UTC)
    assert read is not None
    assert read.tzinfo is UTC


@pytest.mark.parametrize(
    "options",
    [
        "-c statement_timeout=4321",
        ["-c statement_timeout=4321", "-c lock_timeout=1234"],  # ?options= twice
    ],
    ids=["once", "twice"],
)
def test_postgres_sessions_run_in_utc_and_keep_the_urls_own_options(postgres_database, options):
    url = make_url(postgres_database).update_query_dict({"options": options})
    db = Database(url.render_as_string(hide_password=False))
    try:
        with db.engine.connect() as connection:
            assert connection.execute(text("SHOW TimeZone")).scalar() == "UTC"
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "4321ms"
            if isinstance(options, list):
                assert connection.execute(text("SHOW lock_timeout")).scalar() == "1234ms"
            now = connection.execute(text("SELECT now()")).scalar()
        assert now is not None
        assert now.tzinfo is UTC
    finally:
        db.dispose()
