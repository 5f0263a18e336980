"""``parley demo`` run again on its own database: the store is seeded once, and a run
with other settings brings its secrets and sign-in up to date, on both engines."""

from __future__ import annotations

from sqlalchemy import func, select

from parley.accounts.models import Membership, User
from parley.commerce.models import Product
from parley.customers.models import Customer
from parley.db import Database
from parley.demo.seed import seed_demo_store
from parley.inbox.models import CannedReply
from parley.settings import Settings
from parley.workspaces import service as workspaces
from parley.workspaces.models import ChannelAccount


def _run_demo_seeding(db: Database, settings: Settings) -> int:
    """What ``parley demo`` seeds before it serves."""
    with db.transaction() as session:
        return seed_demo_store(session, settings).id


def _counts(db: Database) -> dict[str, int]:
    with db.transaction() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                CannedReply,
                ChannelAccount,
                Customer,
                Product,
                User,
                Membership,
            )
        }


def test_demo_run_twice_seeds_the_store_once(db: Database) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    first_id = _run_demo_seeding(db, settings)
    first = _counts(db)

    second_id = _run_demo_seeding(db, settings)

    assert second_id == first_id
    assert _counts(db) == first
    assert first == {
        "CannedReply": 3,
        "ChannelAccount": 4,
        "Customer": 4,
        "Product": 5,
        "User": 2,
        "Membership": 2,
    }
    with db.transaction() as session:
        assert workspaces.get_workspace(session, slug="demo").id == first_id
