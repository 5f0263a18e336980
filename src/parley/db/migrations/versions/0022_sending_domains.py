"""sending_domains: the last reading of the sending domain's SPF, DKIM and DMARC records

Marketing email waits for a sending domain set up as Gmail and Yahoo require of bulk
senders (:mod:`parley.messaging.sending_domain`, RELIABILITY S12).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.db.base import JsonType, UTCDateTime

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sending_domains",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("problems", JsonType, nullable=False),
        sa.Column("checked_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_sending_domains")),
    )


def downgrade() -> None:
    op.drop_table("sending_domains")
