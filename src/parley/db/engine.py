"""Engines and transactions for SQLite and PostgreSQL.

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``: a
transaction that reads and then writes would otherwise fail with "database is locked"
when another writer got there first, instead of waiting for ``busy_timeout``.

SQLite's log is checkpointed by a thread of its own (:mod:`parley.db.checkpoint`), not
by whichever commit fills it.

SQLite's ``synchronous`` defaults to FULL: a webhook is acknowledged only once its
commit is on disk, so a power cut cannot lose an event the platform will not resend.
NORMAL (opt-in) survives process crashes but not power loss, for many times the
commit rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from parley.db.checkpoint import LOG_SIZE_LIMIT_BYTES, Checkpointer

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS = {"FULL", "NORMAL"}
POSTGRES_PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "parley.returned_at"
_DATABASE = "parley.database"  # ``Session.info`` key: the Database a session was made by


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


ENGINES = ("sqlite", "postgresql")
URL_FORMS = "sqlite:///path or postgresql://user:password@host/database"


def url_problem(url: str) -> str | None:
    """Why parley cannot run on the database ``url`` names, or None when it can.

    Said without the URL itself, which may hold a password.
    """
    try:
        backend = make_url(normalise_url(url)).get_backend_name()
    except ArgumentError:
        return f"not a database URL; {URL_FORMS}"
    if backend not in ENGINES:
        return f"parley runs on SQLite or PostgreSQL, not {backend}; {URL_FORMS}"
    return None


def describe(url: str) -> str:
    """Where ``url`` points, for messages: ``host:port/database``, or SQLite's file; never
    its user or password."""
    found = make_url(normalise_url(url))
    if found.get_backend_name() == "sqlite":
        return found.database or ":memory:"
    return f"{found.host or 'localhost'}:{found.port or 5432}/{found.database or ''}"


def sqlite_file(url: str) -> str | None:
    """The database file a SQLite URL names; None for an in-memory database."""
    database = make_url(url).database
    return database if database and database != ":memory:" else None


def _sqlite_engine(url: str, *, synchronous: str, **kwargs: Any) -> Engine:
    path = sqlite_file(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: every transaction here writes (BEGIN IMMEDIATE), and
    # SQLite admits one writer at a time. Threads that queue for the pool are served in
    # order; threads that each hold a connection instead wait in SQLite's busy handler,
    # which sleeps in growing steps and leaves the lock idle (measured: p99 2.0 s -> 0.37 s
    # at full ingest load). Other processes still wait in the busy handler.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=kwargs.pop("pool_size", 1),
        max_overflow=kwargs.pop("max_overflow", 0),
        pool_timeout=kwargs.pop("pool_timeout", SQLITE_BUSY_TIMEOUT_MS / 1000),
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if path is not None:
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's thread does
            cursor.execute(f"PRAGMA journal_size_limit={LOG_SIZE_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres_engine(
    url: str, *, ping_after_idle: float = POSTGRES_PING_AFTER_IDLE_SECONDS, **kwargs: Any
) -> Engine:
    """Sessions in UTC, whatever the server's default: psycopg then reads ``timestamptz``
    as ``datetime.timezone.utc`` values, as parley keeps time. Under a named zone (a
    server's ``Etc/UTC``) it converts every value to a ``zoneinfo`` zone first, and
    parley back to UTC: 2.7 against 1.1 us a value, about twenty values a job. The
    URL's own ``options`` are kept."""
    connect_args = dict(kwargs.pop("connect_args", {}))
    given = connect_args.get("options", make_url(url).query.get("options", ""))
    given = " ".join(given) if isinstance(given, tuple) else str(given)  # ?options= twice
    connect_args["options"] = " ".join(filter(None, [given, "-c TimeZone=UTC"]))
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # A batch's keys and values go as array parameters (``= ANY(:ids)``, ``unnest``).
        # In text format psycopg escapes every element with a regular expression: 200
        # strings cost 0.74 ms of CPU to send, against 0.21 ms as a binary array.
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)

    return engine


def _ping_when_idle(
    engine: Engine, idle_seconds: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """Check a pooled connection with a round trip only when it has sat unused for
    ``idle_seconds``, instead of at every checkout (``pool_pre_ping``).

    A connection left in the pool over a quiet spell may have been closed by a server
    restart, a failover or an idle timeout: it is pinged, and if the ping fails every
    pooled connection is replaced before anything is sent on it. Under load the same
    ping was a round trip of its own per transaction (a lone webhook's transaction has
    eleven more), for connections used a few milliseconds before. A server lost within
    ``idle_seconds`` of a connection's last use fails that connection's next transaction
    as it would have failed one already under way; SQLAlchemy then replaces the whole
    pool, a webhook is answered 5xx and redelivered, and a worker claims again.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = clock()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)  # none yet: a new connection
        if returned is None or clock() - returned < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except psycopg.Error as exc:
            raise InvalidatePoolError(
                f"pooled connection failed its ping after {clock() - returned:.0f} s idle"
            ) from exc


class Database:
    """One engine and its session factory; the only way code reaches the database."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "full", **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        if self.url.startswith("sqlite"):
            synchronous = sqlite_synchronous.upper()
            if synchronous not in SQLITE_SYNCHRONOUS:
                raise ValueError(f"sqlite_synchronous must be one of {sorted(SQLITE_SYNCHRONOUS)}")
            self.engine = _sqlite_engine(self.url, synchronous=synchronous, **engine_kwargs)
        else:
            self.engine = _postgres_engine(self.url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, info={_DATABASE: self})
        self._shared: dict[str, Any] = {}
        path = sqlite_file(self.url) if not self.is_postgres else None
        if path is not None:
            checkpointer = Checkpointer(path)
            self._shared["parley.sqlite.checkpointer"] = checkpointer

            @event.listens_for(self.engine, "checkin")
            def _between_transactions(dbapi_connection: Any, _record: Any) -> None:
                if dbapi_connection is not None:
                    checkpointer.restart_long_log(dbapi_connection)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: commit on success, roll back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction_unchecked(self) -> Iterator[Session]:
        """On SQLite, a transaction whose writes skip foreign keys' checks and actions;
        on PostgreSQL, :meth:`transaction`.

        Only for deleting every row of a store, children first: deleting a parent row
        makes SQLite look for the rows pointing at it in each table that does, and few of
        those columns lead an index (they follow ``workspace_id``), so each deleted
        customer cost a scan of ten tables, every store's rows: a batch of 500 held the
        one writer for 2.6 to 23.7 s (``bench/erasure.py``). The pragma is per
        connection and cannot change inside a transaction, so it is set before this one
        begins and set back after it ends, on the one connection this process has.
        """
        if self.is_postgres:
            with self.transaction() as session:
                yield session
            return
        with self.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with self.sessions(bind=connection) as session, session.begin():
                    yield session
            finally:
                raw.execute("PRAGMA foreign_keys=ON")

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """One process-local object per name for this database, such as a cache of rows
        that rarely change. It lives with this ``Database``, so two databases (a test's,
        another tenant's) never see each other's."""
        found = self._shared.get(name)
        if found is None:
            found = self._shared.setdefault(name, make())
        return cast("T", found)

    @staticmethod
    def of(session: Session) -> Database | None:
        """The database whose ``sessions`` made ``session``; None for one made elsewhere."""
        found = session.info.get(_DATABASE)
        return found if isinstance(found, Database) else None

    def dispose(self) -> None:
        """Close what was shared on this database (writer threads stop), then the pool."""
        shared, self._shared = list(self._shared.values()), {}
        for found in shared:
            close = getattr(found, "close", None)
            if callable(close):
                close()
        self.engine.dispose()
