"""Creating workspaces, finding them, and the secrets they verify deliveries with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from parley.clock import utc_now
from parley.db.upsert import per_dialect
from parley.errors import Conflict, NotFound
from parley.journeys.service import install_built_in_journeys
from parley.workspaces.models import ChannelAccount, Workspace

SECRET_ROTATION_GRACE = timedelta(hours=1)


def hash_api_key(api_key: str) -> str:
    """API keys are stored hashed; SHA-256 suffices for long random keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_workspace(
    session: Session,
    *,
    slug: str,
    name: str,
    timezone: str = "UTC",
    shopify_secret: str | None = None,
    api_key: str | None = None,
    store_url: str | None = None,
    support_email: str | None = None,
) -> Workspace:
    """A new store with the built-in journeys installed and enabled."""
    if find_workspace(session, slug=slug) is not None:
        raise Conflict(f"workspace {slug!r} exists")
    workspace = Workspace(
        slug=slug,
        name=name,
        timezone=timezone,
        shopify_secret=shopify_secret,
        api_key_hash=hash_api_key(api_key) if api_key else None,
        store_url=store_url,
        support_email=support_email,
        is_active=True,
        settings={},
        created_at=utc_now(),
    )
    session.add(workspace)
    session.flush()
    install_built_in_journeys(session, workspace_id=workspace.id)
    return workspace


def find_workspace(session: Session, *, slug: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.slug == slug))


def get_workspace(session: Session, *, slug: str) -> Workspace:
    workspace = find_workspace(session, slug=slug)
    if workspace is None:
        raise NotFound(f"workspace {slug!r} not found")
    return workspace


@dataclass(frozen=True)
class WorkspaceAccess:
    """The few facts about a workspace that taking in a delivery needs."""

    id: int
    slug: str
    is_active: bool
    shopify_secret: str | None
    shopify_previous_secret: str | None
    shopify_previous_secret_expires_at: datetime | None


def find_access(session: Session, *, slug: str) -> WorkspaceAccess | None:
    """A light read of a workspace for the webhook path (no ORM object, one short query)."""
    row = session.connection().execute(_select_access(session), {"slug": slug}).first()
    return WorkspaceAccess(**row._mapping) if row else None


@per_dialect
def _select_access(dialect: str) -> Any:
    return select(
        Workspace.id,
        Workspace.slug,
        Workspace.is_active,
        Workspace.shopify_secret,
        Workspace.shopify_previous_secret,
        Workspace.shopify_previous_secret_expires_at,
    ).where(Workspace.slug == bindparam("slug"))


def find_by_api_key(session: Session, *, api_key: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.api_key_hash == hash_api_key(api_key)))


def shopify_secrets(workspace: Workspace | WorkspaceAccess, *, now: datetime) -> list[str]:
    """The secrets a Shopify delivery may be signed with right now (two during a rotation)."""
    secrets = [workspace.shopify_secret] if workspace.shopify_secret else []
    expires = workspace.shopify_previous_secret_expires_at
    if workspace.shopify_previous_secret and expires is not None and now < expires:
        secrets.append(workspace.shopify_previous_secret)
    return secrets


def rotate_shopify_secret(
    session: Session,
    *,
    workspace: Workspace,
    new_secret: str,
    grace: timedelta = SECRET_ROTATION_GRACE,
) -> None:
    """Use a new secret; keep accepting the old one for ``grace`` (Shopify: up to an hour)."""
    workspace.shopify_previous_secret = workspace.shopify_secret
    workspace.shopify_previous_secret_expires_at = utc_now() + grace
    workspace.shopify_secret = new_secret


def mark_uninstalled(session: Session, *, workspace_id: int) -> None:
    """The store removed parley: stop every send at once (checked before each send)."""
    session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id)
        .values(is_active=False, uninstalled_at=utc_now())
    )


def add_channel_account(
    session: Session,
    *,
    workspace_id: int,
    channel: str,
    provider: str,
    address: str,
    secrets: dict[str, str],
) -> ChannelAccount:
    """Connect a provider account; an address already connected (anywhere) is a Conflict:
    one provider account answers to exactly one store."""
    taken = session.scalar(
        select(ChannelAccount).where(
            ChannelAccount.provider == provider, ChannelAccount.address == address
        )
    )
    if taken is not None:
        raise Conflict(f"{provider} account {address} is already connected")
    now = utc_now()
    account = ChannelAccount(
        workspace_id=workspace_id,
        channel=channel,
        provider=provider,
        address=address,
        secrets=dict(secrets),
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    session.flush()
    return account


def channel_accounts(session: Session, *, workspace_id: int, provider: str) -> list[ChannelAccount]:
    """The workspace's active accounts on one provider."""
    return list(
        session.scalars(
            select(ChannelAccount)
            .where(
                ChannelAccount.workspace_id == workspace_id,
                ChannelAccount.provider == provider,
                ChannelAccount.is_active.is_(True),
            )
            .order_by(ChannelAccount.id)
        )
    )
