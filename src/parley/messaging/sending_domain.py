"""Marketing email waits for a sending domain set up for bulk mail (RELIABILITY S12).

Gmail and Yahoo refuse or spam-folder bulk mail from a domain without SPF, DKIM and a
DMARC policy aligned with From (:mod:`parley.channels.email_smtp.domain`). An order
update is one message a customer expects; a promotion goes to the store's whole list, is
bulk mail in their eyes, and sent from a domain they distrust it would hurt every later
email from the deployment's address, order updates included. So:

- an hourly job (``email.check_domain``, one per tick across every worker) reads the From
  domain's records over DNS with no transaction open and keeps what falls short in
  ``sending_domains``, logging a change at WARNING;
- while the last reading has problems, the policy passes over email for marketing, with
  the reason on the message (``email: the sending domain shop.example is not set up for
  bulk mail: no DMARC record ...``), and the message goes on another channel or is
  skipped; order updates go as before;
- a domain never read (the check turned off, or DNS never answered) holds nothing back:
  parley cannot know what it never read.

DNS that does not answer is retried with backoff like any outage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from parley.channels.base import ChannelError
from parley.channels.email_smtp.domain import SendingDomain
from parley.clock import utc_now
from parley.jobs.periodic import Schedule
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Retry
from parley.messaging.models import SendingDomainCheck

log = logging.getLogger(__name__)

CHECK_KIND = "email.check_domain"
CHECK_SCHEDULE = Schedule(CHECK_KIND, timedelta(hours=1))


def record(session: Session, found: SendingDomain, *, now: datetime) -> list[str] | None:
    """Keep a reading of the domain; the problems, when they changed since the last."""
    row = session.get(SendingDomainCheck, found.domain)
    problems = found.problems
    if row is None:
        row = SendingDomainCheck(domain=found.domain, problems=[], checked_at=now)
        session.add(row)
        changed = bool(problems)
    else:
        changed = list(row.problems) != problems
    row.problems = problems
    row.checked_at = now
    session.flush()
    return problems if changed else None


def problems_of(session: Session, domain: str) -> list[str] | None:
    """What the last reading of ``domain`` found short (empty: ready); None: never read."""
    row = session.get(SendingDomainCheck, domain.lower())
    return None if row is None else list(row.problems)


def refusal(domain: str, problems: list[str] | None) -> str | None:
    """Why marketing email may not go from ``domain`` now; None when it may (never read,
    or nothing short)."""
    if not problems:
        return None
    return f"the sending domain {domain} is not set up for bulk mail: {'; '.join(problems)}"


class DomainCheckTask:
    """The hourly reading as a job: DNS is read in ``perform``, the result kept in the
    batch's last transaction."""

    kind = CHECK_KIND

    def __init__(self, check: Callable[[], Awaitable[SendingDomain]]) -> None:
        self.check = check

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> ClaimedJob:
        return job

    async def perform(self, work: ClaimedJob) -> SendingDomain:
        return await self.check()

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, _, result in items:
            if isinstance(result, BaseException):
                log.warning("the sending domain could not be read (job %s): %s", job.id, result)
                reason = (
                    result.reason
                    if isinstance(result, ChannelError)
                    else f"{type(result).__name__}: {result}"
                )
                outcomes.append(Retry(reason))
                continue
            changed = record(session, result, now=utc_now())
            if changed is not None:
                if changed:
                    log.warning("%s: marketing email waits until this is fixed", result.describe())
                else:
                    log.warning("%s: marketing email goes again", result.describe())
            outcomes.append(Done())
        return outcomes
