"""Jobs whose worker keeps losing the lease (it is killed, runs out of memory, stalls).

A job whose lease ran out is taken back with its attempt counted. Once its attempts are
spent it is taken back once more, only to settle what the lost attempt left (a send left
``sending`` is held for review), and then goes to the dead letter; if even that claim's
lease runs out, the next claim puts it there.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from parley.channels.base import ChannelKind
from parley.db import Database
from parley.jobs import claims, queue
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.journeys.engine import AdvanceJourney
from parley.messaging.models import Message, MessageStatus
from parley.messaging.service import OutboxSettings
from parley.messaging.templates import TemplateRenderer
from support import (
    TWO_CONFIRMATIONS,
    deliveries,
    drain,
    edit_journey,
    post,
    recording_adapters,
    rows,
    seed,
)

LEASE = timedelta(seconds=60)
LOST = "the worker holding it lost its lease (it stopped or stalled)"


def _claim_and_die(db: Database, name: str, *, max_attempts: int | None = None) -> list[int]:
    """A claim whose worker dies holding what it took: the lease runs out."""
    with db.transaction() as session:
        claimed = claims.claim(
            session, worker=name, limit=10, lease=LEASE, max_attempts=max_attempts
        )
    return [job.attempts for job in claimed]


def test_a_job_whose_worker_keeps_dying_ends_in_the_dead_letter(db, frozen_clock, caplog):
    # Given a job with three attempts
    with db.transaction() as session:
        queue.enqueue(session, kind="test.poison", payload={}, max_attempts=3)

    # When every worker that takes it dies holding it
    taken = []
    with caplog.at_level(logging.ERROR, logger="parley.jobs.claims"):
        for n in range(6):
            taken.append(_claim_and_die(db, f"w{n}"))
            frozen_clock.advance(LEASE + timedelta(seconds=1))

    # Then it is taken three times, once more to settle what it left, and then never
    [job] = rows(db, Job)
    assert taken == [[1], [2], [3], [4], [], []]
    assert (job.status, job.attempts, job.locked_until, job.locked_by) == (
        JobStatus.DEAD,
        4,
        None,
        "w4",
    )
    assert job.last_error == f"gave up after 4 attempts: {LOST}"
    assert [r.getMessage() for r in caplog.records] == [
        f"job {job.id} (test.poison) is dead: gave up after 4 attempts: {LOST}"
    ]
    with db.transaction() as session:
        assert [dead.id for dead in queue.list_dead(session)] == [job.id]


def test_the_deployments_budget_decides_when_a_lost_job_is_dead(db, frozen_clock):
    with db.transaction() as session:
        queue.enqueue(session, kind="test.poison", payload={}, max_attempts=8)

    taken = []
    for n in range(4):
        taken.append(_claim_and_die(db, f"w{n}", max_attempts=2))
        frozen_clock.advance(LEASE + timedelta(seconds=1))

    [job] = rows(db, Job)
    assert taken == [[1], [2], [3], []]
    assert (job.status, job.attempts) == (JobStatus.DEAD, 3)


def test_a_lost_job_with_attempts_left_is_taken_back_as_before(db, frozen_clock):
    with db.transaction() as session:
        queue.enqueue(session, kind="test.poison", payload={}, max_attempts=3)
    _claim_and_die(db, "w1")
    frozen_clock.advance(LEASE + timedelta(seconds=1))

    assert _claim_and_die(db, "w2") == [2]
    [job] = rows(db, Job)
    assert (job.status, job.locked_by, job.last_error) == (JobStatus.RUNNING, "w2", None)


def _journey_worker(db: Database, adapters: dict[ChannelKind, Any], name: str) -> Worker:
    task = AdvanceJourney(
        adapters=adapters,
        renderer=TemplateRenderer(),
        outbox_settings=OutboxSettings(public_url="http://parley.test", secret_key="k"),
    )
    return Worker(db, [task], WorkerConfig(batch_size=50, max_attempts=1), name=name)


def test_a_send_cut_short_on_its_last_attempt_is_held_and_its_job_dead_lettered(db, frozen_clock):
    # Given a journey sending twice, under a budget of one attempt
    edit_journey(db, "order_confirmation", workspace_id=seed(db), steps=TWO_CONFIRMATIONS)
    post(db, deliveries("Alan")[0])
    adapters = recording_adapters()
    crashed = _journey_worker(db, adapters, "crashed")

    # When the worker dies after handing the first message to the provider
    [(job, work)] = crashed._prepare_all(crashed._claim())
    asyncio.run(crashed._perform(job, work))
    frozen_clock.advance(LEASE + timedelta(seconds=1))
    assert drain(_journey_worker(db, adapters, "restarted")) == 1

    # Then the next worker holds that message for review, sends nothing more, and puts
    # the job in the dead letter, where a re-drive would go on from there
    [message] = rows(db, Message)
    assert (message.idempotency_key, message.status) == ("journey:1:0", MessageStatus.HELD)
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [dead] = rows(db, Job)
    assert (dead.status, dead.attempts, dead.locked_by) == (JobStatus.DEAD, 2, "restarted/1")
    assert dead.last_error == (
        f"gave up after 2 attempts: {LOST}; its attempts were spent, so it was taken back"
        " only to settle what it left, not to run again"
    )


def test_a_send_cut_short_on_its_last_attempt_with_nothing_after_it_is_held_and_done(
    db, frozen_clock
):
    seed(db)
    post(db, deliveries("Alan")[0])
    adapters = recording_adapters()
    crashed = _journey_worker(db, adapters, "crashed")
    [(job, work)] = crashed._prepare_all(crashed._claim())
    asyncio.run(crashed._perform(job, work))
    frozen_clock.advance(LEASE + timedelta(seconds=1))

    assert drain(_journey_worker(db, adapters, "restarted")) == 1

    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD
    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [settled] = rows(db, Job)
    assert (settled.status, settled.attempts) == (JobStatus.DONE, 2)
