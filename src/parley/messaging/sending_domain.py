"""Marketing email waits for a sending domain set up for bulk mail (RELIABILITY S12).

Gmail and Yahoo refuse or spam-folder bulk mail from a domain without SPF, DKIM and a
DMARC policy aligned with From (:mod:`parley.channels.email_smtp.domain`). An order
update is one message a customer expects; a promotion goes to the store's whole list, is
bulk mail in their eyes, and sent from a domain they distrust it would hurt every later
email from the deployment's address, order updates included. So:

- an hourly job (``email.check_domain``, one per tick across every worker) reads the From
  domain's records over DNS with no transaction open and keeps what falls short in
  ``sending_domains``, logging a change at WARNING. It reads the stores' own sending
  domains too, which decide whether a store's email goes from its own address;
- while the last reading has problems, the policy passes over email for marketing, with
  the reason on the message (``email: the sending domain shop.example is not set up for
  bulk mail: no DMARC record ...``), and the message goes on another channel or is
  skipped; order updates go as before;
- a domain never read (the check turned off, or DNS never answered) holds nothing back:
  parley cannot know what it never read.

DNS that does not answer is retried with backoff like any outage.
"""

from __future__ import annotations

import asyncio
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
from parley.messaging import email_sender
from parley.messaging.models import SendingDomainCheck

log = logging.getLogger(__name__)

CHECK_KIND = "email.check_domain"
CHECK_SCHEDULE = Schedule(CHECK_KIND, timedelta(hours=1))


def record(session: Session, found: SendingDomain, *, now: datetime) -> list[str] | None:
    """Keep a reading of the domain; the problems, when they changed since the last."""
    row = session.get(SendingDomainCheck, found.domain)
    problems = found.problems
    if row is None:
        row = SendingDomainCheck(domain=found.domain, problems=[], verifications=[], checked_at=now)
        session.add(row)
        changed = bool(problems)
    else:
        changed = list(row.problems) != problems
    row.problems = problems
    row.verifications = sorted(set(found.verifications))
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


DomainReader = Callable[[str, str | None], Awaitable[SendingDomain]]
"""Reads one domain's records over DNS, with a DKIM selector (None: the deployment's)."""


DomainsToRead = dict[str, str | None]
"""One tick's domains, each with its DKIM selector: the deployment's, then the stores'."""


class DomainCheckTask:
    """The hourly reading as a job: DNS is read in ``perform``, with no transaction open,
    and the result kept in the batch's last transaction.

    It reads the deployment's From domain and every store's own sending domain
    (:mod:`parley.messaging.email_sender`). Only the deployment's failing to answer
    retries the job: a store's domain whose DNS does not answer keeps its last reading
    until the next hour, and cannot hold back the deployment's or another store's.
    """

    kind = CHECK_KIND

    def __init__(self, read: DomainReader, deployment_domain: str) -> None:
        self.read = read
        self.deployment_domain = deployment_domain

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> DomainsToRead:
        return {self.deployment_domain: None} | {
            domain: selector
            for domain, selector in email_sender.domains_to_read(session).items()
            if domain != self.deployment_domain
        }

    def prepare(
        self, session: Session, job: ClaimedJob, batch: DomainsToRead | None = None
    ) -> DomainsToRead:
        return batch if batch is not None else self.preload(session, [job])

    async def perform(self, work: DomainsToRead) -> list[SendingDomain | BaseException]:
        return await asyncio.gather(
            *(self.read(domain, selector) for domain, selector in work.items()),
            return_exceptions=True,
        )

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, DomainsToRead, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        now = utc_now()
        for job, work, answers in items:
            if isinstance(answers, BaseException):
                answers = [answers] * len(work)
            outcome: Outcome = Done()
            for domain, result in zip(work, answers, strict=True):
                if isinstance(result, BaseException):
                    log.warning(
                        "the sending domain %s could not be read (job %s): %s",
                        domain,
                        job.id,
                        result,
                    )
                    if domain == self.deployment_domain:
                        outcome = Retry(_reason(result))
                    continue
                changed = record(session, result, now=now)
                if changed is not None:
                    log.warning(
                        "%s: %s",
                        result.describe(),
                        _consequence(
                            is_deployments=domain == self.deployment_domain, is_short=bool(changed)
                        ),
                    )
            outcomes.append(outcome)
        return outcomes


def _consequence(*, is_deployments: bool, is_short: bool) -> str:
    if is_deployments:
        return (
            "marketing email waits until this is fixed"
            if is_short
            else "marketing email goes again"
        )
    if is_short:
        return "stores sending from it send from the deployment's address until this is fixed"
    return "stores that proved it theirs send from it again"


def _reason(error: BaseException) -> str:
    return error.reason if isinstance(error, ChannelError) else f"{type(error).__name__}: {error}"
