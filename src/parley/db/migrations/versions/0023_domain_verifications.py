"""sending_domains.verifications: the stores that proved a domain is theirs

A store's email goes from its own address once its domain carries the store's
``parley-verification=<token>`` TXT record and is set up for sending
(:mod:`parley.messaging.email_sender`); the reading keeps the tokens it found.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.db.base import JsonType

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sending_domains") as batch_op:
        batch_op.add_column(
            sa.Column("verifications", JsonType, nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("sending_domains") as batch_op:
        batch_op.drop_column("verifications")
