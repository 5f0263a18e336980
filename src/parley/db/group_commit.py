"""Group commit: small writes that arrive together share one transaction and one commit.

A webhook's writes are a handful of statements, but its transaction costs as much again:
a session, ``BEGIN``, and a commit that waits for the disk. Under load many deliveries
are waiting for the database at once, so a few writer threads take whatever is queued
(up to ``max_batch``), write it all in one transaction and answer each caller after that
one commit. Measured with ``bench/sqlcount.py``'s delivery (one thread, no server), CPU
per delivery: SQLite 2.79 ms alone, 2.09 ms five to a transaction, 1.97 ms twenty;
PostgreSQL 3.92, 3.23 and 3.13 ms. Through ``parley serve`` (``bench/ingest.py``, the
same 2-core machine) this took the Shopify route from 0.30x to 0.50-0.57x of the
baseline endpoint on SQLite and from 0.23x to 0.36-0.37x on PostgreSQL, with p99 at
half load unchanged (10-12 ms and 19-22 ms). A caller arriving at a quiet moment writes
alone and waits for nobody: a writer never holds a batch open for more to come.

Units of one kind may share a ``stage``: it runs once for all of them at the start of a
shared transaction, before any unit's ``write``, so what every unit begins with (the
webhooks' raw delivery rows) goes to the database in one statement instead of one each.
A unit written alone skips it.

Nothing is answered before its commit, and one caller's failure is nobody else's: when
any write in a batch raises (or the commit fails), the batch is rolled back and each of
its units is written again in a transaction of its own, so only the one that fails
alone is told it failed. A unit may therefore run its ``write`` twice, the first time
rolled back; it must not act outside the database.

SQLite has one writer, so one thread writes for it. PostgreSQL takes a few, each with its
own connection, so one batch's round trips overlap another's; more writers make smaller
batches (measured, batches of up to 16: 1 writer 0.31x, 2 0.37x, 3 0.37x, 6 0.33x,
12 0.28x). On PostgreSQL two batches may lock the same new rows in opposite orders; the
server then aborts one (after ``deadlock_timeout``) and its units are written alone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from parley.db.engine import Database

log = logging.getLogger(__name__)

P = TypeVar("P")
T = TypeVar("T")

MAX_BATCH = 32
SQLITE_WRITERS = 1
POSTGRES_WRITERS = 3
CLOSE_TIMEOUT_SECONDS = 10.0


Stage = Callable[[Session, list[Any]], None]
"""Runs once per shared transaction with the prepared values of the units that name it."""


@dataclass
class _Unit(Generic[P, T]):
    prepare: Callable[[], P]
    write: Callable[[Session, P], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    stage: Stage | None = None
    prepared: Any = field(default=None)

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # the caller's loop has closed: nobody is waiting
            log.debug("group commit: caller's loop closed before its answer")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the caller went away; the write stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommit:
    """Writer threads for one database, and the queue that feeds them."""

    def __init__(self, db: Database, *, writers: int | None = None, max_batch: int = MAX_BATCH):
        self.db = db
        self.max_batch = max_batch
        self.writers = writers or (POSTGRES_WRITERS if db.is_postgres else SQLITE_WRITERS)
        self._queue: queue.SimpleQueue[_Unit[Any, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    async def run(
        self,
        prepare: Callable[[], P],
        write: Callable[[Session, P], T],
        *,
        stage: Stage | None = None,
    ) -> T:
        """``write(session, prepare())`` in a shared transaction; its result once committed.

        ``prepare`` runs in the writer thread before the transaction opens: work that may
        refuse the unit (a signature, a parse) without holding the database. ``stage``,
        if given, is called once in the shared transaction with the prepared values of all
        its units, before their writes; ``write`` must do the same work when ``stage`` has
        not done it (a unit written alone). Whatever either raises is raised here.
        """
        loop = asyncio.get_running_loop()
        unit: _Unit[P, T] = _Unit(prepare, write, loop, loop.create_future(), stage)
        with self._lock:
            if self._closed:
                raise RuntimeError("group commit is closed")
            self._start_writers()
            self._queue.put(unit)
        return await unit.future

    def close(self) -> None:
        """Finish what is queued, then stop the writers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
        for thread in self._threads:
            thread.join(CLOSE_TIMEOUT_SECONDS)

    def _start_writers(self) -> None:
        while len(self._threads) < self.writers:
            thread = threading.Thread(
                target=self._serve, name=f"parley-writer-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    stop = True
                    break
                batch.append(unit)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Unit[Any, Any]]) -> None:
        ready = []
        for unit in batch:
            try:
                unit.prepared = unit.prepare()
            except Exception as exc:  # noqa: BLE001 - the unit's own answer
                unit.settle(error=exc)
            else:
                ready.append(unit)
        if len(ready) == 1:
            self._write_alone(ready[0])
            return
        if not ready:
            return
        try:
            with self.db.transaction() as session:
                _stage(session, ready)
                results = [unit.write(session, unit.prepared) for unit in ready]
        except Exception as exc:  # noqa: BLE001 - retried unit by unit below
            log.info("group commit: a batch of %d failed (%s); writing each alone", len(ready), exc)
            for unit in ready:
                self._write_alone(unit)
            return
        for unit, result in zip(ready, results, strict=True):
            unit.settle(result)

    def _write_alone(self, unit: _Unit[Any, Any]) -> None:
        try:
            with self.db.transaction() as session:
                result = unit.write(session, unit.prepared)
        except Exception as exc:  # noqa: BLE001 - the unit's own answer
            unit.settle(error=exc)
        else:
            unit.settle(result)


def _stage(session: Session, units: list[_Unit[Any, Any]]) -> None:
    """Each stage once, with its units' prepared values in their order."""
    stages: dict[Stage, list[Any]] = {}
    for unit in units:
        if unit.stage is not None:
            stages.setdefault(unit.stage, []).append(unit.prepared)
    for stage, prepared in stages.items():
        stage(session, prepared)


def group_commit(db: Database) -> GroupCommit:
    """This process's group commit for ``db`` (its writers start with the first unit)."""
    return db.shared("db.group_commit", lambda: GroupCommit(db))
