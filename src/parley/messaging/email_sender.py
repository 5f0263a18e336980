"""A store's email from its own address, once its domain is proven its and set up.

By default every store's email goes from the deployment's address (``EMAIL_FROM``) under
the store's name, with the store's inbound address as ``Reply-To``
(:mod:`parley.messaging.senders`). A store owner expects more: their customers see
``North Outfitters <orders@north.example>``, and mailbox providers judge the store's own
domain, not one it shares with every other store of the deployment.

So a store may set its own From address on Settings → Channels
(``workspace.settings["email_sender"]``). Its email goes from that address only while
the domain's last reading (:mod:`parley.messaging.sending_domain`) shows both:

- **that the domain is this store's**: a TXT record ``parley-verification=<token>`` at
  the domain, the token drawn for this store when it set the address. Without this, the
  admin of one store could send as another store's domain, or the deployment's, wherever
  that domain is set up for the relay;
- **that the domain is set up for sending**: SPF, a DKIM key at the store's selector (the
  relay signs the store's domain with it) and DMARC, the rules Gmail and Yahoo hold bulk
  senders to (:mod:`parley.channels.email_smtp.domain`).

Until then, and whenever a reading falls short again, its email goes from the
deployment's address as before: nothing waits and nothing is refused for it, and the page
says what is missing. A domain never read, or not read for a day, is not ready: parley
cannot vouch for what it did not read. The hourly domain check reads every store's
domain beside the deployment's; "Check now" on the page reads it at once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.base import SendingAccount
from parley.channels.email_smtp.domain import VERIFICATION_PREFIX
from parley.clock import utc_now
from parley.messaging.models import SendingDomainCheck
from parley.workspaces.models import Workspace

SETTING = "email_sender"
PROVIDER = "smtp"
"""A store's own address is sent through the deployment's relay: the adapter is the
deployment's, the From is the store's."""

STALE_AFTER = timedelta(hours=24)
"""A reading older than this vouches for nothing: the domain is read every hour, so a day
without one means DNS stopped answering or the check is off, and records may have gone."""

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class EmailSender:
    """The address a store asked its email to go from, and what proves its domain.

    ``dkim_selector``: the selector the relay signs this domain with; None: the
    deployment's ``EMAIL_DKIM_SELECTOR``.
    """

    address: str
    token: str
    dkim_selector: str | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def verification_record(self) -> str:
        """The TXT record the store publishes at :attr:`domain`."""
        return f"{VERIFICATION_PREFIX}{self.token}"

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None) -> EmailSender | None:
        """The store's own address from its settings; None when it set none."""
        found = (settings or {}).get(SETTING)
        if not isinstance(found, Mapping) or not found.get("address") or not found.get("token"):
            return None
        return cls(str(found["address"]), str(found["token"]), found.get("dkim_selector") or None)

    def as_settings(self) -> dict[str, Any]:
        return {"address": self.address, "token": self.token, "dkim_selector": self.dkim_selector}

    def as_account(self) -> SendingAccount:
        """What the send carries: the deployment's relay, this From address."""
        return SendingAccount(PROVIDER, self.address, (), self.token)


def checked(address: str, dkim_selector: str, *, token: str | None) -> EmailSender:
    """The sender as it will be stored (ValueError naming what is wrong); a new token
    unless the store has one already, so a record it published keeps working."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    domain = domain.lower().rstrip(".")
    labels = domain.split(".")
    if (
        not at
        or len(address) > 254
        or not _LOCAL.fullmatch(local)
        or len(local) > 64
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
    ):
        raise ValueError(
            "enter the address to send from, on your own domain, e.g. orders@shop.example"
        )
    selector = dkim_selector.strip() or None
    if selector is not None and not _SELECTOR.fullmatch(selector):
        raise ValueError(
            "the DKIM selector is the first part of <selector>._domainkey.<domain>: "
            "letters, digits, dots, hyphens and underscores"
        )
    return EmailSender(f"{local}@{domain}", token or secrets.token_urlsafe(18), selector)


def save(workspace: Workspace, address: str, dkim_selector: str) -> EmailSender:
    """Set the address the store's email should go from (ValueError naming what is
    wrong); it does once its domain reads as proven and set up."""
    held = EmailSender.of(workspace.settings)
    sender = checked(address, dkim_selector, token=held.token if held is not None else None)
    workspace.settings = {**(workspace.settings or {}), SETTING: sender.as_settings()}
    return sender


def clear(workspace: Workspace) -> bool:
    """Back to the deployment's address; whether the store had an address of its own."""
    settings = dict(workspace.settings or {})
    if settings.pop(SETTING, None) is None:
        return False
    workspace.settings = settings
    return True


def describe(sender: EmailSender, found: list[str] | None) -> str:
    """One line on where the store's email goes from, for ``parley providers check``."""
    if found == []:
        return f"email goes from {sender.address}: {sender.domain} is this store's and set up"
    why = "its domain was never read" if found is None else "; ".join(found)
    return f"email goes from the deployment's address until {sender.address} is ready: {why}"


def problems(
    sender: EmailSender, reading: SendingDomainCheck | None, *, now: datetime
) -> list[str] | None:
    """What keeps the store's email off its own address, in words; empty: it goes from
    it; None: the domain was never read."""
    if reading is None:
        return None
    found = list(reading.problems)
    if sender.token not in (reading.verifications or []):
        found.insert(
            0,
            f'no TXT record "{sender.verification_record}" at {sender.domain}: '
            "it shows the domain is this store's",
        )
    if reading.checked_at < now - STALE_AFTER:
        found.append(
            f"last read {reading.checked_at:%Y-%m-%d %H:%M} UTC, over a day ago: "
            "parley vouches only for a domain it read within the day"
        )
    return found


def readings(session: Session, domains: Iterable[str]) -> dict[str, SendingDomainCheck]:
    """The last reading of each domain that has one."""
    wanted = sorted(set(domains))
    if not wanted:
        return {}
    rows = session.scalars(select(SendingDomainCheck).where(SendingDomainCheck.domain.in_(wanted)))
    return {row.domain: row for row in rows}


def ready_senders(session: Session, workspaces: Iterable[Workspace]) -> dict[int, SendingAccount]:
    """The stores among ``workspaces`` whose email goes from their own address now."""
    now = utc_now()
    senders = {
        workspace.id: sender
        for workspace in workspaces
        if (sender := EmailSender.of(workspace.settings)) is not None
    }
    if not senders:
        return {}
    found = readings(session, (sender.domain for sender in senders.values()))
    return {
        workspace_id: sender.as_account()
        for workspace_id, sender in senders.items()
        if problems(sender, found.get(sender.domain), now=now) == []
    }


def domains_to_read(session: Session) -> dict[str, str | None]:
    """Every active store's own sending domain, with the DKIM selector to read it with
    (None: the deployment's): what the hourly domain check reads beside the
    deployment's.

    A domain more than one store names is read with the selector of one whose token its
    last reading shows (the store it belongs to), else the first store's: a store naming
    another's domain with a selector of its own making must not keep every reading of it
    failing, and its owner's email off its own address.
    """
    claims: dict[str, list[EmailSender]] = {}
    for settings in session.scalars(
        select(Workspace.settings).where(Workspace.is_active.is_(True)).order_by(Workspace.id)
    ):
        sender = EmailSender.of(settings)
        if sender is not None:
            claims.setdefault(sender.domain, []).append(sender)
    last = readings(session, claims)
    found: dict[str, str | None] = {}
    for domain, senders in claims.items():
        shown = set(last[domain].verifications or []) if domain in last else set()
        owners = [sender for sender in senders if sender.token in shown]
        found[domain] = (owners or senders)[0].dkim_selector
    return found
