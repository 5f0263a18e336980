"""SQLite's log is checkpointed by parley's own thread, never inside a commit."""

from __future__ import annotations

import sqlite3
import threading
import time

from parley.db import Database
from parley.db.checkpoint import Checkpointer


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "parley-sqlite-checkpoint"]


def test_a_file_database_turns_commit_checkpoints_off_and_runs_its_own_thread(tmp_path):
    before = len(_checkpointers())
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert len(_checkpointers()) == before + 1
    finally:
        db.dispose()
    assert len(_checkpointers()) == before


def test_the_checkpointer_moves_the_log_into_the_database_file(tmp_path):
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE notes (body TEXT)")
    for _ in range(50):
        writer.execute("INSERT INTO notes VALUES (?)", ("x" * 8000,))
    unchecked = path.stat().st_size

    checkpointer = Checkpointer(str(path), interval=0.01)
    try:
        deadline = time.monotonic() + 10
        while path.stat().st_size < 50 * 8000 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        checkpointer.close()
        writer.close()

    assert unchecked < 50 * 8000  # the commits left their pages in the log
    assert path.stat().st_size >= 50 * 8000
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT count(*) FROM notes").fetchone() == (50,)
