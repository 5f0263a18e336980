"""A batch prepared in chunks (SQLite, ``parley serve``): a chunk that fails outright
strands neither the chunks committed before it nor its own jobs."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from parley.channels.base import ChannelKind
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.journeys.engine import AdvanceJourney
from parley.messaging.models import Message, MessageStatus
from parley.messaging.service import OutboxSettings
from parley.messaging.templates import TemplateRenderer
from support import deliveries, drain, post, recording_adapters, rows, seed

DROPPED = OperationalError("UPDATE jobs ...", {}, Exception("server closed the connection"))


def test_a_chunk_that_fails_outright_is_retried_and_the_chunks_before_it_are_sent(
    db, frozen_clock, monkeypatch, caplog
):
    # Given two orders' confirmations claimed in one batch, prepared a job to a chunk
    seed(db)
    post(db, deliveries("Ada", order_id=501, number=1501)[0])
    post(db, deliveries("Alan", order_id=502, number=1502)[0])
    adapters = recording_adapters()
    task = AdvanceJourney(
        adapters=adapters,
        renderer=TemplateRenderer(),
        outbox_settings=OutboxSettings(public_url="http://parley.test", secret_key="k"),
    )
    worker = Worker(db, [task], WorkerConfig(batch_size=50, prepare_chunk=1), name="w1")
    chunks = 0
    prepare_chunk = Worker._prepare_chunk

    def connection_drops_in_the_second_chunk(self: Worker, *args: Any) -> Any:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise DROPPED
        return prepare_chunk(self, *args)

    monkeypatch.setattr(Worker, "_prepare_chunk", connection_drops_in_the_second_chunk)

    # When the connection drops while the second chunk is prepared
    with caplog.at_level(logging.ERROR, logger="parley.jobs.worker"):
        assert asyncio.run(worker.run_once()) == 2

    # Then the first chunk's message, committed ``sending``, is sent in the same round;
    # the second chunk's job (its writes rolled back) is retried with the error, logged
    [ada] = rows(db, Message)
    assert (ada.recipient, ada.status, ada.provider_message_id) == (
        "ada@example.com",
        MessageStatus.SENT,
        "email-0",
    )
    assert [email.to for email in adapters[ChannelKind.EMAIL].sent] == ["ada@example.com"]
    first, second = rows(db, Job)
    assert (first.status, first.attempts) == (JobStatus.DONE, 1)
    assert (second.status, second.attempts, second.last_error) == (
        JobStatus.PENDING,
        1,
        f"OperationalError: {DROPPED}",
    )
    assert timedelta(seconds=2.5) <= second.due_at - frozen_clock.now <= timedelta(seconds=5)
    assert [(r.levelname, r.getMessage(), r.exc_info[1]) for r in caplog.records] == [
        ("ERROR", "preparing 1 jobs failed; retrying them later", DROPPED)
    ]

    # And once its backoff has passed, the second chunk's message goes out as well
    frozen_clock.advance(timedelta(seconds=5))
    assert drain(worker) == 1
    assert [email.to for email in adapters[ChannelKind.EMAIL].sent] == [
        "ada@example.com",
        "alan@example.com",
    ]
    assert [m.status for m in rows(db, Message)] == [MessageStatus.SENT, MessageStatus.SENT]
