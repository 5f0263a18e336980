"""The grounding check on a reworded reply: it adds no fact and no promise (A1, A3)."""

from __future__ import annotations

import pytest

from parley.assistant.llm import is_grounded

DELIVERED = "Order #1501 was delivered on 3 March 2026."
REFUND_ASKED = (
    "I've passed your refund request for order #1501 to a colleague, who will reply here."
)


@pytest.mark.parametrize(
    "candidate",
    [
        pytest.param("Good news: order #1501 arrived on 3 April 2026!", id="month_changed_case"),
        pytest.param("Order #1501 was delivered on Tuesday, 3 March 2026.", id="weekday_case"),
    ],
)
def test_a_reworded_date_must_be_the_drafts_date(candidate):
    assert not is_grounded(candidate, DELIVERED)


@pytest.mark.parametrize(
    "candidate",
    [
        pytest.param("We'll refund order #1501 in full; a colleague will reply.", id="will_case"),
        pytest.param("You will get your money back for order #1501.", id="money_back_case"),
        pytest.param("Order #1501 will be refunded; a colleague will reply.", id="passive_case"),
        pytest.param("We'll send a free replacement for order #1501.", id="replacement_case"),
        pytest.param("A colleague will reply and give you 20% off order #1501.", id="percent_case"),
    ],
)
def test_a_reworded_refund_request_promises_nothing(candidate):
    assert not is_grounded(candidate, REFUND_ASKED)


def test_a_faithful_rewording_of_a_refund_request_is_kept():
    assert is_grounded(
        "Thanks! A colleague now has your refund request for order #1501 and will reply here.",
        REFUND_ASKED,
    )
    assert is_grounded("Your order #1501 arrived on 3 March 2026.", DELIVERED)
