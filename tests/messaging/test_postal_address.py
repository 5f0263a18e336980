"""The store's postal address on every marketing email (RELIABILITY S13, CAN-SPAM): a
marketing email template that does not show it is refused when saved, no marketing email
goes while the store has none, and one whose wording does not show it gets it appended."""

from __future__ import annotations

import pytest

from parley.channels.base import ChannelKind
from parley.demo.seed import DEMO_POSTAL_ADDRESS
from parley.errors import Invalid
from parley.messaging import catalog, postal_address
from parley.messaging.models import Message, MessageTemplate
from parley.messaging.templates import TemplateContent, TemplateRenderer
from parley.messaging.types import MessageType
from parley.workspaces.models import Workspace
from support import (
    deliveries,
    drain,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
    to_lane,
)

NAMED = "Hi {{ customer.first_name }}, 20% off this week.\n\n{{ store.postal_address }}"


@pytest.mark.parametrize(
    ("source", "names"),
    [
        pytest.param("{{ store.postal_address }}", True, id="attribute"),
        pytest.param("{{ store['postal_address'] }}", True, id="item"),
        pytest.param("{% if store.postal_address %}{{ store.name }}{% endif %}", True, id="tag"),
        pytest.param("{{ postal_address }}", False, id="bare_name"),
        pytest.param("{{ customer.postal_address }}", False, id="another_object"),
        pytest.param("Write to store.postal_address", False, id="plain_text"),
        pytest.param("{{ store.postal_address ", False, id="broken"),
        pytest.param(None, False, id="absent"),
    ],
)
def test_a_template_names_the_address_only_as_the_stores_variable(source, names):
    assert postal_address.names_address(source) is names


def _save(db, message_type: MessageType, channel: ChannelKind, content: dict) -> None:
    with db.transaction() as session:
        catalog.save_template(
            session,
            workspace_id=1,
            message_type=message_type,
            channel=channel,
            content=content,
        )


@pytest.mark.parametrize(
    ("content", "body"),
    [
        pytest.param(
            {"text": "20% off this week!", "subject": "Sale"}, "plain-text body", id="text"
        ),
        pytest.param(
            {"text": NAMED, "subject": "Sale", "html": "<p>20% off</p>"}, "HTML body", id="html"
        ),
    ],
)
def test_a_marketing_email_template_without_the_address_is_refused(db, content, body):
    seed(db)

    with pytest.raises(Invalid) as refused:
        _save(db, MessageType.PROMOTION, ChannelKind.EMAIL, content)

    assert refused.value.message == (
        "template for promotion on email is not valid: a marketing email must show the "
        f"store's postal address (CAN-SPAM): add {{{{ store.postal_address }}}} to its {body}"
    )
    assert rows(db, MessageTemplate) == []


def test_templates_the_rule_does_not_cover_are_saved(db):
    seed(db)

    _save(db, MessageType.PROMOTION, ChannelKind.EMAIL, {"text": NAMED, "subject": "Sale"})
    _save(db, MessageType.PROMOTION, ChannelKind.SMS, {"text": "20% off this week!"})
    _save(
        db, MessageType.DISPATCH, ChannelKind.EMAIL, {"text": "Shipped!", "subject": "On its way"}
    )

    assert len(rows(db, MessageTemplate)) == 3


def _store_address(db, address: str) -> None:
    with db.transaction() as session:
        workspace = session.get_one(Workspace, 1)
        workspace.settings = {**workspace.settings, "postal_address": address}


def _confirmation_as_promotion(db) -> tuple[Message, list]:
    """Ada (email marketing consent) is sent the store's order confirmation, which the
    store runs as a promotion."""
    to_lane(db, "order_confirmation", "marketing")
    adapters = recording_adapters()
    placed, *_ = deliveries("Ada")
    post(db, placed)
    drain(make_worker(db, adapters))
    [message] = rows(db, Message, Message.message_type == "order_confirmation")
    return message, adapters[ChannelKind.EMAIL].sent


def test_no_marketing_email_goes_while_the_store_has_no_postal_address(db, frozen_clock):
    seed(db)
    _store_address(db, "")

    message, sent = _confirmation_as_promotion(db)

    assert sent == []
    assert message.status == "skipped"
    assert (
        "email: marketing email needs the store's postal address (CAN-SPAM): set it on Settings"
        in message.decision
    )


def test_the_address_is_appended_where_the_wording_does_not_show_it(db, frozen_clock):
    seed(db)

    message, sent = _confirmation_as_promotion(db)

    [email] = sent
    assert email.text.endswith(f"\n\n--\n{DEMO_POSTAL_ADDRESS}")
    assert email.html is not None
    assert email.html.count("14 Harbour Street, Portland, ME 04101, USA") == 1
    assert "Juniper &amp; Pine, 14 Harbour Street" in email.html
    assert message.body == email.text


def test_wording_that_shows_the_address_gets_it_once(db, frozen_clock):
    seed(db)
    _save(
        db,
        MessageType.ORDER_CONFIRMATION,
        ChannelKind.EMAIL,
        {"text": "Thanks for order {{ order.number }}!\n\n{{ store.postal_address }}"},
    )

    _, sent = _confirmation_as_promotion(db)

    [email] = sent
    assert email.text == f"Thanks for order #1501!\n\n{DEMO_POSTAL_ADDRESS}"


@pytest.mark.parametrize(
    "address",
    ["O'Brien's Yard, 1 High St, Cork", 'The "Old Mill", 2 Quay Rd, Galway', "Unit 3\nDock Rd"],
)
def test_html_that_shows_an_address_with_quotes_gets_it_once(address):
    """Jinja escapes a quote as ``&#39;``, Python's ``html.escape`` as ``&#x27;``: the
    address must be found as the template wrote it."""
    content = TemplateContent(
        text="Sale! {{ store.postal_address }}",
        html="<html><body><p>Sale!</p><p>{{ store.postal_address }}</p></body></html>",
    )
    rendered = TemplateRenderer().render(content, {"store": {"postal_address": address}})

    shown = postal_address.with_address(rendered, address)

    assert shown.html == rendered.html
    assert shown.text == rendered.text


def test_an_order_update_email_neither_needs_nor_gets_the_address(db, frozen_clock):
    seed(db)
    _store_address(db, "")
    adapters = recording_adapters()
    placed, *_ = deliveries("Alan")

    post(db, placed)
    drain(make_worker(db, adapters))

    [email] = adapters[ChannelKind.EMAIL].sent
    assert "Harbour Street" not in email.text
