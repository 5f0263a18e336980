"""customer_identities: find a batch's customers' identities without reading the store's

Dispatch reads the identities of a batch's customers in one statement, ``workspace_id =
? AND customer_id IN (...)``. With one customer SQLite used the customer_id index; with
several it preferred the (workspace_id, kind, value) unique index by its workspace
prefix and read every identity of the store for each batch, so a worker's batches grew
slower with every shopper the store gained. Led by the workspace, as every query here is
scoped, the index matches both conditions and is the planner's choice on both engines.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_customer_identities_customer", table_name="customer_identities")
    op.create_index(
        "ix_customer_identities_customer",
        "customer_identities",
        ["workspace_id", "customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_customer_identities_customer", table_name="customer_identities")
    op.create_index(
        "ix_customer_identities_customer", "customer_identities", ["customer_id"], unique=False
    )
