"""delivery_attempts: find a store's recent account refusals without reading every attempt

A provider refusing the store's own credentials or account is recorded as its own
outcome, ``account_refused``; Settings warns the store's admins while any happened in
the last hour. They are rare, so a partial index on them keeps that warning one small
read on every Settings page.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSED = sa.text("outcome = 'account_refused'")


def upgrade() -> None:
    op.create_index(
        "ix_delivery_attempts_account_refused",
        "delivery_attempts",
        ["workspace_id", "finished_at"],
        unique=False,
        sqlite_where=REFUSED,
        postgresql_where=REFUSED,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_account_refused", table_name="delivery_attempts")
