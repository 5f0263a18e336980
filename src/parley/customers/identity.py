"""Normalising the ways a customer is identified: E.164 phones, emails."""

from __future__ import annotations

import functools
import re
from email.utils import parseaddr

import phonenumbers
from phonenumbers import timezone as phone_timezones

# Characters no address parley keeps holds: whitespace, and the specials RFC 5322 allows
# only in quoted local parts, which shoppers' addresses never use.
_NOT_IN_AN_ADDRESS = re.compile(r'[\s<>(),;:"\[\]\\]')


def normalise_email(value: str | None) -> str | None:
    """Trim and lower-case an address; None when it is not plausibly one email.

    A display-name form (``Ada Lovelace <ada@example.com>``) is the address in it: the
    same shopper must not hold two identities, one per way a platform wrote her.
    """
    if not value:
        return None
    value = value.strip()
    if value.endswith(">") and value.count("<") == 1:
        value = parseaddr(value)[1]
    value = value.lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or "@" in domain:
        return None
    if _NOT_IN_AN_ADDRESS.search(value):
        return None
    return value


@functools.lru_cache(maxsize=4096)
def normalise_phone(value: str | None, *, country_code: str | None = None) -> str | None:
    """E.164 form of a phone number, or None when it is not a valid number.

    Remembered: a webhook group reads its shoppers' numbers once to look them up together
    and again as each record is applied, and parsing one (about 20 us) is the dearest
    step of either.
    """
    if not value:
        return None
    try:
        parsed = phonenumbers.parse(value, (country_code or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


MEXICO_OLD_MOBILE = "+521"
"""How a Mexican WhatsApp id drawn before 2019 begins: with the ``1`` that mobiles then
carried after the country code, and no longer do."""
BRAZIL = "+55"
BRAZIL_EIGHT_DIGIT_LENGTH = 13
"""``+55``, a two-digit area code and eight digits: a mobile number before the ninth."""


@functools.lru_cache(maxsize=4096)
def whatsapp_phone(wa_id: str) -> str:
    """The E.164 phone a WhatsApp id (``+`` and its digits) belongs to.

    An id is the number itself almost everywhere, but not in two of WhatsApp's largest
    markets, where the numbering plan changed after WhatsApp had drawn ids: Mexico's
    mobiles lost the ``1`` after ``52`` (ids drawn before keep it), and Brazil's gained a
    ninth digit, ``9`` (ids drawn before, outside a few area codes, lack it). A shopper's
    store record holds today's number, so an id is read as the number that is valid
    today; one valid as it stands, or not a number at all, is kept as it came.
    """
    if normalise_phone(wa_id) is not None:
        return wa_id
    candidate = None
    if wa_id.startswith(MEXICO_OLD_MOBILE):
        candidate = "+52" + wa_id.removeprefix(MEXICO_OLD_MOBILE)
    elif wa_id.startswith(BRAZIL) and len(wa_id) == BRAZIL_EIGHT_DIGIT_LENGTH:
        candidate = f"{wa_id[:5]}9{wa_id[5:]}"
    if candidate is not None and normalise_phone(candidate) == candidate:
        return candidate
    return wa_id


def timezone_for_phone(e164: str | None) -> str | None:
    """The IANA zone a number belongs to, when it has exactly one."""
    zones = timezones_for_phone(e164)
    return zones[0] if len(zones) == 1 else None


def country_for_phone(e164: str | None) -> str | None:
    """The ISO country (``FR``) a number belongs to; None when unknown or not a number."""
    if not e164:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "001" else None


def timezones_for_phone(e164: str | None) -> tuple[str, ...]:
    """Every IANA zone a number's area may be in (none when unknown or not a number)."""
    if not e164:
        return ()
    try:
        zones = phone_timezones.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(zone for zone in zones if zone != "Etc/Unknown")
