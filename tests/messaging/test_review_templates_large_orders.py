"""An order with hundreds of lines still gets its confirmation email.

The output cap (64 KB a field) keeps one store's template from taking a worker down, but
parley's own confirmation email spends about 300 characters of HTML a line: a wholesale
order of a few hundred lines made it fail to render, so the confirmation was never sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from parley.channels.base import ChannelKind
from parley.messaging.default_templates import DEFAULT_TEMPLATES
from parley.messaging.templates import TemplateRenderer
from parley.messaging.types import MessageType

CONFIRMATION = DEFAULT_TEMPLATES[(MessageType.ORDER_CONFIRMATION, ChannelKind.EMAIL)]
ROW = '<div style="font-weight:600;">'


def _order_of(lines: int) -> dict[str, Any]:
    return {
        "store": {
            "name": "Juniper & Pine",
            "url": "https://juniperandpine.example",
            "support_email": "hello@juniperandpine.example",
        },
        "customer": {"first_name": "Maya", "last_name": "", "email": "", "phone": ""},
        "order": {
            "number": "#1042",
            "total": "5550.00",
            "currency": "EUR",
            "status_url": "https://juniperandpine.example/orders/1042",
            "items": [
                {
                    "title": f"Organic Cotton Tee, long sleeve, style {index:03}",
                    "quantity": 1,
                    "price": "18.50",
                    "variant_title": "White / M",
                }
                for index in range(lines)
            ],
            "item_count": lines,
        },
        "fulfillment": None,
        "review_url": "",
    }


@pytest.mark.parametrize("lines", [250, 1000])
def test_a_confirmation_of_hundreds_of_lines_renders_the_first_hundred_and_counts_the_rest(
    lines,
):
    rendered = TemplateRenderer().render(CONFIRMATION, _order_of(lines))

    assert rendered.html is not None
    assert rendered.html.count(ROW) == 100
    assert "style 099</div>" in rendered.html
    assert "style 100" not in rendered.html
    assert f"and {lines - 100} more items" in rendered.html
    assert rendered.text.count("\n- Organic Cotton Tee") == 100
    assert f"\n- and {lines - 100} more items\n" in rendered.text
    assert "Total: €5,550.00" in rendered.text


def test_a_confirmation_of_a_hundred_lines_lists_every_one():
    rendered = TemplateRenderer().render(CONFIRMATION, _order_of(100))

    assert rendered.html is not None
    assert rendered.html.count(ROW) == 100
    assert "more items" not in rendered.html
    assert "more items" not in rendered.text
