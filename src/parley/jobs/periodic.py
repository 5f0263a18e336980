"""Periodic work as ordinary jobs, one per tick, whoever schedules it.

Every worker process runs the schedule. At each tick it enqueues the tick's job under the
idempotency key ``periodic:{kind}:{tick}``, so however many processes (on however many
machines) reach the same tick, the unique key keeps one job, and the claim gives it to one
worker; a crashed run is retried like any job. Ticks are aligned to the epoch (a
ten-minute schedule ticks at :00, :10, ...) so every process agrees on them without
talking to the others. A tick nobody reached (no worker was running) is not made up: the
next tick's run does the work, which suits housekeeping and scans that look at the state
of things rather than at what happened since the last run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from parley.jobs import queue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    """Run the task of ``kind`` once every ``every``, at the tick's start."""

    kind: str
    every: timedelta

    def __post_init__(self) -> None:
        if self.every < timedelta(seconds=1):
            raise ValueError(f"{self.kind}: a schedule ticks at most once a second")

    def tick(self, now: datetime) -> datetime:
        """The start of the tick ``now`` falls in."""
        ticks = (now - EPOCH) // self.every
        return EPOCH + ticks * self.every

    def next_tick(self, now: datetime) -> datetime:
        return self.tick(now) + self.every

    def key(self, tick: datetime) -> str:
        return f"periodic:{self.kind}:{tick.astimezone(UTC).isoformat()}"


def enqueue_ticks(session: Session, schedules: Iterable[Schedule], *, now: datetime) -> None:
    """Enqueue each schedule's job for the tick ``now`` falls in, unless one is there.

    Runs in the caller's transaction; a tick another process enqueued first is left as it
    is (the job may already be running or done).
    """
    jobs = []
    for schedule in schedules:
        tick = schedule.tick(now)
        jobs.append(
            {
                "kind": schedule.kind,
                "payload": {"tick": tick.isoformat()},
                "due_at": tick,
                "idempotency_key": schedule.key(tick),
            }
        )
    queue.enqueue_many(session, jobs)
