"""Built-in parcel journeys also skip an update outrun by a failed attempt or a pickup point

Dispatch and out-for-delivery messages reached after the parcel had moved on were skipped
only once it was out for delivery or delivered (0010). A parcel can also be past them by
being tried at the door, left at a pickup point, or failed: "out for delivery today"
after the courier already tried is wrong too. New workspaces get the new definitions from
``parley.journeys.definitions``; this brings them to the stores that never edited these
journeys (version 1, steps as 0010 left them), in the journey and its kept version 1,
and leaves edited ones alone.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAST_OUT_FOR_DELIVERY = ["attempted_delivery", "ready_for_pickup", "failed", "delivered"]


def _not_yet(later: list[str], words: str) -> dict[str, Any]:
    return {
        "type": "condition",
        "if": {"path": "fulfillment.shipment_status", "op": "not_in", "value": later},
        "otherwise": "exit",
        "reason": f"superseded: the parcel is already {words}",
    }


BEFORE = {
    "dispatch": [
        _not_yet(["out_for_delivery", "delivered"], "out for delivery or delivered"),
        {"type": "send", "message": "dispatch"},
    ],
    "out_for_delivery": [
        _not_yet(["delivered"], "delivered"),
        {"type": "send", "message": "out_for_delivery"},
    ],
}
AFTER = {
    "dispatch": [
        _not_yet(["out_for_delivery", *PAST_OUT_FOR_DELIVERY], "out for delivery or further"),
        {"type": "send", "message": "dispatch"},
    ],
    "out_for_delivery": [
        _not_yet(
            PAST_OUT_FOR_DELIVERY,
            "past out for delivery (delivered, tried at the door, at a pickup point or failed)",
        ),
        {"type": "send", "message": "out_for_delivery"},
    ],
}

DEFINITION = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
JOURNEYS = sa.table(
    "journeys",
    sa.column("id", sa.BigInteger),
    sa.column("key", sa.String),
    sa.column("version", sa.Integer),
    sa.column("revision", sa.String),
    sa.column("definition", DEFINITION),
)
VERSIONS = sa.table(
    "journey_versions",
    sa.column("journey_id", sa.BigInteger),
    sa.column("version", sa.Integer),
    sa.column("revision", sa.String),
    sa.column("definition", DEFINITION),
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
        values = {
            "definition": {**row.definition, "steps": new[row.key]},
            "revision": uuid.uuid4().hex,
        }
        connection.execute(sa.update(JOURNEYS).where(JOURNEYS.c.id == row.id).values(values))
        connection.execute(
            sa.update(VERSIONS)
            .where(VERSIONS.c.journey_id == row.id, VERSIONS.c.version == 1)
            .values(values)
        )


def upgrade() -> None:
    _replace_steps(BEFORE, AFTER)


def downgrade() -> None:
    _replace_steps(AFTER, BEFORE)
