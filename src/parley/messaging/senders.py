"""Which account a store's messages go from: its own, or the deployment's.

A deployment has one set of provider settings (``PARLEY_WHATSAPP_*``, ``PARLEY_TWILIO_*``,
``PARLEY_INSTAGRAM_*``), and a deployment of one store needs nothing more. On a deployment
of many, every store would then write from the same number, and a customer's reply to it
would reach whichever store that number is connected to, since an address maps to one
store alone. So a store may connect its own WhatsApp number, Twilio account or Instagram
account with its sending fields (Settings → Channels; :data:`SENDING_FIELDS`). Its
messages on that channel then go from it: its customers see the store's own number,
their replies and the provider's receipts come back to this store, and the number's pace
is its own (``whatsapp:<phone_number_id>``). A paused account sends nothing; the store's
messages go from the deployment's account again until it is resumed.

Email goes under the store's name from the deployment's address (its domain is the one
set up for sending), or from the store's own address once its domain is proven the
store's and set up (:mod:`parley.messaging.email_sender`). Either way the store's own
inbound address, when it connected one, is the ``Reply-To`` (:func:`reply_addresses`),
so a customer's answer reaches this store's inbox.

Where a store has several active accounts that send on one channel, the first connected
sends.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.accounts.service import Login
from parley.channels.base import ChannelKind, SendingAccount
from parley.errors import Invalid
from parley.messaging.email_sender import ready_senders
from parley.workspaces.credentials import CHANNEL_PROVIDERS, SENDING_FIELDS, SENDS_WITH
from parley.workspaces.models import ChannelAccount, Workspace
from parley.workspaces.service import admins_account

_INBOUND_EMAIL = sorted(
    provider for provider, (channel, _) in CHANNEL_PROVIDERS.items() if channel == ChannelKind.EMAIL
)
"""The providers whose accounts are a store's inbound email addresses."""

StoreAccounts = dict[int, dict[ChannelKind, SendingAccount]]
"""Each store's sending accounts by channel; a store with none maps to an empty dict."""


def sending_accounts(session: Session, workspace_ids: Collection[int]) -> StoreAccounts:
    """The accounts each of ``workspace_ids`` sends from, by channel: its own numbers,
    and its own email address when that is ready."""
    found: StoreAccounts = {workspace_id: {} for workspace_id in workspace_ids}
    if not found:
        return found
    # Already in the session wherever a batch is prepared: no query.
    stores = [session.get(Workspace, workspace_id) for workspace_id in sorted(found)]
    for workspace_id, address in ready_senders(session, filter(None, stores)).items():
        found[workspace_id][ChannelKind.EMAIL] = address
    rows = session.scalars(
        select(ChannelAccount)
        .where(
            ChannelAccount.workspace_id.in_(sorted(found)),
            ChannelAccount.is_active.is_(True),
            ChannelAccount.provider.in_(sorted(SENDS_WITH)),
        )
        .order_by(ChannelAccount.id)
    )
    for row in rows:
        account = sending_account(row)
        if account is not None:
            found[row.workspace_id].setdefault(ChannelKind(row.channel), account)
    return found


def reply_addresses(session: Session, workspace_ids: Collection[int]) -> dict[int, str]:
    """Where each store's customers' email replies should go: the first inbound address it
    connected (Mailgun routes mail to it into the store's inbox). Its email goes from the
    deployment's address; a reply to that would reach whichever store connected it."""
    if not workspace_ids:
        return {}
    rows = session.execute(
        select(ChannelAccount.workspace_id, ChannelAccount.address)
        .where(
            ChannelAccount.workspace_id.in_(sorted(workspace_ids)),
            ChannelAccount.is_active.is_(True),
            # By provider, as the lookup by (provider, address) is indexed.
            ChannelAccount.provider.in_(_INBOUND_EMAIL),
        )
        .order_by(ChannelAccount.id)
    )
    found: dict[int, str] = {}
    for workspace_id, address in rows:
        found.setdefault(workspace_id, address)
    return found


def sending_account(row: ChannelAccount) -> SendingAccount | None:
    """What the store sends with on this account; None when it holds too little to send
    (only the secrets its webhooks are verified with)."""
    secrets = row.secrets or {}
    if not all(secrets.get(name) for name in SENDS_WITH.get(row.provider, ("",))):
        return None
    names = sorted({*SENDS_WITH[row.provider], *SENDING_FIELDS.get(row.provider, ())})
    return SendingAccount(
        provider=row.provider,
        address=row.address,
        credentials=tuple((name, str(secrets[name])) for name in names if secrets.get(name)),
        version=row.updated_at.isoformat(),
    )


def account_to_check(
    session: Session, *, login: Login, account_id: int
) -> tuple[ChannelKind, SendingAccount]:
    """One of the admin's store's accounts, as it would send (Settings → Channels, "Check
    sending"): :class:`NotFound` for another store's, :class:`Invalid` naming what it
    lacks when it cannot send."""
    row = admins_account(session, login=login, account_id=account_id)
    account = sending_account(row)
    if account is None:
        needed = SENDS_WITH.get(row.provider)
        if needed is None:
            raise Invalid(f"{row.address} receives only: parley sends nothing from it")
        missing = [name for name in needed if not (row.secrets or {}).get(name)]
        raise Invalid(f"enter its {', '.join(missing)} first: it sends nothing without")
    return ChannelKind(row.channel), account
