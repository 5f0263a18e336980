"""Entities found in realistic shopper messages: what is an order number and what is not."""

from __future__ import annotations

import pytest

from parley.assistant.entities import extract


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        pytest.param("my number is 07911 123456", ("+447911123456",), id="uk_mobile_case"),
        pytest.param("call me on 0161 496 0000", ("+441614960000",), id="uk_landline_case"),
    ],
)
def test_a_phone_number_written_nationally_is_no_order_number(text, phones):
    found = extract(text, region="GB")
    assert (found.phones, found.order_numbers) == (phones, ())


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("I ordered on 15/03/2026 and it still hasn't arrived", id="slashes_case"),
        pytest.param("ordered 2026-03-15, nothing yet", id="iso_case"),
        pytest.param("bought it on 3 March 2026, where is it?", id="month_name_case"),
        pytest.param("bought it on March 3, 2026, where is it?", id="us_month_case"),
    ],
)
def test_the_year_of_a_date_is_no_order_number(text):
    assert extract(text, region="GB").order_numbers == ()


def test_an_order_number_beside_a_date_and_a_phone_is_still_found():
    found = extract("order #1501 placed 15/03/2026, call 07911 123456", region="GB")
    assert (found.order_numbers, found.phones) == (("1501",), ("+447911123456",))
