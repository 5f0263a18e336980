"""channel_accounts.refused_at / refused_reason: a store's own account its provider refused

When a provider refuses a store's own account (a revoked token, a suspended number), the
store's messages go on the next channel; the account keeps when and why, for Settings →
Channels and the deployment's alert, until a send from it goes through or its secrets
are replaced (:mod:`parley.messaging.senders`).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.db.base import UTCDateTime

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_accounts") as batch_op:
        batch_op.add_column(sa.Column("refused_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refused_reason", sa.Text(), nullable=True))
    op.create_index(
        "ix_channel_accounts_refused",
        "channel_accounts",
        ["refused_at"],
        sqlite_where=sa.text("refused_at IS NOT NULL"),
        postgresql_where=sa.text("refused_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_channel_accounts_refused", table_name="channel_accounts")
    with op.batch_alter_table("channel_accounts") as batch_op:
        batch_op.drop_column("refused_reason")
        batch_op.drop_column("refused_at")
