"""The alerts watch: a late lane or a fresh dead letter fires once, is notified once to the
engineer's webhook (retried like any provider), and resolves once; after an outage the
returning worker's first claim runs the watch ahead of the backlog (RELIABILITY W12)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import timedelta

import httpx2
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from parley.alerts.models import Alert
from parley.alerts.notify import NotifyTask
from parley.alerts.rules import DEAD_LETTER, NOTIFY_KIND, Thresholds, late
from parley.alerts.watch import WATCH_KIND, WatchTask, watch, watch_schedule
from parley.channels.http import make_client
from parley.clock import utc_now
from parley.db import Database
from parley.jobs import queue
from parley.jobs.models import Job, JobStatus, Lane
from parley.jobs.worker import Worker, WorkerConfig
from parley.journeys.engine import AdvanceJourney
from parley.messaging.service import OutboxSettings
from parley.messaging.templates import TemplateRenderer
from parley.runtime import Runtime
from parley.settings import Settings, get_settings
from support import count, deliveries, post, recording_adapters, rows, seed

HOOK = "http://alerts.test/hook"
LATE = late(Lane.TRANSACTIONAL)
THRESHOLDS = Thresholds(late_seconds=120, dead_letter_window=timedelta(minutes=15))


class Receiver:
    """The engineer's webhook: records each post and answers with the next scripted status."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.posts: list[dict] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.posts.append(json.loads(request.content))
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx2.Response(status, text="ok" if status < 400 else "no")

    def client(self) -> httpx2.AsyncClient:
        return make_client(5.0, transport=httpx2.MockTransport(self.handle))


def late_jobs(db, n: int, *, waited: timedelta, store: int | None) -> None:
    with db.transaction() as session:
        for _ in range(n):
            queue.enqueue(
                session, kind="test.job", payload={}, workspace_id=store, due_at=utc_now() - waited
            )


def watch_now(db, *, notify: bool = True):
    with db.transaction() as session:
        return watch(session, THRESHOLDS, now=utc_now(), notify=notify)


def alert(db, name: str) -> Alert:
    [found] = rows(db, Alert, Alert.name == name, order_by=lambda model: model.name)
    return found


def notifications(db) -> list[dict]:
    return [job.payload for job in rows(db, Job, Job.kind == NOTIFY_KIND)]


def test_a_late_lane_fires_once_is_notified_once_and_resolves_once(db, frozen_clock):
    store = seed(db)
    late_jobs(db, 3, waited=timedelta(minutes=3), store=store)

    [fired] = watch_now(db)
    frozen_clock.advance(timedelta(seconds=30))
    assert watch_now(db) == []

    assert (fired.name, fired.firing) == (LATE, True)
    assert alert(db, LATE).firing_since == fired.at == fired.since
    [notice] = notifications(db)
    assert notice == {
        "text": f"parley alert {LATE} firing: {fired.summary}",
        "alert": LATE,
        "status": "firing",
        "summary": fired.summary,
        "since": fired.since.isoformat(),
        "at": fired.at.isoformat(),
    }
    assert fired.summary.startswith("Order updates are 3 min late: 3 jobs due now across 1 store")

    with db.transaction() as session:
        session.execute(update(Job).values(status=JobStatus.DONE))
    frozen_clock.advance(timedelta(seconds=30))
    [resolved] = watch_now(db)

    assert (resolved.name, resolved.firing, resolved.since) == (LATE, False, fired.since)
    assert resolved.summary == (
        "Order updates are on time again: the oldest due job has waited 0 s (this alert "
        "fired for 1 min)."
    )
    assert (alert(db, LATE).firing_since, alert(db, LATE).resolved_at) == (None, utc_now())
    assert [n["status"] for n in notifications(db)] == ["firing", "resolved"]
    assert watch_now(db) == []
    assert len(notifications(db)) == 2


def test_without_an_alert_webhook_the_change_is_recorded_and_nothing_is_queued(db, frozen_clock):
    seed(db)
    late_jobs(db, 1, waited=timedelta(minutes=10), store=None)

    [fired] = watch_now(db, notify=False)

    assert fired.name == LATE
    assert alert(db, LATE).firing_since == utc_now()
    assert notifications(db) == []


def test_jobs_reaching_the_dead_letter_fire_the_dead_letter_alert(db, frozen_clock):
    store = seed(db)
    late_jobs(db, 2, waited=timedelta(0), store=store)
    with db.transaction() as session:
        session.execute(
            update(Job).values(status=JobStatus.DEAD, last_error="gave up", updated_at=utc_now())
        )

    [fired] = watch_now(db, notify=False)

    assert (fired.name, fired.firing) == (DEAD_LETTER, True)
    assert fired.summary.startswith(
        "2 jobs reached the dead letter in the last 15 min (test.job: 2); 2 in it now."
    )
    frozen_clock.advance(timedelta(minutes=15, seconds=1))
    [resolved] = watch_now(db, notify=False)
    assert (resolved.name, resolved.firing) == (DEAD_LETTER, False)


def test_two_watches_at_once_fire_the_alert_once(db, frozen_clock):
    seed(db)
    late_jobs(db, 1, waited=timedelta(minutes=10), store=None)
    start = threading.Barrier(2)
    changes: list = []

    def one_watch() -> None:
        start.wait()
        changes.extend(watch_now(db))

    threads = [threading.Thread(target=one_watch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [change.name for change in changes] == [LATE]
    assert len(notifications(db)) == 1


def worker(db, receiver: Receiver, *, batch_size: int) -> Worker:
    journeys = AdvanceJourney(
        adapters=recording_adapters(),
        renderer=TemplateRenderer(),
        outbox_settings=OutboxSettings(public_url="http://parley.test", secret_key="k"),
    )
    return Worker(
        db,
        [
            journeys,
            WatchTask(THRESHOLDS, notify=True),
            NotifyTask(HOOK, receiver.client(), source="https://parley.acme.test"),
        ],
        WorkerConfig(batch_size=batch_size, backoff_base_seconds=5.0),
        schedules=[watch_schedule(timedelta(seconds=30))],
    )


def tick_and_drain(running: Worker) -> None:
    async def go() -> None:
        await running.enqueue_due_ticks()
        await running.run_until_idle()

    asyncio.run(go())


def test_after_an_outage_the_returning_worker_alerts_then_says_it_caught_up(
    db, frozen_clock, caplog
):
    seed(db)
    for n in range(6):
        post(db, deliveries("Ada", order_id=600 + n, number=1600 + n)[0])
    frozen_clock.advance(timedelta(minutes=5))
    receiver = Receiver()
    returning = worker(db, receiver, batch_size=2)

    with caplog.at_level(logging.INFO, logger="parley.alerts"):
        tick_and_drain(returning)
    confirmations = sum(len(a.sent) for a in returning.tasks["journeys.advance"].adapters.values())

    assert confirmations == 6
    [fired] = receiver.posts
    assert (fired["alert"], fired["status"], fired["source"]) == (
        LATE,
        "firing",
        "https://parley.acme.test",
    )
    assert fired["text"] == (
        f"parley alert {LATE} firing: {fired['summary']} (https://parley.acme.test)"
    )
    assert fired["summary"].startswith(
        "Order updates are 5 min late: 5 jobs due now across 1 store; the longest waiting is "
        "store 'demo'."
    )
    assert f"alert {LATE} firing: Order updates are 5 min late" in caplog.text

    frozen_clock.advance(timedelta(seconds=30))
    tick_and_drain(returning)

    assert [(p["alert"], p["status"]) for p in receiver.posts] == [
        (LATE, "firing"),
        (LATE, "resolved"),
    ]
    assert count(db, Job, Job.kind == WATCH_KIND, Job.status == JobStatus.DONE) == 2
    assert count(db, Job, Job.kind == NOTIFY_KIND, Job.status == JobStatus.DONE) == 2


def test_a_receiver_that_is_down_is_retried_with_backoff_and_posted_once(db, frozen_clock):
    seed(db)
    late_jobs(db, 1, waited=timedelta(minutes=10), store=None)
    watch_now(db)
    receiver = Receiver(503, 503, 200)
    running = worker(db, receiver, batch_size=10)

    for _ in range(3):
        asyncio.run(running.run_until_idle())
        frozen_clock.advance(timedelta(hours=1))

    assert [p["status"] for p in receiver.posts] == ["firing"] * 3
    [job] = rows(db, Job, Job.kind == NOTIFY_KIND)
    assert (job.status, job.attempts) == (JobStatus.DONE, 3)


def test_a_resolution_waits_for_its_firing_post_that_is_being_retried(db, frozen_clock):
    """The receiver was down when the alert fired and the lane caught up meanwhile: the
    channel must end on "resolved", not on a firing post that came back late."""
    seed(db)
    late_jobs(db, 1, waited=timedelta(minutes=10), store=None)
    watch_now(db)
    receiver = Receiver(503)
    running = worker(db, receiver, batch_size=10)
    asyncio.run(running.run_until_idle())
    with db.transaction() as session:
        session.execute(update(Job).where(Job.kind == "test.job").values(status=JobStatus.DONE))
    frozen_clock.advance(timedelta(seconds=1))
    [resolved] = watch_now(db)

    for _ in range(3):
        asyncio.run(running.run_until_idle())
        frozen_clock.advance(timedelta(minutes=1))

    assert resolved.firing is False
    assert [(p["alert"], p["status"]) for p in receiver.posts] == [
        (LATE, "firing"),
        (LATE, "firing"),
        (LATE, "resolved"),
    ]
    assert [
        (job.payload["status"], job.status) for job in rows(db, Job, Job.kind == NOTIFY_KIND)
    ] == [
        ("firing", JobStatus.DONE),
        ("resolved", JobStatus.DONE),
    ]


@pytest.mark.parametrize("status", [400, 404])
def test_a_receiver_that_refuses_the_post_ends_it_in_the_dead_letter_at_once(
    db, frozen_clock, status
):
    seed(db)
    late_jobs(db, 1, waited=timedelta(minutes=10), store=None)
    watch_now(db)
    receiver = Receiver(status)

    asyncio.run(worker(db, receiver, batch_size=10).run_until_idle())

    [job] = rows(db, Job, Job.kind == NOTIFY_KIND)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error == f"the alert webhook answered HTTP {status}: no"
    assert len(receiver.posts) == 1
    with db.transaction() as session:
        assert session.scalar(select(Alert.firing_since).where(Alert.name == DEAD_LETTER)) is None


def test_the_deployment_s_settings_set_the_watch_s_interval_thresholds_and_webhook(tmp_path):
    settings = get_settings(
        database_url=f"sqlite:///{tmp_path}/unused.db",
        alert_late_seconds=30,
        alert_dead_letter_minutes=0,
        alert_webhook_url=HOOK,
        alert_check_seconds=5,
    )
    runtime = Runtime(settings=settings, db=Database(settings.database_url), adapters={})

    tasks = {task.kind: task for task in runtime.tasks()}

    assert tasks[WATCH_KIND].thresholds == Thresholds(
        late_seconds=30, dead_letter_window=timedelta(0)
    )
    assert (tasks[WATCH_KIND].notify, tasks[NOTIFY_KIND].url) == (True, HOOK)
    assert runtime.schedules()[1] == watch_schedule(timedelta(seconds=5))
    asyncio.run(runtime.aclose())
    default = Runtime(settings=get_settings(), db=Database(settings.database_url), adapters={})
    unset = {task.kind: task for task in default.tasks()}
    asyncio.run(default.aclose())
    assert (unset[WATCH_KIND].notify, unset[NOTIFY_KIND].url) == (False, None)


@pytest.mark.parametrize(
    "url", ["hooks.slack.com/services/T0/B0/x", "ftp://alerts.test/", "https://"]
)
def test_an_alert_webhook_that_is_not_an_http_url_is_refused_at_start(url):
    with pytest.raises(ValidationError, match="alert_webhook_url"):
        Settings(alert_webhook_url=url)
