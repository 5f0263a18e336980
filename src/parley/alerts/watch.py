"""The alerts watch: a periodic job that reads the backlog and records what changed.

Every worker process schedules it (:mod:`parley.jobs.periodic`), so one runs per tick
however many workers there are, and the deployment's own jobs are claimed ahead of every
store's backlog (:mod:`parley.jobs.claims`): a watch is not held up by the backlog it is
watching. With no worker running at all, nothing watches; ``GET /metrics``, answered by
the web server from the same table, is the view that does not depend on them.

Each alert's row is read ``FOR UPDATE`` and written back in the watch's transaction, so
of two watches at once (a slow tick overlapping the next) one sees the other's change:
an alert starts or stops firing once, and is notified once (the notification job's key
is the alert, its change and the time it began firing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.alerts import rules
from parley.alerts.models import Alert
from parley.alerts.rules import NOTIFY_KIND, Thresholds
from parley.clock import utc_now
from parley.db.base import table_of
from parley.db.upsert import insert_for
from parley.jobs import queue
from parley.jobs.backlog import Backlog, read_backlog
from parley.jobs.periodic import Schedule
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome
from parley.messaging.senders import refused_now
from parley.privacy import service as privacy
from parley.workspaces.models import Workspace

log = logging.getLogger(__name__)

WATCH_KIND = "alerts.watch"


def watch_schedule(every: timedelta) -> Schedule:
    """The watch, once every ``every`` (``PARLEY_ALERT_CHECK_SECONDS``, 30 s by default)."""
    return Schedule(kind=WATCH_KIND, every=every)


ALERTS = table_of(Alert)


@dataclass(frozen=True)
class Change:
    """An alert that started (``firing``) or stopped firing at ``at``."""

    name: str
    firing: bool
    summary: str
    since: datetime
    """When it began to fire."""
    at: datetime

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    def payload(self) -> dict[str, Any]:
        """What the notification posts: ``text`` is what Slack's and Mattermost's incoming
        webhooks show; the rest is for a program."""
        return {
            "text": f"parley alert {self.name} {self.status}: {self.summary}",
            "alert": self.name,
            "status": self.status,
            "summary": self.summary,
            "since": self.since.isoformat(),
            "at": self.at.isoformat(),
        }


def watch(session: Session, thresholds: Thresholds, *, now: datetime, notify: bool) -> list[Change]:
    """Read the backlog, move each alert's row to what it says, and return the changes;
    with ``notify``, queue a notification for each in the same transaction."""
    backlog = read_backlog(session, now=now, dead_since=thresholds.dead_letter_window)
    rows = _locked_rows(session, now)
    verdicts = rules.evaluate(
        backlog,
        thresholds,
        firing={name for name, row in rows.items() if row.firing_since is not None},
        store_names=store_names(session, backlog),
        waiting=(
            privacy.waiting_since(session, before=now - thresholds.privacy_after)
            if thresholds.privacy_after
            else None
        ),
        refused=refused_now(session),
    )
    changes = []
    for name, summary in verdicts.items():
        row = rows[name]
        change = _move(row, summary, backlog, now)
        if change is not None:
            changes.append(change)
    if notify and changes:
        queue.enqueue_many(
            session,
            [
                {
                    "kind": NOTIFY_KIND,
                    "payload": change.payload(),
                    "idempotency_key": (
                        f"alert:{change.name}:{change.status}:{change.since.isoformat()}"
                    ),
                    "due_at": now,
                }
                for change in changes
            ],
        )
    return changes


def _move(row: Alert, summary: str | None, backlog: Backlog, now: datetime) -> Change | None:
    row.updated_at = now
    if summary is not None:
        row.summary = summary
        if row.firing_since is None:
            row.firing_since = now
            return Change(row.name, True, summary, now, now)
        return None
    if row.firing_since is None:
        return None
    since, row.firing_since, row.resolved_at = row.firing_since, None, now
    resolved = rules.resolution(row.name, backlog, fired_for=(now - since).total_seconds())
    return Change(row.name, False, resolved, since, now)


def _locked_rows(session: Session, now: datetime) -> dict[str, Alert]:
    """Every alert's row, made if missing, locked until the transaction ends."""
    session.execute(
        insert_for(session, ALERTS).on_conflict_do_nothing(index_elements=["name"]),
        [{"name": name, "summary": "", "updated_at": now} for name in rules.names()],
    )
    found = session.scalars(
        select(Alert).where(Alert.name.in_(rules.names())).order_by(Alert.name).with_for_update()
    )
    return {row.name: row for row in found}


def firing(session: Session) -> list[Alert]:
    """The alerts firing now, as the last watch left them, by name."""
    return list(
        session.scalars(select(Alert).where(Alert.firing_since.is_not(None)).order_by(Alert.name))
    )


def store_names(session: Session, backlog: Backlog) -> dict[int, str]:
    """The slugs of the stores the backlog names as waiting longest, by workspace id."""
    ids = {
        lane.longest_waiting_store
        for lane in backlog.lanes.values()
        if lane.longest_waiting_store is not None
    }
    if not ids:
        return {}
    found = session.execute(select(Workspace.id, Workspace.slug).where(Workspace.id.in_(ids)))
    return {row.id: row.slug for row in found}


class WatchTask:
    """The watch as a job: it reads and writes in ``prepare``, in the worker's transaction,
    and logs what changed once that has committed."""

    kind = WATCH_KIND

    def __init__(self, thresholds: Thresholds, *, notify: bool) -> None:
        """``notify``: queue a notification for each change (an alert webhook is set)."""
        self.thresholds = thresholds
        self.notify = notify

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> list[Change]:
        return watch(session, self.thresholds, now=utc_now(), notify=self.notify)

    async def perform(self, work: list[Change]) -> list[Change]:
        return work

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        for _, changes, _ in items:
            for change in changes:
                level = logging.WARNING if change.firing else logging.INFO
                log.log(level, "alert %s %s: %s", change.name, change.status, change.summary)
        return [Done() for _ in items]
