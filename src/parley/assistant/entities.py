"""The things a shopper names in a message: order numbers, emails, phones, sizes, products.

Pure functions over the text (and, for products, the store's catalogue titles): no
database, so they are cheap to run on every message and easy to test on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers

from parley.customers.identity import normalise_email

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# "#1001", "order 1001", "order no. 1001", "pedido 1001", or a bare run of 4-15 digits.
_ORDER = re.compile(
    r"(?:#\s?(\d{3,15})\b)"
    r"|(?:\b(?:order|purchase|pedido|commande|bestellung|ordine)\s*(?:n[or]?\.?|number|num|#)?"
    r"\s*:?\s*#?(\d{3,15})\b)"
    r"|(?<![\d+])\b(\d{4,15})\b(?!\s*(?:cm|kg|lbs?|mm|in\b|%))",
    re.IGNORECASE,
)
# A date's year is no order number: "15/03/2026", "2026-03-15", "3 March 2026", "March 3, 2026".
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(
    r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}\b"
    rf"|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",
    re.IGNORECASE,
)
_SIZE_WORDS = re.compile(
    r"\b(xxs|xs|s|m|l|xl|xxl|xxxl|2xl|3xl|small|medium|large|extra large)\b", re.IGNORECASE
)
_SIZE_NUMBER = re.compile(
    r"\b(?:size|sz|talla|taille|gr(?:ö|oe)sse)\s*(?:eu|us|uk)?\s*(\d{1,2}(?:[.,]5)?)\b",
    re.IGNORECASE,
)
_SIZE_NAMES = {"small": "S", "medium": "M", "large": "L", "extra large": "XL"}
_STOPWORDS = frozenset({"the", "a", "an", "and", "with", "for", "of", "in", "my", "your"})


@dataclass(frozen=True)
class Entities:
    """What was found, in the order it appears; empty tuples when nothing was."""

    order_numbers: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    products: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, list[str]]:
        """The non-empty ones, for the assistant's turn record."""
        return {name: list(values) for name, values in vars(self).items() if values}


def extract(
    text: str, *, region: str | None = None, product_titles: Iterable[str] = ()
) -> Entities:
    """Find every entity in ``text``. ``region`` reads national phone numbers."""
    emails = tuple(dict.fromkeys(e for m in _EMAIL.findall(text) if (e := normalise_email(m))))
    without_emails = _EMAIL.sub(" ", text)
    phones, without_phones = _phones(without_emails, region)
    phone_digits = {re.sub(r"\D", "", p) for p in phones}
    orders: list[str] = []
    for match in _ORDER.finditer(_DATE.sub(" ", without_phones)):
        number = next(group for group in match.groups() if group)
        if number in phone_digits or any(number in digits for digits in phone_digits):
            continue
        orders.append(number)
    return Entities(
        order_numbers=tuple(dict.fromkeys(orders)),
        emails=emails,
        phones=phones,
        sizes=_sizes(text),
        products=_products(text, product_titles),
    )


def _phones(text: str, region: str | None) -> tuple[tuple[str, ...], str]:
    """The valid phone numbers in ``text`` (E.164), and ``text`` with them blanked out:
    a number written nationally ("07911 123456") keeps digits its E.164 form drops, which
    must not be read as an order number."""
    found: list[str] = []
    rest = text
    for match in phonenumbers.PhoneNumberMatcher(text, (region or "US").upper()):
        if phonenumbers.is_valid_number(match.number):
            found.append(
                phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            )
            rest = rest[: match.start] + " " * (match.end - match.start) + rest[match.end :]
    return tuple(dict.fromkeys(found)), rest


def _sizes(text: str) -> tuple[str, ...]:
    sizes = [
        _SIZE_NAMES.get(word.lower(), word.upper())
        for word in _SIZE_WORDS.findall(text)
        # A lone "s"/"m"/"l" is a size only when written as one (upper case).
        if len(word) > 1 or word.isupper()
    ]
    sizes += [number.replace(",", ".") for number in _SIZE_NUMBER.findall(text)]
    return tuple(dict.fromkeys(sizes))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def _products(text: str, titles: Iterable[str]) -> tuple[str, ...]:
    """Catalogue titles the message names: most of a title's words appear in it."""
    words = _words(text)
    found: list[tuple[float, str]] = []
    for title in titles:
        title_words = _words(title)
        if not title_words:
            continue
        overlap = len(words & title_words) / len(title_words)
        if overlap >= 0.5 and len(words & title_words) >= 1:
            found.append((overlap, title))
    return tuple(title for _, title in sorted(found, key=lambda item: -item[0]))
