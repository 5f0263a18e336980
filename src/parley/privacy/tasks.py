"""The jobs that carry out privacy requests once the platform has been answered."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.accounts.service import audit
from parley.clock import utc_now
from parley.db import Database
from parley.housekeeping import BUDGET_SECONDS, REST_SECONDS
from parley.jobs import queue
from parley.jobs.queue import ClaimedJob
from parley.jobs.worker import Done, Outcome, Retry
from parley.privacy.erasure import (
    DELIVERIES,
    MENTION_WINDOW,
    Erased,
    Scrubbed,
    delete_mentions,
    delete_store,
    delivery_range,
    erase_customer,
    erase_store_batch,
)
from parley.privacy.export import counted, export_customer
from parley.privacy.models import PrivacyRequest, RequestKind, RequestStatus
from parley.privacy.service import CUSTOMER_REQUEST_KIND, ERASE_STORE_KIND, Subject
from parley.workspaces.models import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CarriedOut:
    """A customer request done: what the log says (counts, never the person)."""

    request_id: int
    kind: str
    store: str
    summary: str


@dataclass(frozen=True)
class Erase:
    """An erasure's first part: every row about the customer ``subject`` names."""

    request_id: int
    workspace_id: int
    store: str
    subject: Subject
    kept: int | None


@dataclass(frozen=True)
class Search:
    """An erasure's second part: the store's other raw deliveries, searched for the
    customer's details from id ``after`` on."""

    request_id: int
    workspace_id: int
    store: str
    traces: tuple[str, ...]
    kept: int | None
    """The request's own delivery, blanked by the erasure and kept as its dedupe key."""
    after: int
    until: int
    """The newest delivery when the erasure was done: the search ends there, or it would
    chase the deliveries that keep arriving."""


class CustomerRequestTask:
    """Erasure or access for one customer.

    An access request is gathered in the worker's transaction. An erasure proper (every
    row about the customer) is one transaction of its own in ``perform``, with the
    request's record of it; then the store's other raw deliveries are searched for the
    customer's details a window to a transaction
    (:func:`~parley.privacy.erasure.delete_mentions`), with a rest after each as the
    sweep has, because each window is a scan of their bodies and on SQLite a transaction
    holds the one writer. The request is done when every delivery there was at the
    erasure has been searched; a part that used its time budget hands the rest to a
    follow-up job.
    """

    kind = CUSTOMER_REQUEST_KIND

    def __init__(
        self,
        db: Database,
        *,
        budget_seconds: float = BUDGET_SECONDS,
        rest_seconds: float = REST_SECONDS,
        window: int = MENTION_WINDOW,
    ) -> None:
        self.db = db
        self.budget_seconds = budget_seconds
        self.rest_seconds = rest_seconds
        self.window = window

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(
        self, session: Session, job: ClaimedJob, batch: Any = None
    ) -> CarriedOut | Erase | Search | None:
        found = session.execute(
            select(PrivacyRequest, Workspace)
            .join(Workspace, Workspace.id == PrivacyRequest.workspace_id)
            .where(
                PrivacyRequest.id == job.payload["request_id"],
                PrivacyRequest.workspace_id == job.workspace_id,
            )
            .with_for_update(of=PrivacyRequest)
        ).first()
        if found is None or found[0].status == RequestStatus.DONE:
            return None
        request, workspace = found
        if request.kind == RequestKind.ACCESS:
            now = utc_now()
            subject = Subject.from_json(request.subject or {})
            request.export = export_customer(
                session, workspace_id=workspace.id, store=workspace.name, subject=subject, now=now
            )
            request.summary = counted(request.export)
            request.status = RequestStatus.DONE
            request.completed_at = now
            return CarriedOut(request.id, request.kind, workspace.slug, request.summary)
        progress = request.subject or {}
        if "traces" not in progress:
            return Erase(
                request_id=request.id,
                workspace_id=workspace.id,
                store=workspace.slug,
                subject=Subject.from_json(progress),
                kept=request.delivery_id,
            )
        return _search_of(request, workspace.slug, int(job.payload.get("after", progress["from"])))

    async def perform(
        self, work: CarriedOut | Erase | Search | None
    ) -> CarriedOut | tuple[Search, Scrubbed] | None:
        if isinstance(work, Erase):
            work = await asyncio.to_thread(self._erase, work)
        if isinstance(work, Search):
            return work, await asyncio.to_thread(self._search, work)
        return work

    def _erase(self, erase: Erase) -> Search:
        """The erasure proper, one transaction of its own with the request's record of
        it. Every row about the customer is deleted, children first, so on SQLite the
        foreign keys go unchecked (:meth:`~parley.db.Database.transaction_unchecked`):
        checked, each row deleted was a scan of every table pointing at its table."""
        with self.db.transaction_unchecked() as session:
            request = _locked_request(session, erase.request_id, erase.workspace_id)
            if request is None or request.subject is None or "traces" in request.subject:
                raise RuntimeError(f"privacy request {erase.request_id} changed meanwhile")
            erased = erase_customer(
                session,
                workspace_id=erase.workspace_id,
                subject=erase.subject,
                request_delivery=erase.kept,
            )
            request.summary = erased.summary()
            # Who it was is forgotten; what still names them is kept until it is found,
            # with the raw deliveries to search: those there now.
            first, last = delivery_range(session)
            request.subject = {
                "traces": sorted(erased.traces),
                "deleted": list(erased.counts.items()),
                "kept": erased.kept,
                "from": first - 1,
                "until": last,
            }
            return _search_of(request, erase.store, first - 1)

    def _search(self, search: Search) -> Scrubbed:
        deadline = time.monotonic() + self.budget_seconds
        deleted, after = 0, search.after
        while True:
            started = time.monotonic()
            with self.db.transaction() as session:
                window = delete_mentions(
                    session,
                    workspace_id=search.workspace_id,
                    traces=search.traces,
                    after=after,
                    until=search.until,
                    kept=search.kept,
                    window=self.window,
                )
            deleted += window.deleted
            if window.after is None:
                return Scrubbed(deleted=deleted, after=None)
            after = window.after
            took = time.monotonic() - started
            if time.monotonic() + self.rest_seconds >= deadline:
                return Scrubbed(deleted=deleted, after=after)
            time.sleep(max(self.rest_seconds, took) if self.rest_seconds else 0)

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, _, result in items:
            if isinstance(result, BaseException):
                log.error("privacy request (job %s) failed", job.id, exc_info=result)
                outcomes.append(Retry(f"{type(result).__name__}: {result}"))
                continue
            if isinstance(result, CarriedOut):
                _log_done(result)
            elif result is not None:
                search, scrubbed = result
                _searched(session, search, scrubbed)
            outcomes.append(Done())
        return outcomes


def _locked_request(session: Session, request_id: int, workspace_id: int) -> PrivacyRequest | None:
    return session.scalar(
        select(PrivacyRequest)
        .where(PrivacyRequest.id == request_id, PrivacyRequest.workspace_id == workspace_id)
        .with_for_update()
    )


def _search_of(request: PrivacyRequest, store: str, after: int) -> Search:
    progress = request.subject or {}
    return Search(
        request_id=request.id,
        workspace_id=request.workspace_id,
        store=store,
        traces=tuple(progress["traces"]),
        kept=request.delivery_id,
        after=after,
        until=int(progress["until"]),
    )


def _searched(session: Session, search: Search, scrubbed: Scrubbed) -> None:
    """Count what a part of the search emptied; queue the next part, or finish."""
    request = _locked_request(session, search.request_id, search.workspace_id)
    if request is None:  # its store was erased meanwhile
        return
    progress = dict(request.subject or {})
    erased = Erased(counts=dict(progress.get("deleted", [])), kept=progress.get("kept", 0))
    erased.add(DELIVERIES, scrubbed.deleted)
    if scrubbed.after is not None:
        request.subject = {**progress, "deleted": list(erased.counts.items())}
        queue.enqueue(
            session,
            kind=CUSTOMER_REQUEST_KIND,
            payload={"request_id": request.id, "after": scrubbed.after},
            workspace_id=search.workspace_id,
            idempotency_key=f"privacy:{request.id}:after:{scrubbed.after}",
        )
        return
    now = utc_now()
    request.summary = erased.summary()
    request.subject = None
    request.status = RequestStatus.DONE
    request.completed_at = now
    audit(
        session,
        workspace_id=search.workspace_id,
        action="customer_erased",
        now=now,
        detail={"request": request.id, "deleted": erased.counts, "kept_opt_outs": erased.kept},
    )
    _log_done(CarriedOut(request.id, request.kind, search.store, request.summary))


def _log_done(done: CarriedOut) -> None:
    log.info(
        "privacy %s request %s for store %r carried out: %s",
        done.kind,
        done.request_id,
        done.store,
        done.summary,
    )


@dataclass
class StoreErased:
    """One part of a store's erasure: rows deleted by table, and whether it is over."""

    store: str
    deleted: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    refused: str | None = None


class EraseStoreTask:
    """A whole store's erasure (``shop/redact``), a batch to a transaction in ``perform``
    where no transaction of the worker's is open, like the housekeeping sweep. A part
    that used its time budget hands the rest to a follow-up job."""

    kind = ERASE_STORE_KIND

    def __init__(
        self,
        db: Database,
        *,
        budget_seconds: float = BUDGET_SECONDS,
        rest_seconds: float = REST_SECONDS,
    ) -> None:
        """``rest_seconds``: the pause after each batch, as the sweep's (a webhook waiting
        for SQLite's one writer gets its turn)."""
        self.db = db
        self.budget_seconds = budget_seconds
        self.rest_seconds = rest_seconds

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> None:
        return None

    def prepare(self, session: Session, job: ClaimedJob, batch: Any = None) -> StoreErased | int:
        """The store's id when its erasure may go on, or why it may not."""
        workspace_id = int(job.payload["workspace_id"])
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            return StoreErased(store=f"#{workspace_id}", finished=True)
        asked = job.payload.get("shop_domain")
        if workspace.is_active:
            refused = "the store has parley installed (reinstalled since it uninstalled?)"
            return StoreErased(store=workspace.slug, refused=refused)
        if asked and workspace.shopify_shop_domain and asked != workspace.shopify_shop_domain:
            refused = f"it names {asked!r}, and this store is {workspace.shopify_shop_domain!r}"
            return StoreErased(store=workspace.slug, refused=refused)
        return workspace_id

    async def perform(self, work: StoreErased | int) -> StoreErased:
        if isinstance(work, StoreErased):
            return work
        return await asyncio.to_thread(
            erase_store, self.db, work, self.budget_seconds, self.rest_seconds
        )

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, Any, Any]]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job, _, result in items:
            if not isinstance(result, StoreErased):
                log.error("store erasure (job %s) failed", job.id, exc_info=result)
                outcomes.append(Retry(f"{type(result).__name__}: {result}"))
                continue
            _log(result)
            if not result.finished and result.refused is None:
                part = int(job.payload.get("part", 0)) + 1
                workspace_id, delivery_id = job.payload["workspace_id"], job.payload["delivery_id"]
                queue.enqueue(
                    session,
                    kind=ERASE_STORE_KIND,
                    payload={**job.payload, "part": part},
                    idempotency_key=f"erase-store:{workspace_id}:{delivery_id}:{part}",
                )
            outcomes.append(Done())
        return outcomes


def _log(result: StoreErased) -> None:
    if result.refused is not None:
        log.warning("store %r not erased: %s", result.store, result.refused)
        return
    deleted = ", ".join(f"{count} {table}" for table, count in result.deleted.items())
    if result.finished:
        log.warning("store %r erased (shop/redact): deleted %s", result.store, deleted or "it")
    else:
        log.info("store %r erasure goes on: deleted %s so far", result.store, deleted)


def erase_store(
    db: Database, workspace_id: int, budget_seconds: float, rest_seconds: float = REST_SECONDS
) -> StoreErased:
    """Delete the store's rows a batch to a transaction until none is left (then the
    store's own row, with an entry in the deployment's audit log) or the budget is spent."""
    deadline = time.monotonic() + budget_seconds
    with db.transaction() as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            return StoreErased(store=f"#{workspace_id}", finished=True)
        store, domain = workspace.slug, workspace.shopify_shop_domain
    result = StoreErased(store=store)
    while True:
        started = time.monotonic()
        # Children first, every row of the store: nothing is left pointing at a row
        # deleted, so the foreign keys' checks are skipped (see transaction_unchecked).
        with db.transaction_unchecked() as session:
            batch = erase_store_batch(session, workspace_id=workspace_id)
        if batch is None:
            # Checked: anything written for the store meanwhile goes with its row.
            with db.transaction() as session:
                delete_store(session, workspace_id=workspace_id)
                audit(
                    session,
                    workspace_id=None,
                    action="store_erased",
                    now=utc_now(),
                    detail={"store": store, "shop_domain": domain, "deleted": result.deleted},
                )
            result.finished = True
            return result
        table, count = batch
        result.deleted[table] = result.deleted.get(table, 0) + count
        took = time.monotonic() - started
        if time.monotonic() + rest_seconds >= deadline:
            return result
        time.sleep(max(rest_seconds, took) if rest_seconds else 0)
