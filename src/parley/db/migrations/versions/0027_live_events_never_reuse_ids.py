"""Live events never hand out an id twice on SQLite

The live relay of every ``parley serve`` process reads ``live_events`` past the last id
it handed on. SQLite's rowid gives a new row the highest id plus one, so once the newest
rows were deleted (a customer's erasure, a store's), the next event took an id the relay
had already passed and was never shown. ``AUTOINCREMENT`` keeps ids rising whatever is
deleted; PostgreSQL's sequence already does.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(*, autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "live_events", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
