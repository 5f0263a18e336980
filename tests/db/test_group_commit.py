"""Group commit: writes queued together share one commit, and nobody pays for another's
failure. Each test holds the one writer in its first unit's ``prepare`` so that the units
behind it are queued when it frees, which makes the batches deterministic."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from parley.db import Database
from parley.db.group_commit import GroupCommit, group_commit
from parley.errors import Unauthenticated
from parley.store_events import service as store_events
from parley.store_events.models import WebhookDelivery
from parley.store_events.service import Delivery
from parley.workspaces.models import Workspace
from support import rows, seed

pytestmark = pytest.mark.anyio


class Held:
    """A ``prepare`` that keeps the writer busy until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        assert self.gate.wait(10), "the test never released the writer"

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)


def _record(workspace_id: int, key: str, *, fail: bool = False) -> Callable[[Session, Any], int]:
    def write(session: Session, _prepared: Any) -> int:
        workspace = session.get_one(Workspace, workspace_id)
        delivery_id = store_events.record_delivery(
            session,
            workspace=workspace,
            delivery=Delivery(
                source="test", delivery_key=key, topic="orders/create", headers={}, body="{}"
            ),
            status="processed",
            reason=None,
        )
        if fail:
            raise ValueError(f"{key} is refused")
        assert delivery_id is not None
        return delivery_id

    return write


def _nothing() -> None:
    return None


def _count_commits(db: Database) -> list[int]:
    commits = [0]

    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    event.listen(db.engine, "commit", on_commit)
    return commits


def _keys(db: Database) -> list[str]:
    return sorted(delivery.delivery_key for delivery in rows(db, WebhookDelivery))


async def _queue_behind_held(
    writer: GroupCommit, held: Held, first: Callable[[Session, Any], int], *units: Any
) -> list[asyncio.Task[Any]]:
    """Start ``first`` (held in prepare), then queue ``units`` behind it."""
    tasks = [asyncio.create_task(writer.run(held, first))]
    await held.wait_entered()
    tasks += [asyncio.create_task(writer.run(prepare, write)) for prepare, write in units]
    await asyncio.sleep(0.05)  # every task has reached the queue
    return tasks


async def test_units_queued_while_the_writer_is_busy_share_one_commit(db):
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    commits = _count_commits(db)
    held = Held()
    tasks = await _queue_behind_held(
        writer,
        held,
        _record(workspace_id, "a"),
        *[(_nothing, _record(workspace_id, key)) for key in ("b", "c", "d")],
    )
    held.gate.set()
    ids = await asyncio.gather(*tasks)
    writer.close()

    assert commits[0] == 2  # "a" alone, then "b", "c" and "d" together
    assert _keys(db) == ["a", "b", "c", "d"]
    assert sorted(ids) == sorted(d.id for d in rows(db, WebhookDelivery))


async def test_a_write_that_fails_is_refused_alone_and_the_rest_of_its_batch_is_kept(db):
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    commits = _count_commits(db)
    held = Held()
    tasks = await _queue_behind_held(
        writer,
        held,
        _record(workspace_id, "a"),
        (_nothing, _record(workspace_id, "b")),
        (_nothing, _record(workspace_id, "c", fail=True)),
        (_nothing, _record(workspace_id, "d")),
    )
    held.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    writer.close()

    assert [type(result) for result in results] == [int, int, ValueError, int]
    assert str(results[2]) == "c is refused"
    assert commits[0] == 3  # "a"; the batch rolled back; then "b" and "d" each alone
    assert _keys(db) == ["a", "b", "d"]


async def test_a_unit_refused_before_writing_touches_nothing_and_its_batch_goes_on(db):
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    commits = _count_commits(db)
    written: list[str] = []

    def refuse() -> None:
        raise Unauthenticated("HMAC signature does not match")

    def forged(session: Session, prepared: Any) -> None:
        written.append("forged")

    held = Held()
    tasks = await _queue_behind_held(
        writer,
        held,
        _record(workspace_id, "a"),
        (_nothing, _record(workspace_id, "b")),
        (refuse, forged),
        (_nothing, _record(workspace_id, "c")),
    )
    held.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    writer.close()

    assert isinstance(results[2], Unauthenticated)
    assert written == []
    assert commits[0] == 2
    assert _keys(db) == ["a", "b", "c"]


async def test_a_caller_that_went_away_still_has_its_write_committed(db):
    """Shopify may give up on a slow answer; the delivery is kept, and its retry is then
    a duplicate."""
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    held = Held()
    first, gone = await _queue_behind_held(
        writer, held, _record(workspace_id, "a"), (_nothing, _record(workspace_id, "b"))
    )
    gone.cancel()
    held.gate.set()
    await first
    writer.close()

    assert gone.cancelled()
    assert _keys(db) == ["a", "b"]


async def test_close_finishes_what_is_queued_then_refuses_new_units(db):
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    held = Held()
    tasks = await _queue_behind_held(
        writer, held, _record(workspace_id, "a"), (_nothing, _record(workspace_id, "b"))
    )
    closing = asyncio.create_task(asyncio.to_thread(writer.close))
    await asyncio.sleep(0.05)
    held.gate.set()
    await asyncio.gather(*tasks)
    await closing

    assert _keys(db) == ["a", "b"]
    with pytest.raises(RuntimeError, match="closed"):
        await writer.run(_nothing, _record(workspace_id, "c"))
    assert _keys(db) == ["a", "b"]


async def test_disposing_the_database_stops_its_writers(db):
    workspace_id = seed(db)
    shared = group_commit(db)
    # Other tests' databases may still have writers of their own: take only this one's.
    before = set(threading.enumerate())
    await shared.run(_nothing, _record(workspace_id, "a"))
    threads = [
        t for t in threading.enumerate() if t.name.startswith("parley-writer") and t not in before
    ]
    assert threads

    db.dispose()

    assert not any(thread.is_alive() for thread in threads)
    assert group_commit(db) is not shared


def _staged_delivery(key: str) -> Delivery:
    return Delivery(source="test", delivery_key=key, topic="orders/create", headers={}, body="{}")


def _stage_recording(
    workspace_id: int, calls: list[list[str]]
) -> Callable[[Session, list[Any]], None]:
    def stage(session: Session, group: list[Any]) -> None:
        calls.append([delivery.delivery_key for delivery in group])
        store_events.record_deliveries(
            session,
            [
                store_events.DeliveryRecord(workspace_id, delivery, "processed")
                for delivery in group
            ],
        )

    return stage


def _write_staged(workspace_id: int) -> Callable[[Session, Delivery], int | None]:
    def write(session: Session, delivery: Delivery) -> int | None:
        workspace = session.get_one(Workspace, workspace_id)
        return store_events.record_delivery(
            session, workspace=workspace, delivery=delivery, status="processed", reason=None
        )

    return write


async def test_a_stage_runs_once_for_its_units_before_their_writes_and_not_for_a_unit_alone(db):
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    calls: list[list[str]] = []
    stage = _stage_recording(workspace_id, calls)
    write = _write_staged(workspace_id)
    statements: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if statement.startswith("INSERT INTO webhook_deliveries"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    held = Held()
    first = asyncio.create_task(
        writer.run(lambda: (held(), _staged_delivery("a"))[1], write, stage=stage)
    )
    await held.wait_entered()
    behind = [
        asyncio.create_task(writer.run(lambda key=key: _staged_delivery(key), write, stage=stage))
        for key in ("b", "c", "b")
    ]
    await asyncio.sleep(0.05)
    held.gate.set()
    ids = await asyncio.gather(first, *behind)
    writer.close()

    assert calls == [["b", "c", "b"]]  # "a" was written alone: no stage
    assert ids[2] is not None
    assert ids[1] is not None
    assert ids[3] is None  # the second "b" of the group is a duplicate
    assert ids[0] is not None
    assert _keys(db) == ["a", "b", "c"]
    # "a" inserted by its write; the group's in one statement on PostgreSQL, one a row
    # on SQLite, the repeated "b" not sent at all.
    assert len(statements) == (2 if db.is_postgres else 3)


async def test_a_group_whose_write_fails_after_its_stage_is_redone_alone_without_it(db):
    workspace_id = seed(db)
    writer = GroupCommit(db, writers=1)
    calls: list[list[str]] = []
    stage = _stage_recording(workspace_id, calls)
    write = _write_staged(workspace_id)

    def failing(session: Session, delivery: Delivery) -> int | None:
        write(session, delivery)
        raise ValueError("refused after recording")

    held = Held()
    tasks = [asyncio.create_task(writer.run(held, _record(workspace_id, "a")))]
    await held.wait_entered()
    tasks += [
        asyncio.create_task(writer.run(lambda: _staged_delivery("b"), write, stage=stage)),
        asyncio.create_task(writer.run(lambda: _staged_delivery("c"), failing, stage=stage)),
    ]
    await asyncio.sleep(0.05)
    held.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    writer.close()

    assert calls == [["b", "c"]]
    assert isinstance(results[2], ValueError)
    assert isinstance(results[1], int)
    assert _keys(db) == ["a", "b"]  # the staged "c" was rolled back with its group


def test_a_delivery_staged_with_one_status_and_written_with_another_is_an_error(db):
    workspace_id = seed(db)
    delivery = _staged_delivery("a")

    def staged_then_written_otherwise() -> None:
        with db.transaction() as session:
            store_events.record_deliveries(
                session, [store_events.DeliveryRecord(workspace_id, delivery, "processed")]
            )
            store_events.record_delivery(
                session,
                workspace=session.get_one(Workspace, workspace_id),
                delivery=delivery,
                status="ignored",
                reason=None,
            )

    with pytest.raises(RuntimeError, match="recorded as 'processed', now 'ignored'"):
        staged_then_written_otherwise()
    assert _keys(db) == []
