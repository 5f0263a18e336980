"""store_events.delivery_id: a plain reference, so old raw deliveries can be pruned

Raw deliveries are kept for a retention period (``PARLEY_WEBHOOK_RETENTION_DAYS``) and then
deleted by the housekeeping sweep, while the store events they carried stay in the
store's timeline. Under the foreign key every deleted delivery made the database look
for events pointing at it, and without an index on ``delivery_id`` that was a scan of the
whole events table per delivery; an index would cost every event inserted. The column
now names the delivery that carried the event, which may since have been pruned.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "fk_store_events_delivery_id_webhook_deliveries"


def upgrade() -> None:
    with op.batch_alter_table("store_events", schema=None) as batch_op:
        batch_op.drop_constraint(CONSTRAINT, type_="foreignkey")


def downgrade() -> None:
    op.execute(
        "UPDATE store_events SET delivery_id = NULL WHERE delivery_id IS NOT NULL AND "
        "delivery_id NOT IN (SELECT id FROM webhook_deliveries)"
    )
    with op.batch_alter_table("store_events", schema=None) as batch_op:
        batch_op.create_foreign_key(
            CONSTRAINT, "webhook_deliveries", ["delivery_id"], ["id"], ondelete="SET NULL"
        )
