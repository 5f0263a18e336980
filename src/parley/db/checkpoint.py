"""SQLite's write-ahead log moved into the database file by a thread of its own.

By default SQLite checkpoints in whichever connection commits past 1,000 pages of log:
that commit then also copies the pages and waits for the database file's fsync. With
one pooled connection per process, every webhook behind that commit waited too (the
ingest bench's half-load p99 on SQLite varied between 10 and 78 ms run to run). Parley's
connections turn automatic checkpoints off (``wal_autocheckpoint=0``) and this thread
runs a ``PASSIVE`` checkpoint twice a second on a connection of its own: it copies what
no reader still needs, never waits for a lock, and its fsync holds no one up. A commit
is durable once its log is on disk (``synchronous=FULL``), checkpointed or not.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 0.5


class Checkpointer:
    """Checkpoints the database at ``path`` every ``interval`` seconds until closed."""

    def __init__(self, path: str, *, interval: float = CHECKPOINT_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="parley-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopping.wait(self.interval):
                self.checkpoint(connection)
        finally:
            connection.close()

    @staticmethod
    def checkpoint(connection: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, log frames, frames copied), as SQLite reports."""
        try:
            busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            log.warning("checkpointing the SQLite log failed; trying again", exc_info=True)
            return (1, -1, -1)
        return (busy, frames, copied)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()
