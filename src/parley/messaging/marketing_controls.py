"""The store's controls over its marketing in flight: the kill switch
(:mod:`parley.messaging.marketing_pause`) and its own rate
(:mod:`parley.messaging.marketing_rate`), and what is waiting on them.

One place for the admin page, the API and the CLI to change them through, so each change
is audited the same way, with who made it, and the sends waiting on the old setting are
re-planned at once: a resume or a new rate takes effect in the next batch, not when each
waiting send next looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from parley.accounts.service import audit
from parley.jobs import queue
from parley.jobs.queue import WaitingJobs
from parley.messaging import marketing_rate
from parley.messaging.marketing_pause import SETTING as PAUSE_SETTING
from parley.messaging.marketing_pause import MarketingPause
from parley.messaging.marketing_rate import SETTING as RATE_SETTING
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.types import WaitingFor
from parley.workspaces.models import Workspace


@dataclass(frozen=True)
class Actor:
    """Who changed a control, as the audit log records them."""

    email: str
    user_id: int | None = None
    ip: str | None = None


@dataclass(frozen=True)
class MarketingControls:
    """The store's switch and rate as they stand, and its sends waiting, by what for."""

    pause: MarketingPause
    rate: MarketingRate
    waiting: list[WaitingJobs]

    def as_json(self) -> dict[str, Any]:
        """As the API answers and the CLI prints it."""
        return {
            "paused": self.pause.as_settings(),
            "rate": self.rate.as_settings(),
            "waiting": [
                {
                    "waiting_for": group.waiting_for,
                    "count": group.count,
                    "first_due": group.first_due.isoformat(),
                    "last_due": group.last_due.isoformat(),
                }
                for group in self.waiting
            ],
        }


def controls_of(session: Session, workspace: Workspace) -> MarketingControls:
    return MarketingControls(
        pause=MarketingPause.of(workspace.settings),
        rate=MarketingRate.of(workspace.settings),
        waiting=queue.waiting_jobs(session, workspace_id=workspace.id),
    )


def set_paused(
    session: Session, workspace: Workspace, *, paused: bool, actor: Actor, now: datetime
) -> bool:
    """Pause the store's marketing, or resume it; False when it already was so.

    A resume brings the sends the pause held forward, to be decided in the next batch
    (consent, quiet hours and the frequency cap as for any send). Audited as
    ``marketing_paused`` / ``marketing_resumed``, a resume with how long it was paused.
    """
    _lock_settings(session, workspace)
    current = MarketingPause.of(workspace.settings)
    if current.is_paused == paused:
        return False
    pause = MarketingPause(since=now, by=actor.email) if paused else MarketingPause()
    workspace.settings = {**(workspace.settings or {}), PAUSE_SETTING: pause.as_settings()}
    detail: dict[str, object] = {}
    if not paused:
        detail["paused_since"] = current.as_settings()
        detail["brought_forward"] = queue.bring_forward(
            session, workspace_id=workspace.id, waiting_for=WaitingFor.MARKETING_PAUSED, now=now
        )
    _audit(
        session,
        workspace,
        "marketing_paused" if paused else "marketing_resumed",
        actor=actor,
        now=now,
        detail=detail,
    )
    return True


def set_rate(
    session: Session, workspace: Workspace, rate: MarketingRate, *, actor: Actor, now: datetime
) -> bool:
    """Set (or lift) the store's marketing rate; False when it already was so.

    The sends waiting for the old rate are booked again at the new one
    (:func:`parley.messaging.marketing_rate.replan`). Audited as
    ``marketing_rate_changed`` with the old and new rate and how many were re-planned.
    """
    _lock_settings(session, workspace)
    current = MarketingRate.of(workspace.settings)
    if current == rate:
        return False
    workspace.settings = {**(workspace.settings or {}), RATE_SETTING: rate.as_settings()}
    replanned = marketing_rate.replan(session, workspace_id=workspace.id, now=now)
    _audit(
        session,
        workspace,
        "marketing_rate_changed",
        actor=actor,
        now=now,
        detail={"from": current.per_hour, "to": rate.per_hour, "replanned": replanned},
    )
    return True


def _lock_settings(session: Session, workspace: Workspace) -> None:
    """Read the store's settings again under its row lock, to write them back whole.

    Read without it, this change would put back whatever another change (an admin's
    quiet hours, say) committed since the row was read (PostgreSQL, read committed), and
    the two would not take turns. SQLite runs one writer at a time already.
    """
    session.refresh(workspace, with_for_update=True)


def _audit(
    session: Session,
    workspace: Workspace,
    action: str,
    *,
    actor: Actor,
    now: datetime,
    detail: dict[str, object],
) -> None:
    audit(
        session,
        workspace_id=workspace.id,
        action=action,
        now=now,
        actor_id=actor.user_id,
        actor_email=actor.email,
        ip=actor.ip,
        detail=detail,
    )
