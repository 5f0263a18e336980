"""whatsapp_templates: each store's WhatsApp templates as Meta reviewed and classed them

What the policy reads before a template goes outside the 24-hour window
(:mod:`parley.messaging.whatsapp_templates`).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.db.base import UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "whatsapp_templates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("meta_id", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_whatsapp_templates_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_templates")),
        sa.UniqueConstraint(
            "workspace_id",
            "name",
            "language",
            name=op.f("uq_whatsapp_templates_workspace_id_name_language"),
        ),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_templates")
