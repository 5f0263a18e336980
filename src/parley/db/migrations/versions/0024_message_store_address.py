"""messages.store_address: the store's own address a message came to or went from

A store with its own numbers sends from them, and a reply goes from the one the customer
wrote to (:mod:`parley.messaging.senders`); each message keeps that address, so the store
sees which of its numbers or addresses it went through. Empty: the deployment's.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("store_address", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("store_address")
