"""A send cut short (by a crash, a lost lease, an exit) still ends in a final state (S2, J1).

Each test is one interleaving the state machine in ``test_state_machine.py`` can reach,
written out so that its failure names the problem directly.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from parley.channels.base import ChannelKind, TransientChannelError
from parley.db import Database
from parley.demo.simulate import shopper_dict
from parley.integrations.shopify import payloads
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker
from parley.journeys.models import JourneyRun, RunStatus
from parley.messaging.models import Message, MessageStatus
from support import deliveries, drain, make_worker, post, recording_adapters, rows, seed, shopper
from support import signed as signed_delivery

LEASE = timedelta(seconds=60)


@pytest.fixture
def adapters():
    return recording_adapters()


def _worker(db: Database, adapters: Any, name: str) -> Worker:
    worker = make_worker(db, adapters)
    worker.name = name
    return worker


def _hand_over_and_stall(worker: Worker) -> tuple[list[Any], list[Any]]:
    """Claim, prepare and perform one batch, stopping before its answers are recorded."""
    prepared = worker._prepare_all(worker._claim())

    async def perform_all() -> list[Any]:
        return list(await asyncio.gather(*(worker._perform(job, work) for job, work in prepared)))

    return prepared, asyncio.run(perform_all())


def _cancel(db: Database, frozen_clock: Any, first_name: str, *, order_id: int = 501) -> None:
    body, headers = signed_delivery(
        "orders/cancelled",
        payloads.order_payload(
            order_id=order_id,
            number=order_id + 1000,
            customer=shopper_dict(shopper(first_name)),
            line_items=[{"title": "Tee", "quantity": 1, "price": "24.00", "sku": "T"}],
            created_at=frozen_clock.now,
            cancelled_at=frozen_clock.now,
        ),
        webhook_id=f"cancel-{order_id}",
    )
    assert post(db, None, body=body, headers=headers)["status"] == "accepted"


def test_send_interrupted_by_a_crash_is_held_even_if_the_order_was_cancelled_meanwhile(
    db, frozen_clock, adapters
):
    seed(db)
    post(db, deliveries("Alan", order_id=501, number=1501)[0])
    _hand_over_and_stall(_worker(db, adapters, "crashed"))  # the provider has it; we died
    _cancel(db, frozen_clock, "Alan", order_id=501)

    frozen_clock.advance(LEASE + timedelta(seconds=1))
    drain(_worker(db, adapters, "restarted"))

    assert len(adapters[ChannelKind.EMAIL].sent) == 1
    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD
    assert message.status_reason.startswith("held for review")
    [run] = rows(db, JourneyRun)
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, "order.cancelled")


def test_send_waiting_for_its_retry_is_closed_when_the_order_is_cancelled(
    db, frozen_clock, adapters
):
    seed(db)
    adapters[ChannelKind.EMAIL].script = [TransientChannelError("503 from provider")]
    post(db, deliveries("Alan", order_id=502, number=1502)[0])
    drain(_worker(db, adapters, "w1"))
    [message] = rows(db, Message)
    assert message.status == MessageStatus.QUEUED  # waiting for its retry
    _cancel(db, frozen_clock, "Alan", order_id=502)

    frozen_clock.advance(timedelta(days=2))
    drain(_worker(db, adapters, "w1"))

    assert adapters[ChannelKind.EMAIL].sent == []
    [job] = rows(db, Job)
    assert job.status == JobStatus.DONE
    [message] = rows(db, Message)
    assert message.status == MessageStatus.SKIPPED
    assert "order.cancelled" in (message.status_reason or "")


def test_late_answer_from_a_worker_that_lost_its_lease_does_not_reopen_the_message(
    db, frozen_clock, adapters
):
    """Worker A stalls past its lease; B reclaims the job and holds the message; then A's
    provider call comes back with a timeout and A runs its finish phase."""
    seed(db)
    post(db, deliveries("Alan", order_id=503, number=1503)[0])
    adapters[ChannelKind.EMAIL].script = [TransientChannelError("timeout")]
    stalled = _worker(db, adapters, "stalled")
    prepared, results = _hand_over_and_stall(stalled)

    frozen_clock.advance(LEASE + timedelta(seconds=1))
    drain(_worker(db, adapters, "other"))
    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD
    stalled._finish_all(prepared, results)

    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD
    [job] = rows(db, Job)
    assert (job.status, job.locked_by, job.attempts) == (JobStatus.DONE, "other/1", 2)
    frozen_clock.advance(timedelta(days=2))
    drain(_worker(db, adapters, "other"))
    [message] = rows(db, Message)
    assert message.status == MessageStatus.HELD
    assert adapters[ChannelKind.EMAIL].sent == []
