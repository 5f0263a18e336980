"""The accounts the Twilio and WhatsApp Cloud stand-ins know, as the real providers do.

A real provider serves many customers: each store in parley may send SMS from its own
Twilio account and WhatsApp from its own business phone number, and every request is
checked against the account it names. :class:`SandboxAccounts` is that list for the
sandbox. It starts with the deployment's own account and number from the settings, so a
sandbox nobody registers anything with behaves exactly as before; tests and the demo add
more with :meth:`SandboxAccounts.add_twilio` and :meth:`SandboxAccounts.add_whatsapp`, and
the sandbox's sign-up (``POST /api/accounts/...``, :mod:`.api`) issues new ones with
:meth:`SandboxAccounts.add_twilio_if_new` and :meth:`SandboxAccounts.add_whatsapp_if_new`.

The Instagram stand-in and the WhatsApp templates endpoint still serve only the
deployment's account.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, replace

from parley.settings import Settings


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    """One Twilio account: its SID, its auth token and the numbers it owns.

    ``callback_token`` signs the status callbacks of messages it sent. Twilio signs them
    with the account's auth token, so that is the default; the deployment's account is
    the exception (see :meth:`SandboxAccounts.from_settings`).
    """

    account_sid: str
    auth_token: str
    phone_numbers: tuple[str, ...] = ()
    signs_callbacks_with: str | None = None

    @property
    def callback_token(self) -> str:
        """The token the status callbacks of this account's messages are signed with."""
        return self.signs_callbacks_with or self.auth_token


@dataclass(frozen=True, slots=True)
class WhatsAppNumber:
    """One WhatsApp Cloud business phone number and the access token that may use it.

    ``app_secret`` signs the status webhooks of messages sent from it; ``None`` signs them
    with the deployment's ``demo_meta_app_secret``, as every webhook was signed before
    numbers could be added.
    """

    phone_number_id: str
    access_token: str
    app_secret: str | None = None


class SandboxAccounts:
    """The Twilio accounts and WhatsApp numbers the stand-ins accept requests for.

    Written from whichever thread registers a store's sender, read on the server's event
    loop on every send: writes take a lock and swap in a new frozen record, so a read
    never sees half an update and needs no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._twilio: dict[str, TwilioAccount] = {}
        self._whatsapp: dict[str, WhatsAppNumber] = {}
        # Every number any account owns, so a sign-up scanning thousands of candidates
        # asks in O(1) whether one is taken. Numbers are never removed.
        self._twilio_numbers: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxAccounts:
        """The deployment's own Twilio account and WhatsApp number, as the stand-ins have
        always known them.

        The deployment's Twilio callbacks keep being signed with ``demo_twilio_auth_token``
        rather than ``twilio_auth_token``: the demo keeps the API's token and the demo
        workspace's webhook token as two settings, and parley's webhook route verifies
        against the second.
        """
        accounts = cls()
        deployment = TwilioAccount(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            phone_numbers=(settings.twilio_from_number,) if settings.twilio_from_number else (),
            signs_callbacks_with=settings.demo_twilio_auth_token,
        )
        accounts._twilio[deployment.account_sid] = deployment
        accounts._twilio_numbers.update(deployment.phone_numbers)
        accounts.add_whatsapp(settings.whatsapp_phone_number_id, settings.whatsapp_access_token)
        return accounts

    def add_twilio(self, account_sid: str, auth_token: str, phone_number: str) -> None:
        """Register a Twilio account, or one more number of an account already known.

        Adding a known SID with a different token replaces the token, as rotating it in
        Twilio's console does; the account keeps its numbers. An empty ``phone_number``
        registers the account (or rotates its token) without adding a number.
        """
        with self._lock:
            self._add_twilio_locked(account_sid, auth_token, phone_number)

    def add_twilio_if_new(self, account_sid: str, auth_token: str, phone_number: str) -> bool:
        """Register a new Twilio account owning ``phone_number``, unless the SID or the
        number is already taken; say whether it was registered.

        The sign-up picks a number nobody owns and registers it in one step, under the
        lock: a check followed by :meth:`add_twilio` could hand one number to two accounts
        if another thread registered it in between.
        """
        with self._lock:
            if account_sid in self._twilio or phone_number in self._twilio_numbers:
                return False
            self._add_twilio_locked(account_sid, auth_token, phone_number)
            return True

    def _add_twilio_locked(self, account_sid: str, auth_token: str, phone_number: str) -> None:
        known = self._twilio.get(account_sid)
        if known is None:
            known = TwilioAccount(account_sid=account_sid, auth_token=auth_token)
        numbers = known.phone_numbers
        if phone_number and phone_number not in numbers:
            numbers = (*numbers, phone_number)
            self._twilio_numbers.add(phone_number)
        self._twilio[account_sid] = replace(known, auth_token=auth_token, phone_numbers=numbers)

    def add_whatsapp(
        self, phone_number_id: str, access_token: str, app_secret: str | None = None
    ) -> None:
        """Register a WhatsApp business phone number, or replace its token and secret."""
        number = WhatsAppNumber(
            phone_number_id=phone_number_id, access_token=access_token, app_secret=app_secret
        )
        with self._lock:
            self._whatsapp[phone_number_id] = number

    def add_whatsapp_if_new(
        self, phone_number_id: str, access_token: str, app_secret: str | None = None
    ) -> bool:
        """Register a new WhatsApp number unless its id is taken; say whether it was.

        Unlike :meth:`add_whatsapp`, never replaces a known number's token: a sign-up that
        drew an id already in use must not take over another store's number.
        """
        number = WhatsAppNumber(
            phone_number_id=phone_number_id, access_token=access_token, app_secret=app_secret
        )
        with self._lock:
            if phone_number_id in self._whatsapp:
                return False
            self._whatsapp[phone_number_id] = number
            return True

    def list_twilio(self) -> tuple[TwilioAccount, ...]:
        """Every Twilio account, in the order they were first registered."""
        return tuple(self._twilio.values())

    def list_whatsapp(self) -> tuple[WhatsAppNumber, ...]:
        """Every WhatsApp number, in the order they were first registered."""
        return tuple(self._whatsapp.values())

    def find_twilio(self, account_sid: str) -> TwilioAccount | None:
        """The Twilio account with this SID, or ``None`` when no such account exists."""
        return self._twilio.get(account_sid)

    def find_whatsapp(self, phone_number_id: str) -> WhatsAppNumber | None:
        """The WhatsApp number with this id, or ``None`` when no such number exists."""
        return self._whatsapp.get(phone_number_id)

    def is_whatsapp_token(self, access_token: str) -> bool:
        """Whether ``access_token`` is any registered number's token.

        Graph tells a token it does not know (401, code 190) from a good token used on a
        number it may not reach (400, code 100); this is the first half of that check.
        Every token is compared, in constant time, so the timing reveals nothing.
        """
        given = access_token.encode()
        matches = [
            hmac.compare_digest(given, number.access_token.encode())
            for number in list(self._whatsapp.values())
        ]
        return any(matches)
