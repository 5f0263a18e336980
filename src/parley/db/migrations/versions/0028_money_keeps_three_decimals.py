"""Money keeps three decimals

Kuwaiti, Bahraini, Omani, Jordanian and Tunisian amounts have three decimal places
(ISO 4217); ``Numeric(14, 2)`` rounded 12.345 KWD to 12.35 before any template saw it.
``Numeric(15, 3)`` keeps the same twelve whole digits and the third decimal. On SQLite
the column's affinity is unchanged: the rebuild only records the new declared type.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("orders", "total_price"), ("checkouts", "total_price"), ("refunds", "amount"))


def _retype(old: sa.Numeric[Decimal], new: sa.Numeric[Decimal]) -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=new, existing_type=old, existing_nullable=True)


def upgrade() -> None:
    _retype(sa.Numeric(14, 2), sa.Numeric(15, 3))


def downgrade() -> None:
    _retype(sa.Numeric(15, 3), sa.Numeric(14, 2))
