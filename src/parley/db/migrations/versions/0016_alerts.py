"""alerts: each alert's state, so its start and end are noticed and notified once

The alerts watch (:mod:`parley.alerts.watch`) reads the job table's backlog every 30
seconds and moves each alert's row (order updates late, marketing sends late, jobs
reaching the dead letter) to what it finds.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.db.base import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("firing_since", UTCDateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("alerts")
