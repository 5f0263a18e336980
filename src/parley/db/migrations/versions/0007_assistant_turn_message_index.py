"""assistant_turns: find a message's turn without reading them all

Before the assistant speaks it checks that the message has no turn yet, by message id.
No index covered that column, so every answer read the whole table (all stores' turns),
and deleting a message made its cascade do the same. Indexed by (workspace_id,
message_id), the check is scoped to its store like every other query.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_assistant_turns_message", "assistant_turns", ["workspace_id", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_assistant_turns_message", table_name="assistant_turns")
