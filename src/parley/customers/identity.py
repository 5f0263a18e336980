"""Normalising the ways a customer is identified: E.164 phones, emails."""

from __future__ import annotations

import functools

import phonenumbers
from phonenumbers import timezone as phone_timezones


def normalise_email(value: str | None) -> str | None:
    """Trim and lower-case an address; None when it is not plausibly an email."""
    if not value:
        return None
    value = value.strip().lower()
    local, _, domain = value.rpartition("@")
    if not local or "." not in domain:
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


def timezone_for_phone(e164: str | None) -> str | None:
    """The IANA zone a number belongs to, when it has exactly one."""
    zones = timezones_for_phone(e164)
    return zones[0] if len(zones) == 1 else None


def timezones_for_phone(e164: str | None) -> tuple[str, ...]:
    """Every IANA zone a number's area may be in (none when unknown or not a number)."""
    if not e164:
        return ()
    try:
        zones = phone_timezones.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(zone for zone in zones if zone != "Etc/Unknown")
