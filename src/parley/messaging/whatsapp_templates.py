"""What Meta says of the store's WhatsApp templates: each one's review status and category.

Outside the 24-hour customer-service window WhatsApp carries only templates Meta has
approved, and Meta classes each one as marketing, utility or authentication. The class is
Meta's, not the store's: a template written as an order update can be approved as
marketing, and Meta re-classes approved templates on its own (it tells the business by
webhook). A marketing template is marketing whatever message it carries, so it needs the
customer's marketing consent on WhatsApp (RELIABILITY S14); a paused, disabled or
rejected one would only come back as an error from Meta, so the policy passes over it and
the message falls back to the next channel at once, with the reason written down.

Where the standings come from: a periodic sync reads every template of each business
account a store sends from (the deployment's, or a store's own:
:mod:`parley.messaging.senders`) from the Graph API (:class:`TemplateSyncTask`), and
Meta's webhooks (``message_template_status_update``, ``template_category_update``)
change one between syncs. A store whose templates were never read (no rows: the account
cannot be read, or has no templates) is not second-guessed: its templates go, and Meta's
answer decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from parley.channels.base import (
    ChannelError,
    ChannelKind,
    SendingAccount,
    TemplateReview,
    TransientChannelError,
)
from parley.clock import utc_now
from parley.jobs.periodic import Schedule
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Fail, Outcome, Retry
from parley.messaging.models import WhatsAppTemplate
from parley.messaging.senders import sending_accounts
from parley.workspaces.models import Workspace

log = logging.getLogger(__name__)

SYNC_KIND = "whatsapp.sync_templates"
SYNC_SCHEDULE = Schedule(kind=SYNC_KIND, every=timedelta(hours=1))

SENDABLE = frozenset({"APPROVED", "FLAGGED"})
"""Statuses Meta sends: a flagged template (low quality) still goes until it is paused."""
STATUS_OF_EVENT = {"REINSTATED": "APPROVED", "UNPAUSED": "APPROVED"}
"""Webhook events that name a return to a status rather than a status."""


MARKETING = "MARKETING"
"""Meta's class for marketing templates (the others: ``UTILITY``, ``AUTHENTICATION``)."""


@dataclass(frozen=True)
class Standing:
    """One template as Meta holds it."""

    name: str
    language: str
    category: str
    status: str
    meta_id: str | None = None
    reason: str | None = None

    @property
    def is_sendable(self) -> bool:
        return self.status in SENDABLE

    @property
    def is_marketing(self) -> bool:
        return self.category == MARKETING

    def describe(self) -> str:
        return f"{self.name} ({self.language})"


@dataclass(frozen=True)
class Registry:
    """A store's templates at Meta, read once per batch of sends."""

    templates: Mapping[tuple[str, str], Standing] = field(default_factory=dict)

    @property
    def is_synced(self) -> bool:
        return bool(self.templates)

    def get(self, name: str, language: str) -> Standing | None:
        return self.templates.get((name, language))

    def refusal(self, name: str, language: str) -> str | None:
        """Why Meta would not take template ``name`` now, or None when it would (or when
        the store's templates were never read, and only Meta can say)."""
        standing = self.get(name, language)
        if standing is None:
            if not self.is_synced:
                return None
            return f"template {name} ({language}) is not among the templates approved at Meta"
        if not standing.is_sendable:
            status = standing.status.lower().replace("_", " ")
            return f"template {standing.describe()} is {status} at Meta"
        return None

    def is_marketing(self, name: str, language: str) -> bool:
        standing = self.get(name, language)
        return standing is not None and standing.is_marketing


NOT_READ = Registry()
"""A store whose templates were never read from Meta."""


def registry_for(session: Session, *, workspace_id: int) -> Registry:
    """The store's templates as last read from Meta."""
    rows = session.scalars(
        select(WhatsAppTemplate).where(WhatsAppTemplate.workspace_id == workspace_id)
    )
    return Registry({(row.name, row.language): _standing(row) for row in rows})


def _standing(row: WhatsAppTemplate) -> Standing:
    return Standing(
        name=row.name,
        language=row.language,
        category=row.category,
        status=row.status,
        meta_id=row.meta_id,
        reason=row.reason,
    )


@dataclass(frozen=True)
class Synced:
    """What one store's sync changed."""

    added: int = 0
    removed: int = 0
    changed: tuple[str, ...] = ()
    """Readable changes of status or category, e.g. ``order_dispatched (en): UTILITY →
    MARKETING``."""


def record_listing(
    session: Session, *, workspace_id: int, listed: Sequence[TemplateReview], now: datetime
) -> Synced:
    """Make the store's rows what Meta listed: new ones added, changed ones updated, and
    those Meta no longer lists (deleted there) removed. An item without its status or
    category (Meta always sends both) is left out."""
    rows = {
        (row.name, row.language): row
        for row in session.scalars(
            select(WhatsAppTemplate).where(WhatsAppTemplate.workspace_id == workspace_id)
        )
    }
    added, changed = 0, []
    seen = set()
    for review in listed:
        if review.status is None or review.category is None:
            continue
        standing = Standing(
            review.name,
            review.language,
            review.category.upper(),
            STATUS_OF_EVENT.get(review.status.upper(), review.status.upper()),
            review.meta_id,
            review.reason,
        )
        key = (standing.name, standing.language)
        if key in seen:
            continue
        seen.add(key)
        row = rows.get(key)
        if row is None:
            session.add(_row(workspace_id, standing, now))
            added += 1
            continue
        change = _update(row, standing, now)
        if change:
            changed.append(change)
    gone = [row.id for key, row in rows.items() if key not in seen]
    if gone:
        session.execute(
            delete(WhatsAppTemplate).where(
                WhatsAppTemplate.workspace_id == workspace_id, WhatsAppTemplate.id.in_(gone)
            )
        )
    session.flush()
    return Synced(added=added, removed=len(gone), changed=tuple(changed))


def _row(workspace_id: int, standing: Standing, now: datetime) -> WhatsAppTemplate:
    return WhatsAppTemplate(
        workspace_id=workspace_id,
        name=standing.name,
        language=standing.language,
        category=standing.category,
        status=standing.status,
        meta_id=standing.meta_id,
        reason=standing.reason,
        updated_at=now,
    )


def _update(row: WhatsAppTemplate, standing: Standing, now: datetime) -> str | None:
    """Bring one row to Meta's word; the readable change, or None when nothing changed."""
    before = (row.status, row.category)
    row.status, row.category = standing.status, standing.category
    row.meta_id = standing.meta_id or row.meta_id
    row.reason = standing.reason
    if (row.status, row.category) == before:
        return None
    row.updated_at = now
    moves = [
        f"{old} → {new}"
        for old, new in zip(before, (row.status, row.category), strict=True)
        if old != new
    ]
    return f"{standing.describe()}: {', '.join(moves)}"


def apply_review(
    session: Session, *, workspace_id: int, review: TemplateReview, now: datetime
) -> str | None:
    """Apply one webhook's word on one template; the readable change, or None.

    A status event carries the category too, so a template approved since the last sync
    is added; a category change for a template parley never read waits for the next sync,
    which reads its status with it.
    """
    row = session.scalar(
        select(WhatsAppTemplate).where(
            WhatsAppTemplate.workspace_id == workspace_id,
            WhatsAppTemplate.name == review.name,
            WhatsAppTemplate.language == review.language,
        )
    )
    status = STATUS_OF_EVENT.get(review.status or "", review.status)
    if row is None:
        if status is None or review.category is None:
            log.info("WhatsApp template %s (%s) is not read yet", review.name, review.language)
            return None
        standing = Standing(
            review.name, review.language, review.category, status, review.meta_id, review.reason
        )
        session.add(_row(workspace_id, standing, now))
        session.flush()
        return f"{standing.describe()}: {status}, {review.category}"
    standing = Standing(
        name=row.name,
        language=row.language,
        category=review.category or row.category,
        status=status or row.status,
        meta_id=review.meta_id or row.meta_id,
        reason=review.reason if status else row.reason,
    )
    return _update(row, standing, now)


class TemplateLister(Protocol):
    """What the sync reads from: the business account's templates (the WhatsApp adapter)."""

    async def list_templates(self) -> list[TemplateReview]: ...


@dataclass(frozen=True)
class SyncPlan:
    """Whose templates each active store takes: ``None``, the deployment's business
    account; an address, the store's own WhatsApp number's (:mod:`parley.messaging.senders`)."""

    stores: dict[int, tuple[str, str | None]]
    """Store id -> (its slug, whose listing it takes)."""
    accounts: dict[str, SendingAccount]


class TemplateSyncTask:
    """The hourly sync as a job: each business account's templates are read once, over
    HTTP with no transaction open, and written to the registry of every active store
    that sends from it: the deployment's for the stores sending from its number, a
    store's own for a store sending from its own number (with no business account id
    given, that store's registry is left empty: its templates go, and Meta's answer
    decides). An account that cannot be read leaves the others synced; the job is then
    retried, or dead-lettered for a refused token, as for the deployment's."""

    kind = SYNC_KIND

    def __init__(
        self,
        source: TemplateLister | None,
        lister_for: Callable[[SendingAccount], TemplateLister] | None = None,
    ) -> None:
        self.source = source
        self.lister_for = lister_for

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> SyncPlan:
        stores: dict[int, str] = {
            row.id: row.slug
            for row in session.execute(
                select(Workspace.id, Workspace.slug).where(Workspace.is_active.is_(True))
            )
        }
        own = sending_accounts(session, stores) if self.lister_for is not None else {}
        plan: dict[int, tuple[str, str | None]] = {}
        accounts: dict[str, SendingAccount] = {}
        for workspace_id, slug in stores.items():
            senders = own.get(workspace_id)
            account = senders.get(ChannelKind.WHATSAPP) if senders is not None else None
            if account is None and self.source is None:
                continue
            plan[workspace_id] = (slug, account.address if account else None)
            if account is not None:
                accounts[account.address] = account
        return SyncPlan(plan, accounts)

    async def perform(self, work: SyncPlan) -> dict[str | None, list[TemplateReview] | Exception]:
        wanted = sorted({key for _, key in work.stores.values()}, key=lambda key: key or "")
        read = await asyncio.gather(
            *(self._list(work, key) for key in wanted), return_exceptions=True
        )
        listings: dict[str | None, list[TemplateReview] | Exception] = {}
        for key, listing in zip(wanted, read, strict=True):
            if isinstance(listing, BaseException) and not isinstance(listing, Exception):
                raise listing
            listings[key] = listing
        return listings

    async def _list(self, work: SyncPlan, key: str | None) -> list[TemplateReview]:
        if key is None:
            assert self.source is not None
            return await self.source.list_templates()
        account = work.accounts[key]
        if not account.credential("business_account_id"):
            return []
        assert self.lister_for is not None
        return await self.lister_for(account).list_templates()

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, SyncPlan, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, plan, result in items:
            if isinstance(result, BaseException):
                log.warning("WhatsApp templates could not be read (job %s): %s", job.id, result)
                outcomes.append(_unread(result))
                continue
            now = utc_now()
            failures: list[Exception] = []
            for workspace_id, (slug, key) in plan.stores.items():
                listing = result[key]
                if isinstance(listing, Exception):
                    log.warning("WhatsApp templates for %s could not be read: %s", slug, listing)
                    failures.append(listing)
                    continue
                synced = record_listing(session, workspace_id=workspace_id, listed=listing, now=now)
                for change in synced.changed:
                    log.warning("WhatsApp template for %s changed at Meta: %s", slug, change)
            outcomes.append(_unread(failures[0]) if failures else Done())
        return outcomes


def _unread(error: BaseException) -> Outcome:
    """A refused token or account is a dead letter at once (the next hour's sync tries
    again once the settings are fixed); an outage is retried with backoff."""
    reason = error.reason if isinstance(error, ChannelError) else f"{type(error).__name__}: {error}"
    if isinstance(error, ChannelError) and not isinstance(error, TransientChannelError):
        return Fail(reason)
    return Retry(reason)
