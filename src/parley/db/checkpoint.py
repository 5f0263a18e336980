"""SQLite's write-ahead log moved into the database file by a thread of its own.

By default SQLite checkpoints in whichever connection commits past 1,000 pages of log:
that commit then also copies the pages and waits for the database file's fsync. With
one pooled connection per process, every webhook behind that commit waited too (the
ingest bench's half-load p99 on SQLite varied between 10 and 78 ms run to run). Parley's
connections turn automatic checkpoints off (``wal_autocheckpoint=0``) and this thread
runs a ``PASSIVE`` checkpoint twice a second on a connection of its own: it copies what
no reader still needs, never waits for a lock, and its fsync holds no one up. A commit
is durable once its log is on disk (``synchronous=FULL``), checkpointed or not.

SQLite starts the log over only when a write begins after a checkpoint that copied all of
it, and under writes that never pause one always lands while this thread copies. The log
then grew by everything written (a writer committing non-stop: 155 MB of log for a 38 MB
database in 4 s), in a backfill or a sale as much as in a bench. A checkpoint that leaves
the log past ``long_log_frames`` therefore asks this process's next connection to come
back to the pool to finish it: between two of that connection's transactions, nobody in
this process writes, so a passive checkpoint there copies the few frames this thread
left, and the connection's next write starts the log over. It waits on no lock (a
truncating checkpoint from this thread, which does, held writers up: p99 at half load
rose to 68-92 ms), and ``journal_size_limit`` trims the file when the log restarts.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 0.5
LONG_LOG_FRAMES = 16_384
"""Log frames (pages written) from which the log is restarted: 64 MB of 4 KB pages."""
LOG_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
"""What a restarted log file is trimmed to (SQLite's ``journal_size_limit``)."""


class Checkpointer:
    """Checkpoints the database at ``path`` every ``interval`` seconds until closed."""

    def __init__(
        self,
        path: str,
        *,
        interval: float | None = None,
        long_log_frames: int | None = None,
    ) -> None:
        self.path = path
        self.interval = CHECKPOINT_SECONDS if interval is None else interval
        self.long_log_frames = LONG_LOG_FRAMES if long_log_frames is None else long_log_frames
        self._log_is_long = threading.Event()
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

    def checkpoint(self, connection: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, log frames, frames copied), as SQLite reports.
        A log still long afterwards is left to :meth:`restart_long_log` to finish."""
        result = _passive_checkpoint(connection)
        if result[1] > self.long_log_frames:
            self._log_is_long.set()
        return result

    def restart_long_log(self, connection: sqlite3.Connection) -> bool:
        """On a connection between its transactions: if the log is long, copy what is left
        of it so this connection's next write starts it over. Whether it tried."""
        if not self._log_is_long.is_set():
            return False
        self._log_is_long.clear()
        _passive_checkpoint(connection)
        return True

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()


def _passive_checkpoint(connection: sqlite3.Connection) -> tuple[int, int, int]:
    try:
        busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error:
        log.warning("checkpointing the SQLite log failed; trying again", exc_info=True)
        return (1, -1, -1)
    return (busy, frames, copied)
