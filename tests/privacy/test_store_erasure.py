"""Shopify's ``shop/redact``, sent 48 hours after a store uninstalls: every row of the
store deleted, a batch to a transaction, and nothing of any other store's."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from parley import clock
from parley.accounts.models import AuditEntry
from parley.demo.simulate import order_lifecycle
from parley.jobs.models import Job, JobStatus
from parley.jobs.worker import Worker, WorkerConfig
from parley.messaging.marketing_rate import MarketingRate
from parley.messaging.pace import Pacer, Want
from parley.privacy import erasure
from parley.privacy.tasks import EraseStoreTask
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import (
    count,
    deliveries,
    drain,
    every_row,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    shopper,
    signed,
)

OTHER_SECRET = "the-other-store's-secret"
SHOP = {"shop_id": 1, "shop_domain": "parley-demo.myshopify.com"}


@pytest.fixture
def stores(db):
    """The demo store with two customers' orders sent, and another store; its id."""
    seed(db)
    with db.transaction() as session:
        other = workspaces.create_workspace(
            session, slug="other", name="Other store", shopify_secret=OTHER_SECRET
        ).id
    for delivery in deliveries("Ada", order_id=501) + deliveries("Grace", order_id=502):
        post(db, delivery)
    for delivery in order_lifecycle(
        secret=OTHER_SECRET,
        order_id=601,
        number=2601,
        shopper=shopper("Ada"),
        start=clock.utc_now(),
    ):
        post(db, delivery, slug="other")
    drain(make_worker(db, recording_adapters()))
    return other


def _uninstall(db) -> None:
    body, headers = signed("app/uninstalled", {"id": 1, "name": "parley demo"}, webhook_id="bye")
    post(db, None, body=body, headers=headers)


def _shop_redact(db, payload: dict | None = None) -> dict:
    body, headers = signed("shop/redact", payload or SHOP, webhook_id="shop-redact")
    return post(db, None, body=body, headers=headers)


def _eraser(db, *, budget_seconds: float = 20.0) -> Worker:
    task = EraseStoreTask(db, budget_seconds=budget_seconds, rest_seconds=0)
    return Worker(db, [task], WorkerConfig(batch_size=10))


def _store_rows(db, workspace_id: int) -> dict[str, int]:
    with db.transaction() as session:
        return erasure.remaining_rows(session, workspace_id=workspace_id)


def _paced_marketing(db, workspace_id: int) -> None:
    """The store sent marketing under its own rate: its pace has a row."""
    with db.transaction() as session:
        store = MarketingRate(100).sender(workspace_id)
        Pacer().take(session, [Want("email", "marketing", store=store)], now=clock.utc_now())


def test_shop_redact_after_uninstall_deletes_every_row_of_the_store_and_no_other(
    db, stores, caplog
):
    other_before = {
        table: table_rows
        for table, table_rows in every_row(db, but_store=1).items()
        if table not in ("jobs", "audit_log", "webhook_deliveries", "workspaces", "sender_paces")
    }
    [other_store] = [row for row in every_row(db)["workspaces"] if row["id"] == stores]
    assert len(_store_rows(db, 1)) >= 15
    for store in (1, stores):
        _paced_marketing(db, store)
    _uninstall(db)
    assert _shop_redact(db) == {"status": "accepted", "request": "store erasure"}
    caplog.set_level(logging.INFO, logger="parley.privacy.tasks")
    drain(_eraser(db))

    assert _store_rows(db, 1) == {}
    assert count(db, Workspace, Workspace.id == 1) == 0
    other_after = every_row(db, but_store=1)
    for table, table_rows in other_before.items():
        assert other_after[table] == table_rows, table
    assert other_after["workspaces"] == [other_store]
    assert [row["sender"] for row in other_after["sender_paces"]] == [f"store:{stores}:marketing"]
    assert _store_rows(db, stores)["orders"] == 1
    [entry] = rows(db, AuditEntry, AuditEntry.action == "store_erased")
    assert entry.workspace_id is None
    assert entry.detail["store"] == "demo"
    assert entry.detail["shop_domain"] == "parley-demo.myshopify.com"
    assert entry.detail["deleted"]["orders"] == 2
    assert "store 'demo' erased (shop/redact): deleted " in caplog.text


def test_shop_redact_for_a_store_still_installed_deletes_nothing_and_says_why(db, stores, caplog):
    before = _store_rows(db, 1)
    _shop_redact(db)
    caplog.set_level(logging.WARNING, logger="parley.privacy.tasks")
    drain(_eraser(db))
    after = _store_rows(db, 1)
    assert after.pop("webhook_deliveries") == before.pop("webhook_deliveries") + 1
    assert after.pop("jobs") == before.pop("jobs")
    assert after == before
    assert "store 'demo' not erased: the store has parley installed" in caplog.text


def test_shop_redact_naming_another_shop_deletes_nothing(db, stores, caplog):
    _uninstall(db)
    before = _store_rows(db, 1)
    _shop_redact(db, {"shop_domain": "someone-else.myshopify.com"})
    caplog.set_level(logging.WARNING, logger="parley.privacy.tasks")
    drain(_eraser(db))
    after = _store_rows(db, 1)
    assert after["webhook_deliveries"] == before["webhook_deliveries"] + 1
    assert after["orders"] == before["orders"] == 2
    assert "it names 'someone-else.myshopify.com', and this store is 'parley-demo" in caplog.text


def test_a_large_store_is_erased_in_parts_each_within_its_budget(db, stores):
    _uninstall(db)
    _shop_redact(db)
    drain(_eraser(db, budget_seconds=0))  # one batch a part
    parts = rows(db, Job, Job.kind == "privacy.erase_store")
    assert len(parts) >= 15
    assert {job.status for job in parts} == {JobStatus.DONE}
    assert [job.payload.get("part", 0) for job in parts] == list(range(len(parts)))
    assert count(db, Workspace, Workspace.id == 1) == 0
    assert _store_rows(db, 1) == {}


def test_the_store_erasure_outlives_the_store_jobs_it_deletes(db, stores):
    _uninstall(db)
    _shop_redact(db)
    with db.transaction() as session:
        [job] = session.scalars(select(Job).where(Job.kind == "privacy.erase_store"))
        assert job.workspace_id is None
    assert count(db, Job, Job.workspace_id == 1, Job.status == JobStatus.PENDING) >= 1
    drain(_eraser(db))
    assert count(db, Job, Job.workspace_id == 1) == 0


def test_a_shop_redact_refused_while_installed_does_not_stop_a_later_one(db, stores):
    _shop_redact(db)
    drain(_eraser(db))
    _uninstall(db)
    body, headers = signed("shop/redact", SHOP, webhook_id="shop-redact-again")
    assert post(db, None, body=body, headers=headers)["status"] == "accepted"
    drain(_eraser(db))
    assert count(db, Workspace, Workspace.id == 1) == 0
