"""``parley serve``'s embedded worker gives way to deliveries being taken in."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from parley.db import Database
from parley.http.app import create_app
from parley.http.intake import SHED_LOG_INTERVAL, CountIntake, Intake
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Outcome, Worker, WorkerConfig
from parley.runtime import (
    LARGE_BATCH_SIZE,
    PREPARE_CHUNK,
    QUIET_SECONDS,
    SMALL_BATCH_SIZE,
    Runtime,
)
from parley.settings import Settings, get_settings
from parley.store_events.models import WebhookDelivery
from support import count, deliveries, rows, seed


async def _ticks(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_give_way_waits_until_the_last_delivery_in_flight_ends() -> None:
    async def scenario() -> list[str]:
        intake = Intake(max_wait=60)
        seen: list[str] = []
        intake.started()
        intake.started()

        async def worker_turn() -> None:
            await intake.give_way()
            seen.append("worker")

        turn = asyncio.create_task(worker_turn())
        await _ticks()
        intake.ended()
        await _ticks()
        seen.append("one delivery left")
        intake.ended()
        await turn
        return seen

    assert asyncio.run(scenario()) == ["one delivery left", "worker"]


def test_give_way_returns_at_once_when_nothing_is_in_flight() -> None:
    async def scenario() -> bool:
        intake = Intake(max_wait=60)
        turn = asyncio.create_task(intake.give_way())
        await _ticks(1)
        return turn.done()

    assert asyncio.run(scenario()) is True


def test_give_way_stops_waiting_after_max_wait_so_sends_still_move_under_a_flood() -> None:
    async def scenario() -> int:
        intake = Intake(max_wait=0)
        intake.started()
        await intake.give_way()
        return intake.in_flight

    assert asyncio.run(scenario()) == 1


def _counting_app() -> tuple[Starlette, list[int]]:
    seen: list[int] = []

    async def handler(request: Request) -> JSONResponse:
        seen.append(request.app.state.intake.in_flight)
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/webhooks/shopify/demo", handler, methods=["POST"]),
            Route("/api/v1/events", handler, methods=["POST"]),
            Route("/inbox", handler),
        ],
        middleware=[Middleware(CountIntake)],
    )
    app.state.intake = Intake()
    return app, seen


def test_webhooks_and_the_events_api_count_as_intake_and_pages_do_not() -> None:
    app, seen = _counting_app()
    with TestClient(app) as client:
        client.post("/webhooks/shopify/demo")
        client.post("/api/v1/events")
        client.get("/inbox")
        assert app.state.intake.in_flight == 0
    assert seen == [1, 1, 0]


class FinishAtOnce:
    """A task whose jobs finish in ``prepare``; it notes which it saw."""

    kind = "test.intake"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> None:
        self.seen.append(job.id)

    async def perform(self, work: Any) -> Any:
        raise AssertionError("prepare finished the job")

    def finish_batch(self, session: Session, items: list[Any]) -> list[Outcome]:
        raise AssertionError("prepare finished the job")


def test_a_worker_claims_nothing_until_intake_gives_way(db: Database) -> None:
    with db.transaction() as session:
        queue.enqueue(session, kind=FinishAtOnce.kind, payload={})
    [job] = rows(db, Job)
    task = FinishAtOnce()

    async def scenario() -> tuple[list[str], list[int]]:
        waiting, gate = asyncio.Event(), asyncio.Event()

        async def give_way() -> None:
            waiting.set()
            await gate.wait()

        worker = Worker(db, [task], WorkerConfig(), name="w1", give_way=give_way)
        round_ = asyncio.create_task(worker.run_once())
        await waiting.wait()
        before = [job.status for job in rows(db, Job)]
        gate.set()
        await round_
        return before, list(task.seen)

    before, seen = asyncio.run(scenario())
    assert before == [JobStatus.PENDING]
    assert seen == [job.id]
    assert [job.status for job in rows(db, Job)] == [JobStatus.DONE]


def test_beside_the_web_server_a_worker_claims_small_batches_until_the_intake_is_quiet(
    db: Database,
) -> None:
    runtime = Runtime(settings=Settings(), db=db, adapters={})
    alone, beside = runtime.worker_config(), runtime.worker_config(beside_web=True)
    assert (alone.batch_size, alone.quiet_batch_size, alone.prepare_chunk) == (
        LARGE_BATCH_SIZE,
        None,
        None if db.is_postgres else PREPARE_CHUNK,
    )
    assert (beside.batch_size, beside.quiet_batch_size, beside.prepare_chunk) == (
        SMALL_BATCH_SIZE,
        LARGE_BATCH_SIZE,
        PREPARE_CHUNK,
    )
    chosen = Runtime(
        settings=Settings(worker_batch_size=7, worker_prepare_chunk=3), db=db, adapters={}
    ).worker_config(beside_web=True)
    assert (chosen.batch_size, chosen.quiet_batch_size, chosen.prepare_chunk) == (7, None, 3)


def test_the_embedded_worker_claims_the_quiet_batch_only_after_a_quiet_spell(
    db: Database,
) -> None:
    with db.transaction() as session:
        for _ in range(9):
            queue.enqueue(session, kind=FinishAtOnce.kind, payload={})
    now = [100.0]
    intake = Intake(max_wait=0, clock=lambda: now[0])
    config = WorkerConfig(batch_size=2, quiet_batch_size=4, prepare_chunk=2)
    worker = Worker(
        db,
        [FinishAtOnce()],
        config,
        name="w1",
        give_way=intake.give_way,
        quiet=lambda: intake.quiet_for(QUIET_SECONDS),
    )

    async def rounds() -> list[int]:
        claimed = []
        intake.started()  # a webhook in flight
        claimed.append(await worker.run_once())
        intake.ended()  # answered just now
        claimed.append(await worker.run_once())
        now[0] += QUIET_SECONDS  # and none since
        claimed.append(await worker.run_once())
        return claimed

    assert asyncio.run(rounds()) == [2, 2, 4]
    assert [job.status for job in rows(db, Job)].count(JobStatus.DONE) == 8


def test_a_worker_runs_two_rounds_at_once_except_beside_the_web_server(db: Database) -> None:
    runtime = Runtime(settings=Settings(), db=db, adapters={})
    assert runtime.worker_config().rounds_in_flight == 2
    assert runtime.worker_config(beside_web=True).rounds_in_flight == 1
    chosen = Runtime(settings=Settings(worker_rounds_in_flight=3), db=db, adapters={})
    assert chosen.worker_config(beside_web=True).rounds_in_flight == 3


def _deliver(client: TestClient, delivery: Any) -> Any:
    return client.post("/webhooks/shopify/demo", content=delivery.body, headers=delivery.headers)


def test_deliveries_past_the_bound_get_503_with_retry_after_and_nothing_is_stored(db):
    seed(db)
    settings = get_settings(database_url=db.url, embedded_worker=False, intake_max_in_flight=2)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    placed = deliveries("Ada")[0]
    with TestClient(app) as client:
        intake = app.state.intake
        intake.started()
        intake.started()  # two deliveries are being taken in
        refused = _deliver(client, placed)
        page = client.get("/healthz")
        assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
        assert refused.json() == {"error": "too many deliveries at once, retry later"}
        assert page.status_code == 200
        assert (count(db, WebhookDelivery), intake.shed) == (0, 1)
        intake.ended()
        accepted = client.post(
            "/webhooks/shopify/demo", content=placed.body, headers=placed.headers
        )
        assert accepted.status_code == 200
        assert intake.in_flight == 1
    assert count(db, WebhookDelivery) == 1


def test_a_storm_is_logged_once_per_interval_with_how_many_were_refused(caplog) -> None:
    ticks = [0.0]
    intake = Intake(max_in_flight=1, clock=lambda: ticks[0])
    assert intake.admit() is True
    with caplog.at_level(logging.WARNING, logger="parley.http.intake"):
        for _ in range(3):
            assert intake.admit() is False
        ticks[0] = SHED_LOG_INTERVAL
        assert intake.admit() is False
    assert [r.getMessage() for r in caplog.records] == [
        "intake full (1 deliveries in flight): refused 1 with 503 and Retry-After",
        "intake full (1 deliveries in flight): refused 3 with 503 and Retry-After",
    ]
    assert (intake.shed, intake.in_flight) == (4, 1)
