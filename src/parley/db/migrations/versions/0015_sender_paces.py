"""sender_paces: how far each sender's allowance is spent and booked

A provider takes so many messages a second from one sender (a WhatsApp business number
80, a US long code one SMS segment). Each send now takes its room from its sender's row
in the transaction that records it, and a send that finds none waits as a job for the
time it is booked (:mod:`parley.messaging.pace`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.db.base import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_paces",
        sa.Column("sender", sa.String(length=400), nullable=False),
        sa.Column("spent_until", UTCDateTime(timezone=True), nullable=False),
        sa.Column("transactional_booked_until", UTCDateTime(timezone=True), nullable=False),
        sa.Column("marketing_booked_until", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender"),
    )


def downgrade() -> None:
    op.drop_table("sender_paces")
