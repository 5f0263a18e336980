"""jobs.waiting_for: what a job put back without running waits for

A marketing send held by the store's pause, the customer's quiet hours, the store's
marketing rate or its sender's pace goes back to the queue with its attempt given back;
this names which, so the store sees what is waiting and why, and a change of the store's
rate can bring its waiting sends forward (:mod:`parley.messaging.marketing_rate`).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("waiting_for", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("waiting_for")
