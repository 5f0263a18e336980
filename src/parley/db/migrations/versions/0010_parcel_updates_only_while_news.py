"""Built-in dispatch and out-for-delivery journeys skip an update the parcel has outrun

A worker that gets to a dispatch message after the parcel is already out for delivery or
delivered (a backlog after an outage, or updates that arrived together) no longer sends
it; the same for an out-for-delivery message after delivery. New workspaces get the new
definitions from ``parley.journeys.definitions``; this brings them to the stores that
never edited these journeys (version 1, steps as shipped), and leaves edited ones alone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _not_yet(later: list[str], words: str) -> dict[str, Any]:
    return {
        "type": "condition",
        "if": {"path": "fulfillment.shipment_status", "op": "not_in", "value": later},
        "otherwise": "exit",
        "reason": f"superseded: the parcel is already {words}",
    }


SHIPPED = {
    "dispatch": [{"type": "send", "message": "dispatch"}],
    "out_for_delivery": [{"type": "send", "message": "out_for_delivery"}],
}
NOW = {
    "dispatch": [
        _not_yet(["out_for_delivery", "delivered"], "out for delivery or delivered"),
        {"type": "send", "message": "dispatch"},
    ],
    "out_for_delivery": [
        _not_yet(["delivered"], "delivered"),
        {"type": "send", "message": "out_for_delivery"},
    ],
}

JOURNEYS = sa.table(
    "journeys",
    sa.column("id", sa.BigInteger),
    sa.column("key", sa.String),
    sa.column("version", sa.Integer),
    sa.column("revision", sa.String),
    sa.column("definition", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)


def _replace_steps(old: dict[str, list[dict[str, Any]]], new: dict[str, list[Any]]) -> None:
    connection = op.get_bind()
    untouched = connection.execute(
        sa.select(JOURNEYS.c.id, JOURNEYS.c.key, JOURNEYS.c.definition).where(
            JOURNEYS.c.key.in_(list(old)), JOURNEYS.c.version == 1
        )
    ).all()
    for row in untouched:
        if row.definition.get("steps") != old[row.key]:
            continue
        connection.execute(
            sa.update(JOURNEYS)
            .where(JOURNEYS.c.id == row.id)
            .values(definition={**row.definition, "steps": new[row.key]}, revision=uuid.uuid4().hex)
        )


def upgrade() -> None:
    _replace_steps(SHIPPED, NOW)


def downgrade() -> None:
    _replace_steps(NOW, SHIPPED)
