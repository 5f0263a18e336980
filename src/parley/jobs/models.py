"""The job table."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigId, JsonType, UTCDateTime


class JobStatus(StrEnum):
    """Stored values: never renumber or reuse."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Lane(StrEnum):
    """The queue a job waits in; a claim takes transactional work before marketing work.

    Stored values: never rename. They are the consent purposes' names, so a journey's
    purpose is its jobs' lane.
    """

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


PENDING_ONLY = text("status = 'pending'")
NOT_PENDING = text("status <> 'pending'")


class Job(Base):
    """A unit of work due at a time, claimed under a lease, retried with backoff."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        # Expired leases, and finished jobs for the sweep. On PostgreSQL not pending
        # rows: in due order across every store, the planner took it for a store's part of
        # a claim and walked another store's backlog (a million rows: 120 ms a store).
        # SQLite's claim names its index instead (its partial indexes cannot serve
        # ``status = 'running'`` from ``status <> 'pending'``).
        Index("ix_jobs_due", "status", "due_at", postgresql_where=NOT_PENDING),
        Index("ix_jobs_workspace_status", "workspace_id", "status"),
        # Each store's waiting jobs per lane in due order: a fair claim finds the stores
        # with due work and takes each one's share from here (:mod:`parley.jobs.claims`).
        # Only pending rows, so it stays the size of the backlog, not of the history.
        Index(
            "ix_jobs_pending_by_store",
            "workspace_id",
            "lane",
            "due_at",
            sqlite_where=PENDING_ONLY,
            postgresql_where=PENDING_ONLY,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    lane: Mapped[str] = mapped_column(String(16), default=Lane.TRANSACTIONAL)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    waiting_for: Mapped[str | None] = mapped_column(String(32))
    """What a job put back without running waits for (:class:`~parley.jobs.worker.Later`'s
    ``cause``); cleared once it runs."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
