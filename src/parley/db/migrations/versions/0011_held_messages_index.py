"""messages: find the ones held for review without reading the store's every message

A send interrupted after it was handed to the provider is ``held`` until someone says
whether it arrived (Settings → Failed sends). They are few; a partial index on them
lets the page list a store's held messages however many messages it has sent. Rows
outside the predicate cost the index nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELD = sa.text("status = 'held'")


def upgrade() -> None:
    op.create_index(
        "ix_messages_held",
        "messages",
        ["workspace_id", "id"],
        unique=False,
        sqlite_where=HELD,
        postgresql_where=HELD,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_held", table_name="messages")
