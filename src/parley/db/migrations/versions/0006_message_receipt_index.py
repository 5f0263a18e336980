"""messages: find a receipt's message by (workspace, provider, provider id)

The old index on (provider, provider_message_id) left the workspace out. SQLite, with no
statistics to go by, preferred the (workspace_id, customer_id, created_at) index for a
receipt's lookup and so read every message of the store for each receipt: 3.3 ms at
20,000 messages, growing with the store. Led by the workspace, as every query here is
scoped, the index matches all three equalities and is the planner's choice on both engines.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_provider", table_name="messages")
    op.create_index(
        "ix_messages_provider",
        "messages",
        ["workspace_id", "provider", "provider_message_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_provider", table_name="messages")
    op.create_index(
        "ix_messages_provider", "messages", ["provider", "provider_message_id"], unique=False
    )
