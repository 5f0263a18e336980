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
sends, except a reply: it goes from the account the customer wrote to, or the
deployment's when they wrote to the deployment's number (:meth:`StoreSenders.for_reply`),
whose window their message opened (:mod:`parley.messaging.windows`). Each message keeps
the store's own address it came to or went from (``messages.store_address``; none: the
deployment's).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
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


class StoreSenders(Mapping[ChannelKind, SendingAccount]):
    """One store's sending accounts: as a mapping, the account each channel's messages go
    from (the first connected); :meth:`for_reply` picks the one a customer wrote to."""

    def __init__(self) -> None:
        self._first: dict[ChannelKind, SendingAccount] = {}
        self._by_address: dict[tuple[ChannelKind, str], SendingAccount] = {}
        self._receive_only: set[tuple[ChannelKind, str]] = set()

    def add(self, kind: ChannelKind, account: SendingAccount) -> None:
        self._first.setdefault(kind, account)
        self._by_address[(kind, account.address)] = account

    def add_receive_only(self, kind: ChannelKind, address: str) -> None:
        """An address the store receives on but holds nothing to send from (its webhooks'
        account for the deployment's number): what is written to it is answered from
        the deployment's account."""
        self._receive_only.add((kind, address))

    def __getitem__(self, kind: ChannelKind) -> SendingAccount:
        return self._first[kind]

    def __iter__(self) -> Iterator[ChannelKind]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def line(self, kind: ChannelKind, written_to: str) -> str | None:
        """The number an answer to a message written to ``written_to`` goes from: the
        store's own account at that address, or None for the deployment's when the store
        only receives there. An address the store no longer sends from (paused, removed)
        is its own line, which nothing goes from now."""
        return None if (kind, written_to) in self._receive_only else written_to

    def for_reply(self, kind: ChannelKind, written_to: str | None) -> SendingAccount | None:
        """The account a reply goes from (None: the deployment's): the one the customer
        wrote to, so the answer comes from the number they know and, on WhatsApp and
        Instagram, the number whose window their message opened; the deployment's when
        they wrote to it; else the channel's, as for any message."""
        if written_to is None:
            return self._first.get(kind)
        line = self.line(kind, written_to)
        if line is None:
            return None
        return self._by_address.get((kind, line)) or self._first.get(kind)


StoreAccounts = dict[int, StoreSenders]
"""Each store's sending accounts; a store with none maps to an empty one."""


def sending_accounts(session: Session, workspace_ids: Collection[int]) -> StoreAccounts:
    """The accounts each of ``workspace_ids`` sends from, by channel: its own numbers,
    and its own email address when that is ready."""
    found: StoreAccounts = {workspace_id: StoreSenders() for workspace_id in workspace_ids}
    if not found:
        return found
    for workspace_id, address in ready_senders(session, _stores(session, found)).items():
        found[workspace_id].add(ChannelKind.EMAIL, address)
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
            found[row.workspace_id].add(ChannelKind(row.channel), account)
        else:
            found[row.workspace_id].add_receive_only(ChannelKind(row.channel), row.address)
    return found


def _stores(session: Session, workspace_ids: Collection[int]) -> list[Workspace]:
    """The stores, read in one query if any is not in the session yet (a batch being
    prepared has read most of them already)."""
    missing = [
        workspace_id
        for workspace_id in workspace_ids
        if session.identity_key(Workspace, workspace_id) not in session.identity_map
    ]
    if missing:
        session.scalars(select(Workspace).where(Workspace.id.in_(sorted(missing)))).all()
    return [
        workspace
        for workspace_id in sorted(workspace_ids)
        if (workspace := session.get(Workspace, workspace_id)) is not None
    ]


AccountAnswer = tuple[int, SendingAccount, str | None]
"""A store account's send: its store, the account, and why its provider refused the
account (None: the send went through)."""


def note_answers(session: Session, answers: Sequence[AccountAnswer], *, now: datetime) -> None:
    """Keep on each store account whether its provider refuses it: when and why it last
    did, cleared by a send from it going through. A store whose token was revoked sees it
    on Settings → Channels, and the deployment's alert names it
    (:mod:`parley.alerts.rules`), while its messages go on the next channel."""
    refused = {(ws, a.provider, a.address): why for ws, a, why in answers if why is not None}
    went = {(ws, a.provider, a.address) for ws, a, why in answers if why is None}
    for (workspace_id, provider, address), why in sorted(refused.items()):
        session.execute(
            update(ChannelAccount)
            .where(*_account(workspace_id, provider, address))
            .values(refused_at=now, refused_reason=why[:2_000])
        )
    for workspace_id, provider, address in sorted(went - refused.keys()):
        session.execute(
            update(ChannelAccount)
            .where(
                *_account(workspace_id, provider, address), ChannelAccount.refused_at.is_not(None)
            )
            .values(refused_at=None, refused_reason=None)
        )


@dataclass(frozen=True)
class Refused:
    """Across the deployment (for its engineer's alert): the active store accounts their
    provider refuses now, and the latest refused."""

    count: int
    latest_store: str
    latest_provider: str
    latest_address: str
    latest_at: datetime
    latest_reason: str


def refused_now(session: Session) -> Refused | None:
    """The store accounts whose provider last refused them, or None. Few rows, read by
    the partial index on ``refused_at``."""
    refused = (ChannelAccount.refused_at.is_not(None), ChannelAccount.is_active.is_(True))
    count = session.scalar(select(func.count()).select_from(ChannelAccount).where(*refused))
    if not count:
        return None
    latest, store = session.execute(
        select(ChannelAccount, Workspace.slug)
        .join(Workspace, Workspace.id == ChannelAccount.workspace_id)
        .where(*refused)
        .order_by(ChannelAccount.refused_at.desc(), ChannelAccount.id.desc())
        .limit(1)
    ).one()
    assert latest.refused_at is not None
    return Refused(
        count=count,
        latest_store=store,
        latest_provider=latest.provider,
        latest_address=latest.address,
        latest_at=latest.refused_at,
        latest_reason=latest.refused_reason or "",
    )


def _account(workspace_id: int, provider: str, address: str) -> tuple[Any, ...]:
    return (
        ChannelAccount.workspace_id == workspace_id,
        ChannelAccount.provider == provider,
        ChannelAccount.address == address,
    )


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
