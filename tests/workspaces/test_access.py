"""What a process remembers of each workspace for its webhooks, and when it reads again."""

from __future__ import annotations

from sqlalchemy import event, select, update

from parley.db import Database
from parley.settings import Settings
from parley.workspaces.access import AccessCache, ProviderAccessCache, access_cache
from parley.workspaces.models import ChannelAccount, Workspace
from support import seed


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _reads(db: Database) -> list[str]:
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("SELECT") and "FROM workspaces" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    return seen


def test_a_workspace_is_read_once_per_ttl_and_again_after_it(db):
    seed(db)
    ticks = Ticks()
    cache = AccessCache(db, ttl=1.0, clock=ticks)
    reads = _reads(db)
    first = cache.get("demo")
    ticks.now = 0.99
    assert cache.get("demo") == first
    assert len(reads) == 1
    ticks.now = 1.0
    assert cache.get("demo") == first
    assert len(reads) == 2


def test_an_unknown_workspace_is_remembered_as_unknown_until_the_ttl_ends(db):
    seed(db)
    ticks = Ticks()
    cache = AccessCache(db, ttl=1.0, clock=ticks)
    reads = _reads(db)
    assert cache.get("nope") is None
    assert cache.get("nope") is None
    assert len(reads) == 1


def test_refreshed_and_forget_read_the_database_again_at_once(db):
    seed(db)
    cache = AccessCache(db, ttl=60.0, clock=Ticks())
    before = cache.get("demo")
    assert before is not None
    with db.transaction() as session:
        session.execute(
            update(Workspace).where(Workspace.slug == "demo").values(shopify_secret="next")
        )
    assert cache.get("demo") == before
    refreshed = cache.refreshed("demo")
    assert refreshed is not None
    assert refreshed.shopify_secret == "next"
    with db.transaction() as session:
        session.execute(update(Workspace).where(Workspace.slug == "demo").values(is_active=False))
    cache.forget("demo")
    after = cache.get("demo")
    assert after is not None
    assert after.is_active is False


def test_each_database_has_its_own_cache(db, tmp_path):
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert access_cache(db) is access_cache(db)
        assert access_cache(db) is not access_cache(other)
    finally:
        other.dispose()


def test_a_disconnected_provider_account_stops_verifying_once_the_ttl_ends(db):
    seed(db)
    ticks = Ticks()
    cache = ProviderAccessCache(db, ttl=1.0, clock=ticks)
    before = cache.get(("demo", "whatsapp_cloud"))
    assert before.workspace is not None
    assert [account.secrets["app_secret"] for account in before.accounts] == [
        Settings().demo_meta_app_secret
    ]
    with db.transaction() as session:
        for account in session.scalars(select(ChannelAccount)):
            account.is_active = False
    ticks.now = 0.99
    assert cache.get(("demo", "whatsapp_cloud")) == before
    ticks.now = 1.0
    after = cache.get(("demo", "whatsapp_cloud"))
    assert after.workspace == before.workspace
    assert after.accounts == ()
    unknown = cache.get(("nope", "whatsapp_cloud"))
    assert (unknown.workspace, unknown.accounts) == (None, ())
