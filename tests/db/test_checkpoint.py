"""SQLite's log is checkpointed by parley's own thread, never inside a commit."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from parley.db import Database
from parley.db import checkpoint as checkpoint_module
from parley.db.checkpoint import LOG_SIZE_LIMIT_BYTES, Checkpointer


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "parley-sqlite-checkpoint"]


def test_a_file_database_turns_commit_checkpoints_off_and_runs_its_own_thread(tmp_path):
    before = len(_checkpointers())
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            limit = connection.exec_driver_sql("PRAGMA journal_size_limit").scalar()
            assert limit == LOG_SIZE_LIMIT_BYTES
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


def _log_frames(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def _writer_with_notes(path, notes: int) -> sqlite3.Connection:
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE notes (body TEXT)")
    for _ in range(notes):
        writer.execute("INSERT INTO notes VALUES (?)", ("x" * 8000,))
    return writer


def _checkpoint_behind_a_reader(path, writer, checkpointer) -> tuple[int, int, int]:
    """A passive checkpoint that cannot copy everything: a reader holds an older
    snapshot, as a write landing while the thread copies does under load."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM notes").fetchone()
    writer.execute("INSERT INTO notes VALUES ('past the reader')")
    with sqlite3.connect(path, isolation_level=None) as connection:
        result = checkpointer.checkpoint(connection)
    reader.execute("COMMIT")
    reader.close()
    return result


@pytest.mark.parametrize("long_log_frames", [10, 10_000])
def test_a_log_left_long_is_started_over_by_the_next_connection_between_transactions(
    tmp_path, long_log_frames
):
    path = tmp_path / "store.db"
    writer = _writer_with_notes(path, 50)
    checkpointer = Checkpointer(str(path), interval=3600, long_log_frames=long_log_frames)
    try:
        busy, frames, copied = _checkpoint_behind_a_reader(path, writer, checkpointer)
        assert (busy, frames > 100, copied < frames) == (0, True, True)

        restarted = checkpointer.restart_long_log(writer)
        assert checkpointer.restart_long_log(writer) is False  # once per long log
        writer.execute("INSERT INTO notes VALUES ('next')")
    finally:
        checkpointer.close()
    if long_log_frames == 10:
        assert restarted is True
        assert _log_frames(path) < 10  # the log began again at its first frame
    else:
        assert restarted is False
        assert _log_frames(path) > frames  # within the limit: left to grow until a pause
    assert writer.execute("SELECT count(*) FROM notes").fetchone() == (52,)
    writer.close()


def test_a_database_written_without_a_pause_keeps_its_log_short(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "CHECKPOINT_SECONDS", 0.005)
    monkeypatch.setattr(checkpoint_module, "LONG_LOG_FRAMES", 200)
    path = tmp_path / "store.db"
    db = Database(f"sqlite:///{path}")
    largest = 0
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE notes (body TEXT)"))
        for _ in range(3000):
            with db.transaction() as session:
                session.execute(text("INSERT INTO notes VALUES (:body)"), {"body": "x" * 2000})
            largest = max(largest, _log_size(path))
    finally:
        db.dispose()
    # Without the restart the log ends near 3,000 notes' worth, about 24 MB.
    assert largest < 4 * 1024 * 1024


def _log_size(path) -> int:
    return (path.parent / f"{path.name}-wal").stat().st_size
