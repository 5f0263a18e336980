"""The relay: one per ``parley serve`` process, tailing ``live_events`` into the hub.

On PostgreSQL a dedicated connection ``LISTEN``s on :data:`~parley.live.outbox.CHANNEL`,
so a commit in any process wakes every relay at once; a slow poll covers a lost
notification, and the connection is re-opened when it drops. On SQLite (one host) the relay
polls every 200 ms with a cheap indexed read on a connection of its own, which never takes
the write lock.

Rows are read by id, but ids are handed out at insert and transactions commit in any order
on PostgreSQL: a row with a lower id can appear after a higher one. The relay remembers the
ids it skipped over (*gaps*) for :data:`GAP_SECONDS` and picks them up when they commit;
an id still missing by then belonged to a rolled-back transaction.

Streams are authorised when an event is handed on, not only when they opened: a
``member_removed`` or ``session_ended`` event makes the relay re-check that user's
streams against the database before it hands on anything later, and every
:data:`REVALIDATE_SECONDS` all streams are re-checked, so an expired or deleted session
stops too (RELIABILITY T6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine, and_, create_engine, delete, event, func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from parley.accounts.models import LoginSession, Membership, User
from parley.accounts.service import SessionPolicy
from parley.clock import utc_now
from parley.db import Database
from parley.live.hub import ENDING_KINDS, Ending, Event, Hub, Subscriber
from parley.live.models import LiveEvent
from parley.live.outbox import CHANNEL

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
"""SQLite, or PostgreSQL while the listening connection is down."""
FALLBACK_POLL_SECONDS = 5.0
"""PostgreSQL while listening: only a safety net for a notification lost in a reconnect."""
GAP_SECONDS = 10.0
MAX_GAPS = 1000
BATCH = 1000
REVALIDATE_SECONDS = 30.0
PRUNE_SECONDS = 300.0
KEEP = timedelta(hours=1)
EXIT_CHECK_SECONDS = 0.25


def _reader_engine(db: Database) -> Engine:
    """The engine the relay reads with.

    On SQLite every transaction of :class:`Database` starts with ``BEGIN IMMEDIATE`` (a
    write lock); five polls a second must not queue behind, or hold up, real writes, so the
    relay reads on its own connection in autocommit, which in WAL mode never blocks.
    """
    if db.is_postgres:
        return db.engine
    engine = create_engine(db.url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout=5000")

    return engine


def _row_event(row: LiveEvent) -> Event:
    return Event(
        id=row.id,
        workspace_id=row.workspace_id,
        kind=row.kind,
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        data=dict(row.data or {}),
    )


def live_sessions(
    session: Session, *, digests: Iterable[str], policy: SessionPolicy, now: datetime
) -> set[tuple[str, int, int]]:
    """``(token digest, workspace id, user id)`` of the sessions among ``digests`` that may
    still see their workspace: the session exists, has neither idled out nor expired,
    predates no password change, and the membership is still there.

    Read-only: an open stream must not keep a session alive past its idle timeout.
    """
    wanted = list(set(digests))
    if not wanted:
        return set()
    rows = session.execute(
        select(
            LoginSession.token_hash,
            LoginSession.workspace_id,
            LoginSession.user_id,
            LoginSession.created_at,
            LoginSession.last_seen_at,
            User.password_changed_at,
        )
        .join(User, User.id == LoginSession.user_id)
        .join(
            Membership,
            and_(
                Membership.user_id == LoginSession.user_id,
                Membership.workspace_id == LoginSession.workspace_id,
            ),
        )
        .where(LoginSession.token_hash.in_(wanted))
    )
    return {
        (digest, workspace_id, user_id)
        for digest, workspace_id, user_id, created_at, last_seen_at, changed_at in rows
        if now - last_seen_at <= policy.idle
        and now - created_at <= policy.absolute
        and created_at >= changed_at
    }


class Relay:
    """Tails ``live_events`` for this process's hub (see the module doc)."""

    def __init__(
        self,
        db: Database,
        *,
        policy: SessionPolicy,
        is_exiting: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.hub = Hub()
        self.policy = policy
        self.is_exiting = is_exiting
        self.last_id = 0
        self._started = False
        self.is_listening = False
        self._gaps: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._reader = _reader_engine(db)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Begin at the table's current end: a new process announces only what follows
        (and what was still committing as it started)."""
        self._started = await self._find_tail()
        self._tasks.append(asyncio.create_task(self._run(), name="parley-live-relay"))
        if self.db.is_postgres:
            self._tasks.append(asyncio.create_task(self._listen(), name="parley-live-listen"))
        if self.is_exiting is not None:
            self._tasks.append(asyncio.create_task(self._watch_exit(), name="parley-live-exit"))

    async def stop(self) -> None:
        self.hub.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._reader is not self.db.engine:
            self._reader.dispose()

    async def _find_tail(self) -> bool:
        """Start from the table's end; with the database down, start once it answers, so
        a serving process still comes up (and answers 503) during an outage.

        The ids missing just below the end may belong to transactions still committing
        (a restart lands between another process's insert and its commit): they are
        gaps like those met later, picked up if they commit within :data:`GAP_SECONDS`.
        """
        try:
            self.last_id, missing = await asyncio.to_thread(self._tail)
        except OperationalError:
            log.warning("live relay: database unavailable at start; will begin when it answers")
            return False
        noticed = time.monotonic()
        self._gaps.update(dict.fromkeys(missing, noticed))
        return True

    def _tail(self) -> tuple[int, list[int]]:
        """The newest id, and the ids missing among the :data:`MAX_GAPS` below it."""
        with Session(self._reader) as session:
            newest = int(session.scalar(select(func.max(LiveEvent.id))) or 0)
            lowest = max(1, newest - MAX_GAPS)
            present = set(session.scalars(select(LiveEvent.id).where(LiveEvent.id >= lowest)))
        return newest, [event_id for event_id in range(lowest, newest) if event_id not in present]

    async def _run(self) -> None:
        revalidated = pruned = time.monotonic()
        while True:
            poll = FALLBACK_POLL_SECONDS if self.is_listening else POLL_SECONDS
            # asyncio.timeout, never wait_for: on 3.11 wait_for loses a cancellation that
            # lands as the wake completes (bpo-42130), and stop() then waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if not self._started:
                    self._started = await self._find_tail()
                    continue
                await self.catch_up()
                now = time.monotonic()
                if now - revalidated >= REVALIDATE_SECONDS:
                    revalidated = now
                    await self.revalidate(self.hub.subscribers())
                if now - pruned >= PRUNE_SECONDS:
                    pruned = now
                    await asyncio.to_thread(self.prune)
            except Exception:
                # The database may be restarting: keep the streams open and try again.
                log.exception("live relay: reading live_events failed; retrying")
                await asyncio.sleep(1.0)

    async def catch_up(self) -> int:
        """Hand every newly committed row to the hub, in id order; returns how many.

        A row counts as handed on only once the streams it concerns were re-checked: if
        the check fails (the database is restarting), the next turn reads the row again and
        re-checks before anything later, so a removed agent's stream never receives the
        rows behind their removal. Handing an ending row on twice shows nothing twice.
        """
        rows = await asyncio.to_thread(self._fetch, self.last_id, list(self._gaps))
        for row in rows:
            concerned = self.hub.deliver(row)
            if concerned:
                await self.revalidate(concerned)
            self._track(row.id)
        self._expire_gaps()
        return len(rows)

    def _fetch(self, after: int, gaps: list[int]) -> list[Event]:
        newer = LiveEvent.id > after
        where = or_(newer, LiveEvent.id.in_(gaps)) if gaps else newer
        with Session(self._reader) as session:
            found = session.scalars(
                select(LiveEvent).where(where).order_by(LiveEvent.id).limit(BATCH)
            )
            return [_row_event(row) for row in found]

    def _track(self, event_id: int) -> None:
        if event_id in self._gaps:
            del self._gaps[event_id]
            return
        if event_id > self.last_id + 1:
            noticed = time.monotonic()
            for missing in range(max(self.last_id + 1, event_id - MAX_GAPS), event_id):
                self._gaps[missing] = noticed
        self.last_id = max(self.last_id, event_id)

    def _expire_gaps(self) -> None:
        cutoff = time.monotonic() - GAP_SECONDS
        for missing in [m for m, noticed in self._gaps.items() if noticed < cutoff]:
            del self._gaps[missing]
        while len(self._gaps) > MAX_GAPS:
            del self._gaps[min(self._gaps)]

    async def revalidate(self, subscribers: list[Subscriber]) -> None:
        """End the streams whose session or membership is gone, before anything else."""
        open_streams = [s for s in subscribers if s.ending is None]
        if not open_streams:
            return
        allowed = await asyncio.to_thread(self._allowed, [s.token_digest for s in open_streams])
        for subscriber in open_streams:
            key = (subscriber.token_digest, subscriber.workspace_id, subscriber.user_id)
            if key not in allowed:
                subscriber.end(Ending.REVOKED)

    def _allowed(self, digests: list[str]) -> set[tuple[str, int, int]]:
        with Session(self._reader) as session:
            return live_sessions(session, digests=digests, policy=self.policy, now=utc_now())

    async def replay(self, *, workspace_id: int, user_id: int, after: int) -> list[Event]:
        """What a reconnecting stream missed: this workspace's rows after ``after`` up to
        what the relay has handed on, filtered for this user as live delivery would."""
        until = self.last_id
        rows = await asyncio.to_thread(self._replay, workspace_id, after, until)
        return [row for row in rows if row.is_for(user_id=user_id)]

    def _replay(self, workspace_id: int, after: int, until: int) -> list[Event]:
        with Session(self._reader) as session:
            found = session.scalars(
                select(LiveEvent)
                .where(
                    LiveEvent.workspace_id == workspace_id,
                    LiveEvent.id > after,
                    LiveEvent.id <= until,
                    LiveEvent.kind.not_in(ENDING_KINDS),
                )
                .order_by(LiveEvent.id)
                .limit(BATCH)
            )
            return [_row_event(row) for row in found]

    def prune(self) -> None:
        """Drop old rows, always keeping the newest: SQLite hands out ``max(id) + 1`` (no
        AUTOINCREMENT here), so an emptied table would restart ids below every relay's
        position and they would never see another event."""
        newest = select(func.max(LiveEvent.id)).scalar_subquery()
        with self.db.transaction() as session:
            session.execute(
                delete(LiveEvent).where(
                    LiveEvent.created_at < utc_now() - KEEP, LiveEvent.id < newest
                )
            )

    async def _listen(self) -> None:
        """``LISTEN`` on a connection of its own; every notification wakes the tail."""
        conninfo = self.db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        backoff = 0.5
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.is_listening = True
                    backoff = 0.5
                    # Whatever committed while nobody listened is picked up now.
                    self._wake.set()
                    async for _ in connection.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError) as exc:
                log.warning("live relay: LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.is_listening = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _watch_exit(self) -> None:
        """The server is going down: end the streams now, or it waits for them to close."""
        assert self.is_exiting is not None
        # A flag another library sets, with nothing to await on: polling is all there is.
        while not self.is_exiting():  # noqa: ASYNC110
            await asyncio.sleep(EXIT_CHECK_SECONDS)
        self.hub.close()
