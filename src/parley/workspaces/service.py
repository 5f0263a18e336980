"""Creating workspaces, finding them, and the secrets they verify deliveries with."""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from parley.accounts.service import Login, audit_as, require_admin
from parley.clock import utc_now
from parley.customers.identity import normalise_email
from parley.db.upsert import per_dialect
from parley.errors import Conflict, Invalid, NotFound
from parley.journeys.service import install_built_in_journeys
from parley.workspaces.credentials import (
    CHANNEL_PROVIDERS,
    MAX_SECRET_CHARS,
    SENDING_FIELDS,
    SENDS_WITH,
)
from parley.workspaces.models import ChannelAccount, Workspace

SECRET_ROTATION_GRACE = timedelta(hours=1)
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
"""A store's name in its addresses (``/webhooks/shopify/<slug>``): a ``/``, a space or a
``?`` would make an address that reaches no store."""


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
    if not SLUG.fullmatch(slug):
        raise Invalid(
            f"a store's slug is 1 to 64 lowercase letters, digits and dashes, beginning with a "
            f"letter or digit, as its webhook addresses name it (not {slug!r})"
        )
    check_time_zone(timezone)
    if find_workspace(session, slug=slug) is not None:
        raise Conflict(f"workspace {slug!r} exists")
    workspace = Workspace(
        slug=slug,
        name=name,
        timezone=timezone,
        shopify_secret=shopify_secret,
        shopify_secret_changed_at=utc_now() if shopify_secret else None,
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


def check_time_zone(name: str) -> None:
    """:class:`Invalid` unless ``name`` is an IANA zone: the store's hours (quiet hours,
    the day a message is planned for) are read in it, and a name no one knows would be
    read as UTC without a word."""
    if name not in zoneinfo.available_timezones():
        raise Invalid(f"unknown time zone {name!r}")


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
    shopify_shop_domain: str | None


def find_access(session: Session, *, slug: str) -> WorkspaceAccess | None:
    """A light read of a workspace for the webhook path (no ORM object, one short query)."""
    row = session.connection().execute(_select_access(session), {"slug": slug}).first()
    return WorkspaceAccess(**row._mapping) if row else None


def find_access_by_key_hash(session: Session, *, key_hash: str) -> WorkspaceAccess | None:
    """The same light read, for the workspace whose API key hashes to ``key_hash``."""
    found = session.connection().execute(_select_access_by_key(session), {"key_hash": key_hash})
    row = found.first()
    return WorkspaceAccess(**row._mapping) if row else None


_ACCESS_COLUMNS = (
    Workspace.id,
    Workspace.slug,
    Workspace.is_active,
    Workspace.shopify_secret,
    Workspace.shopify_previous_secret,
    Workspace.shopify_previous_secret_expires_at,
    Workspace.shopify_shop_domain,
)


@per_dialect
def _select_access(dialect: str) -> Any:
    return select(*_ACCESS_COLUMNS).where(Workspace.slug == bindparam("slug"))


@per_dialect
def _select_access_by_key(dialect: str) -> Any:
    return select(*_ACCESS_COLUMNS).where(Workspace.api_key_hash == bindparam("key_hash"))


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
    workspace.shopify_secret_changed_at = utc_now()


UNINSTALLED_IN_SESSION = "workspaces.uninstalled"


def mark_uninstalled(session: Session, *, workspace_id: int) -> None:
    """The store removed parley: stop every send at once (checked before each send)."""
    session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id)
        .values(is_active=False, uninstalled_at=utc_now())
    )
    session.info.setdefault(UNINSTALLED_IN_SESSION, set()).add(workspace_id)


def uninstalled_in(session: Session, workspace_id: int) -> bool:
    """Whether this transaction has just uninstalled the workspace: deliveries written
    after it in the same transaction (a group commit) were verified while it was active."""
    return workspace_id in session.info.get(UNINSTALLED_IN_SESSION, ())


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
    address = _account_address(provider, address)
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
        secret_fields={name: now.isoformat() for name in secrets},
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


# Admin pages: credentials are write-only. Every change is audited with the provider and
# field names, never a value.


@dataclass(frozen=True)
class SecretField:
    name: str
    is_set: bool
    changed_at: datetime | None


@dataclass(frozen=True)
class ConnectedAccount:
    """What an admin may see of a connected account: never a secret, not even a prefix."""

    id: int
    channel: str
    provider: str
    address: str
    is_active: bool
    fields: tuple[SecretField, ...]
    connected_at: datetime
    sending_fields: tuple[SecretField, ...] = ()
    """The optional fields it sends with (:data:`SENDING_FIELDS`)."""
    refused_at: datetime | None = None
    """When its provider last refused it sending, and why (cleared by a send that went
    through, or by new secrets)."""
    refused_reason: str | None = None

    @property
    def sends(self) -> bool:
        """Whether the store's messages on this channel go from this account."""
        held = {field.name for field in (*self.fields, *self.sending_fields) if field.is_set}
        needed = SENDS_WITH.get(self.provider)
        return self.is_active and needed is not None and held.issuperset(needed)


def _changed_at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def connected_accounts(session: Session, *, workspace_id: int) -> list[ConnectedAccount]:
    """The workspace's channel accounts with which secrets are set and when they changed.

    Reads only the plain ``secret_fields`` column: the page that lists credentials never
    decrypts one.
    """
    rows = session.execute(
        select(
            ChannelAccount.id,
            ChannelAccount.channel,
            ChannelAccount.provider,
            ChannelAccount.address,
            ChannelAccount.is_active,
            ChannelAccount.secret_fields,
            ChannelAccount.created_at,
            ChannelAccount.refused_at,
            ChannelAccount.refused_reason,
        )
        .where(ChannelAccount.workspace_id == workspace_id)
        .order_by(ChannelAccount.channel, ChannelAccount.id)
    )
    found = []
    for row in rows:
        changed = row.secret_fields or {}
        names = CHANNEL_PROVIDERS.get(row.provider, ("", tuple(changed)))[1]

        def field(name: str, changed: dict[str, str] = changed) -> SecretField:
            return SecretField(name, name in changed, _changed_at(changed.get(name)))

        found.append(
            ConnectedAccount(
                row.id,
                row.channel,
                row.provider,
                row.address,
                row.is_active,
                tuple(field(name) for name in names),
                row.created_at,
                tuple(field(name) for name in SENDING_FIELDS.get(row.provider, ())),
                row.refused_at,
                row.refused_reason,
            )
        )
    return found


_SENDING_FORMATS = {
    "account_sid": (re.compile(r"AC[0-9a-fA-F]{32}"), "AC and 32 hexadecimal digits"),
    "business_account_id": (re.compile(r"[0-9]{1,30}"), "digits only"),
}
"""Sending fields with a shape the provider gives them; checked so a typo is refused
here, not found out by the first customer's message."""


def _clean_secrets(provider: str, given: dict[str, str], *, partial: bool) -> dict[str, str]:
    """The webhook secrets the provider needs (all of them, or on a ``partial`` change
    those given) and any sending fields given, checked; blank ones left out."""
    if provider not in CHANNEL_PROVIDERS:
        raise Invalid(f"unknown provider {provider!r}: use one of {', '.join(CHANNEL_PROVIDERS)}")
    needed = CHANNEL_PROVIDERS[provider][1]
    names = (*needed, *SENDING_FIELDS.get(provider, ()))
    values = {name: given.get(name, "").strip() for name in names}
    for name, value in values.items():
        if len(value) > MAX_SECRET_CHARS:
            raise Invalid(f"{name} is longer than {MAX_SECRET_CHARS} characters")
        shape = _SENDING_FORMATS.get(name)
        if value and shape is not None and not shape[0].fullmatch(value):
            raise Invalid(f"{name} must be {shape[1]}")
    chosen = {name: value for name, value in values.items() if value}
    if partial:
        if not chosen:
            raise Invalid("enter at least one new secret to replace")
        return chosen
    missing = [name for name in needed if not values[name]]
    if missing:
        raise Invalid(f"{provider} needs {', '.join(missing)}")
    return chosen


MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-f]{32}", re.IGNORECASE)
META_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")


def _account_address(provider: str, address: str) -> str:
    """The address as the provider's webhooks name it, or :class:`Invalid` saying what is
    expected. An address kept as typed (``+1 555 123 4567``) would match no webhook: its
    receipts, replies and STOPs would be ignored as another store's."""
    address = address.strip()
    if provider == "twilio":
        return _twilio_address(address)
    if provider in {"whatsapp_cloud", "instagram"} and not META_ACCOUNT_ID.fullmatch(address):
        kind = (
            "WhatsApp phone number id" if provider == "whatsapp_cloud" else "Instagram account id"
        )
        raise Invalid(f"enter the {kind}: digits only, as Meta shows it (not {address!r})")
    if provider == "mailgun":
        email = normalise_email(address)
        if email is None:
            raise Invalid(f"enter the inbound email address (not {address!r})")
        return email
    return address


def _twilio_address(address: str) -> str:
    """A number in E.164, as Twilio writes it (``+15551234567``), or a Messaging Service
    SID (``MG…``) for a store sending from a pool of numbers."""
    if MESSAGING_SERVICE_SID.fullmatch(address):
        return "MG" + address[2:].lower()
    try:
        number = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise Invalid(
            "enter a Twilio number in E.164 form, e.g. +15551234567, or a Messaging Service "
            f"SID (MG…), not {address!r}"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def account_secrets(provider: str, given: dict[str, str]) -> dict[str, str]:
    """What a new ``provider`` account stores of ``given``: every webhook secret it needs
    and any sending fields, checked (:class:`Invalid` names what is wrong)."""
    return _clean_secrets(provider, given, partial=False)


def connect_account(
    session: Session,
    *,
    login: Login,
    provider: str,
    address: str,
    secrets: dict[str, str],
    ip: str,
) -> ChannelAccount:
    """Connect a provider account to the admin's workspace; audited without the values."""
    require_admin(login)
    values = account_secrets(provider, secrets)
    address = address.strip()
    if not address or len(address) > 320:
        raise Invalid("enter the account's address (phone number id, number, account id…)")
    account = add_channel_account(
        session,
        workspace_id=login.workspace_id,
        channel=CHANNEL_PROVIDERS[provider][0],
        provider=provider,
        address=address,
        secrets=values,
    )
    audit_as(
        session,
        login,
        "credentials_changed",
        now=utc_now(),
        ip=ip,
        detail={
            "change": "connected",
            "provider": provider,
            "address": account.address,
            "fields": sorted(values),
        },
    )
    return account


def admins_account(session: Session, *, login: Login, account_id: int) -> ChannelAccount:
    """One of the admin's own store's accounts; :class:`NotFound` for any other store's,
    which the admin may not learn exists."""
    require_admin(login)
    account = session.scalar(
        select(ChannelAccount).where(
            ChannelAccount.id == account_id, ChannelAccount.workspace_id == login.workspace_id
        )
    )
    if account is None:
        raise NotFound("no such channel account in this workspace")
    return account


def replace_secrets(
    session: Session,
    *,
    login: Login,
    account_id: int,
    secrets: dict[str, str],
    ip: str,
) -> None:
    """Replace some or all of an account's secrets; blank fields keep their value."""
    account = admins_account(session, login=login, account_id=account_id)
    values = _clean_secrets(account.provider, secrets, partial=True)
    now = utc_now()
    account.secrets = {**account.secrets, **values}
    account.secret_fields = {
        **(account.secret_fields or {}),
        **{name: now.isoformat() for name in values},
    }
    account.updated_at = now
    # New secrets are what a refusal asks for: the next send says whether they work.
    account.refused_at = account.refused_reason = None
    audit_as(
        session,
        login,
        "credentials_changed",
        now=now,
        ip=ip,
        detail={
            "change": "replaced",
            "provider": account.provider,
            "address": account.address,
            "fields": sorted(values),
        },
    )


def set_active(
    session: Session, *, login: Login, account_id: int, is_active: bool, ip: str
) -> None:
    """Pause or resume an account: a paused account's webhooks are no longer accepted."""
    account = admins_account(session, login=login, account_id=account_id)
    if account.is_active == is_active:
        return
    account.is_active = is_active
    account.updated_at = utc_now()
    audit_as(
        session,
        login,
        "credentials_changed",
        now=account.updated_at,
        ip=ip,
        detail={
            "change": "resumed" if is_active else "paused",
            "provider": account.provider,
            "address": account.address,
        },
    )


@dataclass(frozen=True)
class ShopifyState:
    shop_domain: str | None
    is_set: bool
    changed_at: datetime | None
    previous_accepted_until: datetime | None


def shopify_state(session: Session, *, workspace_id: int) -> ShopifyState:
    """Whether a Shopify secret is set, without reading (or decrypting) it."""
    row = session.execute(
        select(
            Workspace.shopify_shop_domain,
            Workspace.shopify_secret.is_not(None).label("is_set"),
            Workspace.shopify_secret_changed_at,
            Workspace.shopify_previous_secret_expires_at,
        ).where(Workspace.id == workspace_id)
    ).one()
    now = utc_now()
    until = row.shopify_previous_secret_expires_at
    return ShopifyState(
        row.shopify_shop_domain,
        bool(row.is_set),
        row.shopify_secret_changed_at,
        until if until is not None and until > now else None,
    )


def set_shopify_secret(session: Session, *, login: Login, new_secret: str, ip: str) -> None:
    """Set the Shopify webhook secret; replacing one keeps the old valid for the grace hour
    Shopify may still sign with it."""
    require_admin(login)
    secret = new_secret.strip()
    if not secret:
        raise Invalid("enter the new Shopify secret")
    if len(secret) > MAX_SECRET_CHARS:
        raise Invalid(f"the secret is longer than {MAX_SECRET_CHARS} characters")
    workspace = session.get_one(Workspace, login.workspace_id)
    if workspace.shopify_secret == secret:
        raise Conflict("that is already the Shopify secret")
    change = "rotated" if workspace.shopify_secret else "set"
    if workspace.shopify_secret:
        rotate_shopify_secret(session, workspace=workspace, new_secret=secret)
    else:
        workspace.shopify_secret = secret
        workspace.shopify_secret_changed_at = utc_now()
    audit_as(
        session,
        login,
        "credentials_changed",
        now=utc_now(),
        ip=ip,
        detail={"change": change, "provider": "shopify", "fields": ["shopify_secret"]},
    )
