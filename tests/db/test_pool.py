"""PostgreSQL's pooled connections are checked with a round trip only after sitting idle.

A server restart, a failover or an idle timeout closes connections the pool still holds.
One idle past the limit is pinged before use and, if the server has closed it, the pool
is replaced without the caller seeing it. One used more recently goes out unpinged: the
ping was a round trip per transaction under load.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from parley.db import Database


def _pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ping ``db``'s pool sends from now on, by connection."""
    sent: list[Any] = []
    dialect = db.engine.dialect
    ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


def _backend_pid(db: Database) -> int:
    with db.transaction() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return int(pid)


def _terminate(url: str, pid: int) -> None:
    """Close one server process as a restart would, and wait until it has gone."""
    parts = make_url(url)
    with psycopg.connect(
        host=parts.host, port=parts.port or 5432, user=parts.username, dbname=parts.database
    ) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
    assert ended == (True,)


@pytest.mark.parametrize(
    ("idle_limit", "pinged"),
    [(60, 0), (0, 4)],  # never, or at each checkout but the first (a new connection)
    ids=["used-within-the-limit", "idle-past-the-limit"],
)
def test_a_pooled_connection_is_pinged_only_once_idle_past_the_limit(
    postgres_database, monkeypatch, idle_limit, pinged
):
    db = Database(postgres_database, ping_after_idle=idle_limit)
    pings = _pings(db, monkeypatch)
    try:
        pids = {_backend_pid(db) for _ in range(5)}
    finally:
        db.dispose()

    assert len(pids) == 1  # one pooled connection, reused
    assert len(pings) == pinged


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(
    postgres_database, monkeypatch
):
    db = Database(postgres_database, ping_after_idle=0)
    pings = _pings(db, monkeypatch)
    try:
        first = _backend_pid(db)
        _terminate(postgres_database, first)
        second = _backend_pid(db)
        third = _backend_pid(db)
    finally:
        db.dispose()

    assert second != first
    assert third == second
    assert len(pings) == 2  # the failed one, then the new connection's second use


def test_a_connection_the_server_closed_within_the_idle_limit_fails_one_transaction_only(
    postgres_database,
):
    db = Database(postgres_database, ping_after_idle=60)
    try:
        first = _backend_pid(db)
        _terminate(postgres_database, first)
        with pytest.raises(OperationalError):
            _backend_pid(db)
        second = _backend_pid(db)
    finally:
        db.dispose()

    assert second != first


def test_pool_pre_ping_asked_for_pings_every_checkout(postgres_database):
    db = Database(postgres_database, pool_pre_ping=True)
    try:
        first = _backend_pid(db)
        _terminate(postgres_database, first)
        second = _backend_pid(db)
    finally:
        db.dispose()

    assert second != first
