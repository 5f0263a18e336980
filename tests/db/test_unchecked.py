"""``Database.transaction_unchecked``: a store's erasure deletes children first without
SQLite checking each parent row against every table pointing at it; checks come back after."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from parley.clock import utc_now
from parley.customers.models import Customer, CustomerIdentity
from support import count, seed


def _add_orphan_identity(db) -> None:
    with db.transaction() as session:
        session.add(
            CustomerIdentity(
                workspace_id=1,
                customer_id=999_999,
                kind="email",
                value="x@y.z",
                created_at=utc_now(),
            )
        )


def _delete_customers_then_fail(db) -> None:
    with db.transaction_unchecked() as session:
        session.query(Customer).filter(Customer.workspace_id == 1).delete()
        raise RuntimeError("stop")


def test_foreign_keys_go_unchecked_inside_on_sqlite_only_and_are_checked_after(db):
    seed(db)
    identities = count(db, CustomerIdentity)
    assert identities > 0
    with db.transaction_unchecked() as session:
        session.query(Customer).filter(Customer.workspace_id == 1).delete()
    # SQLite skipped the cascade to the identities; PostgreSQL checked as ever.
    assert count(db, CustomerIdentity) == (0 if db.is_postgres else identities)
    with pytest.raises(IntegrityError):
        _add_orphan_identity(db)


def test_an_error_inside_rolls_back_and_checks_come_back(db):
    seed(db)
    customers = count(db, Customer)
    with pytest.raises(RuntimeError, match="stop"):
        _delete_customers_then_fail(db)
    assert count(db, Customer) == customers
    with pytest.raises(IntegrityError):
        _add_orphan_identity(db)
