"""What counts as one email address: the identity a shopper is found by."""

from __future__ import annotations

import pytest

from parley.customers.identity import normalise_email


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("  Ada@Example.COM ", "ada@example.com"),
        # A display-name form (a platform's "name <address>" field) is the address in it,
        # or the same shopper would hold two identities and get two profiles.
        ("Ada Lovelace <Ada@Example.com>", "ada@example.com"),
        ('"Lovelace, Ada" <ada@example.com>', "ada@example.com"),
        ("not an address", None),
        ("ada@localhost", None),
        ("ada @example.com", None),
        ("ada@exa mple.com", None),
        ("ada@example.com, bob@example.com", None),
        ("<>", None),
        ("", None),
        (None, None),
    ],
)
def test_an_address_is_kept_in_one_form_and_anything_else_is_none(given, kept):
    assert normalise_email(given) == kept
