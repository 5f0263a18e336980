"""journeys.revision: a token per saved definition, for caching parsed definitions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.add_column(sa.Column("revision", sa.String(length=32), nullable=True))
    journeys = sa.table("journeys", sa.column("id", sa.Integer), sa.column("revision", sa.String))
    connection = op.get_bind()
    for (journey_id,) in connection.execute(sa.select(journeys.c.id)):
        connection.execute(
            journeys.update().where(journeys.c.id == journey_id).values(revision=uuid.uuid4().hex)
        )
    with op.batch_alter_table("journeys") as batch:
        batch.alter_column("revision", existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.drop_column("revision")
