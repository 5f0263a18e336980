"""jobs: each store's waiting jobs per lane, so a claim can share a batch between stores

A claim used to take the oldest due jobs whoever they belonged to, so one store's flood
of due jobs held back every other store's order updates. A fair claim finds the stores
with due work and takes a share from each, transactional lane first; this partial index
over pending jobs answers both in index order (:mod:`parley.jobs.claims`). On PostgreSQL
``ix_jobs_due`` leaves pending jobs out: in due order across every store, the planner
chose it for one store's part and walked another store's whole backlog.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_ONLY = sa.text("status = 'pending'")
NOT_PENDING = sa.text("status <> 'pending'")


def upgrade() -> None:
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.create_index(
        "ix_jobs_due", "jobs", ["status", "due_at"], unique=False, postgresql_where=NOT_PENDING
    )
    op.create_index(
        "ix_jobs_pending_by_store",
        "jobs",
        ["workspace_id", "lane", "due_at"],
        unique=False,
        sqlite_where=PENDING_ONLY,
        postgresql_where=PENDING_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_pending_by_store", table_name="jobs")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.create_index("ix_jobs_due", "jobs", ["status", "due_at"], unique=False)
