"""Parley's default WhatsApp templates never send Meta an empty body parameter.

Meta refuses a template message with an empty parameter, so the dispatch of a store that
sells through the events API (no Shopify shop, no site set) with no tracking link, or of
a customer whose first name came in as blanks, failed at WhatsApp instead of arriving.
The context is built as the outbox builds it, from the store's own rows.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from parley.channels.base import ChannelKind
from parley.commerce.models import Fulfillment, Order
from parley.customers.models import Customer
from parley.messaging.context import template_context
from parley.messaging.default_templates import DEFAULT_TEMPLATES
from parley.messaging.templates import TemplateRenderer
from parley.messaging.types import MessageType
from parley.workspaces.models import Workspace

WHATSAPP_DEFAULTS = [
    key
    for key, content in DEFAULT_TEMPLATES.items()
    if key[1] is ChannelKind.WHATSAPP and content.whatsapp_template
]


def _store(**overrides: object) -> Workspace:
    fields: dict[str, object] = {
        "id": 1,
        "name": "Juniper & Pine",
        "store_url": None,
        "shopify_shop_domain": None,
        "support_email": None,
        "settings": {},
    }
    fields.update(overrides)
    return Workspace(**fields)


def _order() -> Order:
    return Order(
        number="#1042",
        total_price=Decimal("86.50"),
        currency="EUR",
        status_url=None,
        line_items=[{"title": "Linen Throw Blanket", "quantity": 1, "price": "86.50"}],
    )


def _untracked() -> Fulfillment:
    return Fulfillment(
        tracking_company=None, tracking_number=None, tracking_url=None, shipment_status=None
    )


@pytest.mark.parametrize("key", [pytest.param(key, id=key[0].value) for key in WHATSAPP_DEFAULTS])
def test_whatsapp_parameters_are_filled_for_a_store_without_a_site_or_tracking_link(key):
    context = template_context(
        workspace=_store(),
        customer=Customer(first_name="Maya", last_name=None, email=None, phone="+447911123456"),
        order=_order(),
        fulfillment=_untracked(),
    )

    rendered = TemplateRenderer().render(DEFAULT_TEMPLATES[key], context)

    assert rendered.template is not None
    assert "" not in rendered.template.body_parameters


def test_a_dispatch_without_a_link_names_the_tracking_number_then_the_store():
    renderer = TemplateRenderer()
    content = DEFAULT_TEMPLATES[(MessageType.DISPATCH, ChannelKind.WHATSAPP)]
    customer = Customer(first_name="Maya", phone="+447911123456")
    numbered = Fulfillment(tracking_number="JD014600006281")

    with_number = renderer.render(
        content,
        template_context(
            workspace=_store(), customer=customer, order=_order(), fulfillment=numbered
        ),
    )
    without = renderer.render(
        content,
        template_context(
            workspace=_store(), customer=customer, order=_order(), fulfillment=_untracked()
        ),
    )

    assert with_number.template is not None
    assert without.template is not None
    assert with_number.template.body_parameters == (
        "Maya",
        "#1042",
        "our delivery partner",
        "JD014600006281",
    )
    assert without.template.body_parameters == (
        "Maya",
        "#1042",
        "our delivery partner",
        "Juniper & Pine",
    )


@pytest.mark.parametrize("blank", ["   ", "\t", " \n "])
def test_a_first_name_of_blanks_greets_there_rather_than_sending_an_empty_parameter(blank):
    context = template_context(
        workspace=_store(store_url="https://juniperandpine.example"),
        customer=Customer(first_name=blank, last_name=" ", phone="+447911123456"),
        order=_order(),
        fulfillment=_untracked(),
    )

    rendered = TemplateRenderer().render(
        DEFAULT_TEMPLATES[(MessageType.DELIVERED, ChannelKind.WHATSAPP)], context
    )

    assert context["customer"]["first_name"] == ""
    assert context["customer"]["last_name"] == ""
    assert rendered.template is not None
    assert rendered.template.body_parameters == ("there", "#1042")
    assert rendered.text.startswith("Hi there! Your Juniper & Pine order *#1042* has been")
