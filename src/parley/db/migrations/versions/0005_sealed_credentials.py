"""sealed credentials: channel secrets and Shopify secrets encrypted at rest

Existing plaintext values are encrypted in place, with the key derived from
``PARLEY_SECRET_KEY`` (see ``parley/workspaces/credentials.py``): run this migration with
the same environment as the server. The downgrade decrypts them back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 03:40:35.447243
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import parley.db.base
from parley.workspaces.credentials import seal, unseal

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNTS = sa.table(
    "channel_accounts",
    sa.column("id", sa.Integer),
    sa.column("secrets", sa.Text),
    sa.column("secret_fields", parley.db.base.JsonType),
    sa.column("updated_at", parley.db.base.UTCDateTime),
)
WORKSPACES = sa.table(
    "workspaces",
    sa.column("id", sa.Integer),
    sa.column("shopify_secret", sa.Text),
    sa.column("shopify_previous_secret", sa.Text),
    sa.column("shopify_secret_changed_at", parley.db.base.UTCDateTime),
    sa.column("created_at", parley.db.base.UTCDateTime),
)


def upgrade() -> None:
    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_fields", parley.db.base.JsonType, nullable=True))
        batch_op.alter_column(
            "secrets",
            existing_type=parley.db.base.JsonType,
            type_=sa.Text(),
            existing_nullable=False,
            postgresql_using="secrets::text",
        )
    # Plain ALTER TABLE, never a batch copy: with foreign keys on, SQLite's copy-and-drop of
    # ``workspaces`` would cascade to every row that belongs to a workspace.
    op.add_column(
        "workspaces",
        sa.Column(
            "shopify_secret_changed_at", parley.db.base.UTCDateTime(timezone=True), nullable=True
        ),
    )

    connection = op.get_bind()
    for row in connection.execute(sa.select(ACCOUNTS)).all():
        plain = json.loads(row.secrets) if row.secrets else {}
        connection.execute(
            ACCOUNTS.update()
            .where(ACCOUNTS.c.id == row.id)
            .values(
                secrets=seal(json.dumps(plain, sort_keys=True)),
                secret_fields={name: row.updated_at.isoformat() for name in plain},
            )
        )
    for row in connection.execute(sa.select(WORKSPACES)).all():
        connection.execute(
            WORKSPACES.update()
            .where(WORKSPACES.c.id == row.id)
            .values(
                shopify_secret=seal(row.shopify_secret) if row.shopify_secret else None,
                shopify_previous_secret=(
                    seal(row.shopify_previous_secret) if row.shopify_previous_secret else None
                ),
                shopify_secret_changed_at=row.created_at if row.shopify_secret else None,
            )
        )

    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.alter_column(
            "secret_fields", existing_type=parley.db.base.JsonType, nullable=False
        )


def downgrade() -> None:
    connection = op.get_bind()
    for row in connection.execute(sa.select(ACCOUNTS)).all():
        connection.execute(
            ACCOUNTS.update()
            .where(ACCOUNTS.c.id == row.id)
            .values(secrets=unseal(row.secrets) if row.secrets else "{}")
        )
    for row in connection.execute(sa.select(WORKSPACES)).all():
        connection.execute(
            WORKSPACES.update()
            .where(WORKSPACES.c.id == row.id)
            .values(
                shopify_secret=unseal(row.shopify_secret) if row.shopify_secret else None,
                shopify_previous_secret=(
                    unseal(row.shopify_previous_secret) if row.shopify_previous_secret else None
                ),
            )
        )
    op.drop_column("workspaces", "shopify_secret_changed_at")
    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.alter_column(
            "secrets",
            existing_type=sa.Text(),
            type_=parley.db.base.JsonType,
            existing_nullable=False,
            postgresql_using="secrets::jsonb",
        )
        batch_op.drop_column("secret_fields")
