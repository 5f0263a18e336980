"""Shopify deliveries mapped to canonical events: documented samples, exemplars, edge cases."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parley.events import (
    Address,
    Checkout,
    ConsentState,
    Customer,
    EventType,
    Fulfillment,
    LineItem,
    Order,
    Product,
    Refund,
    ShipmentStatus,
    StoreUninstalled,
    Variant,
)
from parley.integrations.shopify import payloads
from parley.integrations.shopify.mapping import (
    TOPICS,
    MalformedPayload,
    UnknownTopic,
    map_delivery,
)

# Third-party data lives beside the repository, never inside it (../shared/data).
SHOPIFY_DATA = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "webhooks" / "shopify"
)
EXEMPLARS = SHOPIFY_DATA / "exemplars"

RECEIVED_AT = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
# Every documented sample is stamped 2021-12-31T19:00:00-05:00.
SAMPLE_TIME = datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
# Every exemplar is stamped 2019-01-01 00:00:00.000Z.
EXEMPLAR_TIME = datetime(2019, 1, 1, 0, 0, tzinfo=UTC)


def _require(path: Path) -> None:
    """Fail in CI, skip elsewhere, when the shared data is not checked out."""
    if path.exists():
        return
    message = f"shared test data missing: {path}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _load(path: Path) -> Any:
    _require(path)
    return json.loads(path.read_text())


def _sample(topic: str) -> dict[str, Any]:
    data: dict[str, Any] = _load(SHOPIFY_DATA / f"{topic.replace('/', '__')}.json")
    return data


def _map(topic: str, payload: object) -> list[Any]:
    return map_delivery(topic, payload, received_at=RECEIVED_AT)


def _one(topic: str, payload: object) -> Any:
    events = _map(topic, payload)
    assert len(events) == 1
    return events[0]


# --- every documented sample ------------------------------------------------------------

SAMPLE_EVENTS = {
    "orders/create": [EventType.ORDER_CREATED],
    "orders/updated": [EventType.ORDER_UPDATED],
    "orders/paid": [EventType.ORDER_PAID],
    "orders/cancelled": [EventType.ORDER_CANCELLED],
    "orders/fulfilled": [EventType.ORDER_FULFILLED],
    "fulfillments/create": [EventType.FULFILLMENT_CREATED],
    "fulfillments/update": [EventType.FULFILLMENT_UPDATED],
    "checkouts/create": [EventType.CHECKOUT_STARTED],
    "checkouts/update": [EventType.CHECKOUT_UPDATED],
    "customers/create": [EventType.CUSTOMER_CREATED],
    "customers/update": [EventType.CUSTOMER_UPDATED],
    "refunds/create": [EventType.REFUND_CREATED],
    "products/create": [EventType.PRODUCT_CREATED],
    "products/update": [EventType.PRODUCT_UPDATED],
    "app/uninstalled": [EventType.STORE_UNINSTALLED],
}

# Samples of topics parley receives but does not turn into events (compliance topics are
# answered by the edge) or does not subscribe to.
UNMAPPED_SAMPLES = {
    "carts/create",
    "carts/update",
    "customers/data_request",
    "customers/redact",
    "customers_email_marketing_consent/update",
    "customers_marketing_consent/update",
    "fulfillment_events/create",
    "inventory_levels/update",
    "orders/partially_fulfilled",
    "returns/request",
    "shop/redact",
}


def _sample_params() -> list[Any]:
    files = sorted(SHOPIFY_DATA.glob("*__*.json"))
    if not files:
        return [pytest.param(SHOPIFY_DATA / "orders__create.json", id="samples-missing")]
    return [pytest.param(path, id=path.stem) for path in files]


def test_topics_are_the_supported_ones() -> None:
    assert tuple(SAMPLE_EVENTS) == TOPICS


@pytest.mark.parametrize("path", _sample_params())
def test_documented_sample_maps(path: Path) -> None:
    # Given Shopify's documented example for a topic (orders__create.json -> orders/create)
    payload = _load(path)
    topic = path.stem.replace("__", "/")
    assert topic in SAMPLE_EVENTS or topic in UNMAPPED_SAMPLES, f"decide how to map {topic}"

    if topic in UNMAPPED_SAMPLES:
        # Then an unmapped topic is refused by name, whatever its body
        with pytest.raises(UnknownTopic) as raised:
            _map(topic, payload)
        assert raised.value.topic == topic
        return

    # Then a mapped topic gives exactly the expected events, stamped in UTC
    events = _map(topic, payload)
    assert [event.type for event in events] == SAMPLE_EVENTS[topic]
    expected_time = RECEIVED_AT if topic == "app/uninstalled" else SAMPLE_TIME
    assert [event.occurred_at for event in events] == [expected_time] * len(events)
    assert all(event.occurred_at.tzinfo is UTC for event in events)


def test_every_supported_topic_has_a_documented_sample() -> None:
    _require(SHOPIFY_DATA)
    missing = [
        topic
        for topic in TOPICS
        if not (SHOPIFY_DATA / f"{topic.replace('/', '__')}.json").exists()
    ]
    assert missing == []


# --- every exemplar ---------------------------------------------------------------------

_NOT_DECIMAL = "is not a decimal amount"

# Exemplars are real-shape bodies whose values are placeholders ("example string", 123).
# Each is mapped under the topic its shape belongs to; placeholder prices and currencies
# must be refused by name, never read as money.
EXEMPLAR_OUTCOMES: dict[str, tuple[str, Any]] = {
    "checkouts/1.json": ("checkouts/update", f"checkouts/update: 'total_price' {_NOT_DECIMAL}"),
    "customers/1.json": ("customers/update", [EventType.CUSTOMER_UPDATED]),
    "fulfillment_events/1.json": ("fulfillment_events/create", UnknownTopic),
    "fulfillments/1.json": (
        "fulfillments/update",
        f"fulfillments/update: 'line_items[0].price' {_NOT_DECIMAL}",
    ),
    "inventory_levels/1.json": ("inventory_levels/update", UnknownTopic),
    "orders/1.json": ("orders/updated", f"orders/updated: 'total_price' {_NOT_DECIMAL}"),
    "orders/2.json": ("orders/edited", UnknownTopic),
    "orders/3.json": ("orders/risk_assessment_changed", UnknownTopic),
    "products/1.json": ("products/update", f"products/update: 'variants[0].price' {_NOT_DECIMAL}"),
    "refunds/1.json": (
        "refunds/create",
        "refunds/create: 'currency' string should match pattern '^[A-Za-z]{3}$'",
    ),
    "refunds/2.json": ("refunds/create", [EventType.REFUND_CREATED]),
}


def test_every_exemplar_has_an_expected_outcome() -> None:
    _require(EXEMPLARS)
    found = {path.relative_to(EXEMPLARS).as_posix() for path in EXEMPLARS.glob("*/*.json")}
    assert found == set(EXEMPLAR_OUTCOMES)


@pytest.mark.parametrize("name", sorted(EXEMPLAR_OUTCOMES))
def test_exemplar_maps(name: str) -> None:
    payload = _load(EXEMPLARS / name)
    topic, outcome = EXEMPLAR_OUTCOMES[name]

    if outcome is UnknownTopic:
        with pytest.raises(UnknownTopic):
            _map(topic, payload)
    elif isinstance(outcome, str):
        with pytest.raises(MalformedPayload) as raised:
            _map(topic, payload)
        assert raised.value.reason == outcome
    else:
        events = _map(topic, payload)
        assert [event.type for event in events] == outcome
        assert [event.occurred_at for event in events] == [EXEMPLAR_TIME]


_MONEY_KEYS = {"price", "total_price", "amount", "subtotal", "total_tax"}
_CURRENCY_KEYS = {"currency", "currency_code"}


def _with_prices(value: Any, price: str = "12.34") -> Any:
    """The exemplar with every placeholder amount and currency replaced by a real one."""
    if isinstance(value, dict):
        return {
            key: price
            if key in _MONEY_KEYS and item == "example string"
            else "USD"
            if key in _CURRENCY_KEYS and item == "example string"
            else _with_prices(item, price)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_prices(item, price) for item in value]
    return value


def test_exemplar_order_of_api_2025_04_maps_without_customer_contact() -> None:
    # Given an API 2025-04 order, whose customer object carries no contact details or names
    payload = _with_prices(_load(EXEMPLARS / "orders/1.json"))

    order = _one("orders/updated", payload).payload

    # Then the order still maps, with what the order itself says
    assert order.external_id == "123"
    assert order.number == "example string"
    assert order.total_price == Decimal("12.34")
    assert order.email is None
    assert order.customer == Customer(
        external_id="123", locale="example string", updated_at=EXEMPLAR_TIME
    )
    assert order.shipping_address == Address(province="example string")
    assert len(order.line_items) == len(payload["line_items"])
    assert order.line_items[0].price == Decimal("12.34")
    assert order.line_items[0].quantity == 123
    assert order.line_items[0].product_external_id == "123"


def test_exemplar_checkout_reads_an_empty_list_address_as_absent() -> None:
    # Given a checkout whose shipping_address is serialised as [] (a Shopify quirk)
    payload = _with_prices(_load(EXEMPLARS / "checkouts/1.json"))
    assert payload["shipping_address"] == []

    checkout = _one("checkouts/update", payload).payload

    assert checkout.external_id == "example string"  # the token, not the id
    assert checkout.customer is None
    assert checkout.recovery_url == "https://www.example.com/"
    assert checkout.total_price == Decimal("12.34")
    assert [item.quantity for item in checkout.line_items] == [123, 123]


def test_exemplar_fulfillment_with_an_unknown_status_is_an_update() -> None:
    payload = _with_prices(_load(EXEMPLARS / "fulfillments/1.json"))

    event = _one("fulfillments/update", payload)

    assert event.type is EventType.FULFILLMENT_UPDATED
    assert event.payload.shipment_status is ShipmentStatus.UNKNOWN
    assert event.payload.tracking_number == "example string"
    assert event.payload.customer.email == "eallam@example.com"
    assert event.payload.customer.country_code is None  # "example string" is no ISO code


def test_exemplar_product_maps_its_variants() -> None:
    payload = _with_prices(_load(EXEMPLARS / "products/1.json"))

    product = _one("products/update", payload).payload

    assert product.variants == [
        Variant(
            external_id="123",
            title="example string",
            sku="example string",
            price=Decimal("12.34"),
            inventory_quantity=123,
        )
    ]


def test_exemplar_refunds_amounts() -> None:
    # Given exemplar refunds whose transactions are not of kind "refund"
    with_lines = _one("refunds/create", _with_prices(_load(EXEMPLARS / "refunds/1.json"))).payload
    without_lines = _one("refunds/create", _load(EXEMPLARS / "refunds/2.json")).payload

    # Then the refunded lines' subtotal plus tax is the amount, and nothing is claimed otherwise
    assert with_lines.amount == Decimal("246.456")
    assert without_lines.amount is None
    assert without_lines.currency is None


# --- exact values from the documented samples -------------------------------------------

SAMPLE_LINE_ITEMS = [
    LineItem(
        title="Aviator sunglasses",
        quantity=1,
        price=Decimal("89.99"),
        sku="SKU2006-001",
        product_external_id="788032119674292900",
    ),
    LineItem(
        title="Lens Protection Plan (2 Year)",
        quantity=1,
        price=Decimal("19.99"),
        sku="LENS-PROTECT-2YR",
    ),
    LineItem(
        title="Premium Leather Case", quantity=1, price=Decimal("24.99"), sku="CASE-LEATHER-PREM"
    ),
    LineItem(
        title="Mid-century lounger",
        quantity=1,
        price=Decimal("159.99"),
        sku="SKU2006-020",
        product_external_id="788032119674292900",
    ),
    LineItem(
        title="Coffee table",
        quantity=1,
        price=Decimal("119.99"),
        sku="SKU2006-035",
        product_external_id="788032119674292900",
    ),
]


def test_orders_create_sample_exact_values() -> None:
    event = _one("orders/create", _sample("orders/create"))

    # The sample's ids were rounded by the scraper (…154508 -> …154500): parley keeps `id`
    # as sent, so an order and its fulfillments' order_id still agree.
    assert event.type is EventType.ORDER_CREATED
    assert event.occurred_at == SAMPLE_TIME
    assert event.payload == Order(
        external_id="820982911946154500",
        number="#9999",
        customer=Customer(
            external_id="115310627314723950",
            email="john@example.com",
            # No customer or order phone: John's own default address's, not the phone of
            # "Steve Shipper", whom the order is shipped to.
            phone="123-123-1234",
            first_name="John",
            last_name="Smith",
            country_code="CA",  # the default address, not the shipping one
            locale="en",
            email_marketing=ConsentState.UNKNOWN,
            sms_marketing=ConsentState.UNKNOWN,
        ),
        email="jon@example.com",
        phone=None,
        currency="USD",
        total_price=Decimal("404.95"),
        financial_status="voided",
        fulfillment_status=None,
        line_items=SAMPLE_LINE_ITEMS,
        shipping_address=Address(
            name="Steve Shipper",
            address1="123 Shipping Street",
            city="Shippington",
            province="Kentucky",
            zip="40003",
            country_code="US",
            phone="555-555-SHIP",
        ),
        status_url="https://jsmith.myshopify.com/548380009/orders/123456abcd/authenticate?key=abcdefg",
        cancelled_at=SAMPLE_TIME,
        cancel_reason="customer",
        created_at=SAMPLE_TIME,
        updated_at=SAMPLE_TIME,
    )


@pytest.mark.parametrize(
    ("topic", "event_type"),
    [
        pytest.param("orders/create", EventType.ORDER_CREATED, id="create_case"),
        pytest.param("orders/updated", EventType.ORDER_UPDATED, id="updated_case"),
        pytest.param("orders/paid", EventType.ORDER_PAID, id="paid_case"),
        pytest.param("orders/cancelled", EventType.ORDER_CANCELLED, id="cancelled_case"),
        pytest.param("orders/fulfilled", EventType.ORDER_FULFILLED, id="fulfilled_case"),
    ],
)
def test_order_topics_carry_the_same_order(topic: str, event_type: EventType) -> None:
    reference = _one("orders/create", _sample("orders/create")).payload

    event = _one(topic, _sample(topic))

    assert event.type is event_type
    assert event.payload == reference


def test_order_number_falls_back_to_order_number() -> None:
    payload = _sample("orders/create")
    del payload["name"]

    assert _one("orders/create", payload).payload.number == "#1234"


def test_guest_order_customer_comes_from_the_order() -> None:
    # Given an order without a customer object (a guest checkout)
    payload = _sample("orders/create")
    payload["customer"] = None
    payload["phone"] = "+16135550199"

    order = _one("orders/create", payload).payload

    # Then the shopper is still reachable, from the order's own contact details
    assert order.customer == Customer(
        email="jon@example.com",
        phone="+16135550199",
        first_name="Steve",
        last_name="Shipper",
        country_code="US",
        locale="en",
    )


def test_customer_names_fall_back_to_one_address_never_mixed() -> None:
    payload = _sample("orders/create")
    payload["customer"]["first_name"] = None
    payload["customer"]["last_name"] = None
    payload["shipping_address"]["first_name"] = None
    payload["shipping_address"]["last_name"] = None
    payload["shipping_address"]["name"] = "Maria de la Cruz"

    customer = _one("orders/create", payload).payload.customer

    assert (customer.first_name, customer.last_name) == ("Maria", "de la Cruz")


def test_fulfillment_sample_exact_values() -> None:
    event = _one("fulfillments/create", _sample("fulfillments/create"))

    assert event.type is EventType.FULFILLMENT_CREATED
    assert event.payload == Fulfillment(
        external_id="123456",
        order_external_id="820982911946154500",
        status="pending",
        shipment_status=None,
        tracking_company="UPS",
        tracking_number="1z827wk74630",
        tracking_url="https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1z827wk74630",
        line_items=SAMPLE_LINE_ITEMS,
        customer=Customer(
            email="jon@example.com",
            phone="555-555-SHIP",
            first_name="Steve",
            last_name="Shipper",
            country_code="US",
        ),
        created_at=SAMPLE_TIME,
        updated_at=SAMPLE_TIME,
    )


def test_fulfillment_tracking_falls_back_to_the_first_of_the_lists() -> None:
    payload = _sample("fulfillments/update")
    payload["tracking_number"] = None
    payload["tracking_numbers"] = ["1Z999AA10123456784", "1Z999AA10123456785"]
    payload["tracking_url"] = None
    payload["tracking_urls"] = ["https://carrier.example/t/84", "https://carrier.example/t/85"]

    fulfillment = _one("fulfillments/update", payload).payload

    assert fulfillment.tracking_number == "1Z999AA10123456784"
    assert fulfillment.tracking_url == "https://carrier.example/t/84"


@pytest.mark.parametrize(
    ("shipment_status", "event_type", "status"),
    [
        pytest.param(None, EventType.FULFILLMENT_UPDATED, None, id="none_case"),
        pytest.param("", EventType.FULFILLMENT_UPDATED, None, id="empty_case"),
        pytest.param(
            "label_printed",
            EventType.FULFILLMENT_UPDATED,
            ShipmentStatus.LABEL_PRINTED,
            id="label_printed_case",
        ),
        pytest.param(
            "label_purchased",
            EventType.FULFILLMENT_UPDATED,
            ShipmentStatus.LABEL_PRINTED,
            id="label_purchased_case",
        ),
        pytest.param(
            "confirmed",
            EventType.FULFILLMENT_UPDATED,
            ShipmentStatus.CONFIRMED,
            id="confirmed_case",
        ),
        pytest.param(
            "carrier_picked_up",
            EventType.FULFILLMENT_IN_TRANSIT,
            ShipmentStatus.IN_TRANSIT,
            id="carrier_picked_up_case",
        ),
        pytest.param(
            "in_transit",
            EventType.FULFILLMENT_IN_TRANSIT,
            ShipmentStatus.IN_TRANSIT,
            id="in_transit_case",
        ),
        pytest.param(
            "delayed", EventType.FULFILLMENT_UPDATED, ShipmentStatus.IN_TRANSIT, id="delayed_case"
        ),
        pytest.param(
            "out_for_delivery",
            EventType.FULFILLMENT_OUT_FOR_DELIVERY,
            ShipmentStatus.OUT_FOR_DELIVERY,
            id="out_for_delivery_case",
        ),
        pytest.param(
            "ready_for_pickup",
            EventType.FULFILLMENT_UPDATED,
            ShipmentStatus.READY_FOR_PICKUP,
            id="ready_for_pickup_case",
        ),
        pytest.param(
            "attempted_delivery",
            EventType.FULFILLMENT_FAILED,
            ShipmentStatus.ATTEMPTED_DELIVERY,
            id="attempted_delivery_case",
        ),
        pytest.param(
            "failure", EventType.FULFILLMENT_FAILED, ShipmentStatus.FAILED, id="failure_case"
        ),
        pytest.param(
            "delivered",
            EventType.FULFILLMENT_DELIVERED,
            ShipmentStatus.DELIVERED,
            id="delivered_case",
        ),
        pytest.param(
            "picked_up",
            EventType.FULFILLMENT_DELIVERED,
            ShipmentStatus.DELIVERED,
            id="picked_up_case",
        ),
        pytest.param(
            "DELIVERED",
            EventType.FULFILLMENT_DELIVERED,
            ShipmentStatus.DELIVERED,
            id="upper_case_case",
        ),
        pytest.param(
            "teleported", EventType.FULFILLMENT_UPDATED, ShipmentStatus.UNKNOWN, id="unknown_case"
        ),
    ],
)
def test_fulfillments_update_by_shipment_status(
    shipment_status: str | None, event_type: EventType, status: ShipmentStatus | None
) -> None:
    payload = _sample("fulfillments/update")
    payload["shipment_status"] = shipment_status

    event = _one("fulfillments/update", payload)

    assert event.type is event_type
    assert event.payload.shipment_status is status
    assert event.payload.external_id == "123456"


@pytest.mark.parametrize(
    ("shipment_status", "event_types"),
    [
        pytest.param(None, [EventType.FULFILLMENT_CREATED], id="no_status_case"),
        pytest.param("confirmed", [EventType.FULFILLMENT_CREATED], id="confirmed_case"),
        pytest.param(
            "in_transit",
            [EventType.FULFILLMENT_CREATED, EventType.FULFILLMENT_IN_TRANSIT],
            id="in_transit_case",
        ),
        pytest.param(
            "delivered",
            [EventType.FULFILLMENT_CREATED, EventType.FULFILLMENT_DELIVERED],
            id="delivered_case",
        ),
    ],
)
def test_fulfillments_create_adds_the_milestone_it_already_carries(
    shipment_status: str | None, event_types: list[EventType]
) -> None:
    payload = _sample("fulfillments/create")
    payload["shipment_status"] = shipment_status

    events = _map("fulfillments/create", payload)

    assert [event.type for event in events] == event_types
    assert all(event.payload == events[0].payload for event in events)


def test_checkout_sample_exact_values() -> None:
    event = _one("checkouts/create", _sample("checkouts/create"))

    ipod = LineItem(
        title="IPod Nano - 8GB",
        quantity=1,
        price=Decimal("199.00"),
        sku="IPOD2008PINK",
        variant_title="Pink",
        product_external_id="632910392",
        variant_external_id="808950810",
    )
    assert event.type is EventType.CHECKOUT_STARTED
    assert event.payload == Checkout(
        external_id="123123123",
        customer=Customer(
            external_id="603851970716743400",
            email="john@example.com",
            phone="123-123-1234",  # his default address's, not the shipping address's
            first_name="John",
            last_name="Smith",
            country_code="CA",
        ),
        email="example@email.com",
        phone=None,
        currency="USD",
        total_price=Decimal("421.88"),
        line_items=[ipod, ipod],
        recovery_url="https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token",
        completed_at=None,
        created_at=SAMPLE_TIME,
        updated_at=SAMPLE_TIME,
    )


def test_checkout_without_token_uses_its_id_and_reads_completion() -> None:
    payload = _sample("checkouts/update")
    del payload["token"]
    payload["completed_at"] = "2022-01-01T09:30:00+01:00"

    event = _one("checkouts/update", payload)

    assert event.type is EventType.CHECKOUT_UPDATED
    assert event.payload.external_id == "981820079255243500"
    assert event.payload.completed_at == datetime(2022, 1, 1, 8, 30, tzinfo=UTC)


def test_customer_sample_exact_values() -> None:
    event = _one("customers/create", _sample("customers/create"))

    assert event.type is EventType.CUSTOMER_CREATED
    assert event.payload == Customer(
        external_id="706405506930370000",
        email="bob@biller.com",
        phone="555-555-5555",  # no phone of their own: the default address's
        first_name="Bob",
        last_name="Biller",
        country_code="CA",
        email_marketing=ConsentState.UNKNOWN,
        sms_marketing=ConsentState.UNKNOWN,
        tags=[],
        updated_at=SAMPLE_TIME,
    )


_ABSENT = object()


@pytest.mark.parametrize(
    ("consent", "accepts_marketing", "expected"),
    [
        pytest.param({"state": "subscribed"}, _ABSENT, ConsentState.GRANTED, id="subscribed_case"),
        pytest.param(
            {"state": "unsubscribed"}, _ABSENT, ConsentState.REVOKED, id="unsubscribed_case"
        ),
        pytest.param(
            {"state": "not_subscribed"}, _ABSENT, ConsentState.UNKNOWN, id="not_subscribed_case"
        ),
        pytest.param({"state": "pending"}, _ABSENT, ConsentState.UNKNOWN, id="pending_case"),
        pytest.param({"state": "redacted"}, _ABSENT, ConsentState.UNKNOWN, id="redacted_case"),
        pytest.param({"state": None}, _ABSENT, ConsentState.UNKNOWN, id="null_state_case"),
        pytest.param(
            {"state": "not_subscribed"}, True, ConsentState.UNKNOWN, id="object_beats_legacy_case"
        ),
        pytest.param(_ABSENT, True, ConsentState.GRANTED, id="legacy_true_case"),
        pytest.param(_ABSENT, False, ConsentState.UNKNOWN, id="legacy_false_case"),
        pytest.param(None, True, ConsentState.GRANTED, id="null_object_legacy_true_case"),
        pytest.param(_ABSENT, _ABSENT, ConsentState.UNKNOWN, id="nothing_case"),
    ],
)
def test_customer_email_consent(
    consent: Any, accepts_marketing: Any, expected: ConsentState
) -> None:
    payload = _sample("customers/update")
    if consent is not _ABSENT:
        payload["email_marketing_consent"] = consent
    if accepts_marketing is not _ABSENT:
        payload["accepts_marketing"] = accepts_marketing

    customer = _one("customers/update", payload).payload

    assert customer.email_marketing is expected
    assert customer.sms_marketing is ConsentState.UNKNOWN


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param("subscribed", ConsentState.GRANTED, id="subscribed_case"),
        pytest.param("unsubscribed", ConsentState.REVOKED, id="unsubscribed_case"),
        pytest.param("not_subscribed", ConsentState.UNKNOWN, id="not_subscribed_case"),
        pytest.param("pending", ConsentState.UNKNOWN, id="pending_case"),
        pytest.param(None, ConsentState.UNKNOWN, id="null_state_case"),
    ],
)
def test_customer_sms_consent(state: str | None, expected: ConsentState) -> None:
    payload = _sample("customers/update")
    payload["phone"] = "+16135550123"
    payload["accepts_marketing"] = True  # the legacy flag was about email only
    payload["sms_marketing_consent"] = {
        "state": state,
        "opt_in_level": "single_opt_in",
        "consent_updated_at": "2022-01-01T00:00:00Z",
        "consent_collected_from": "SHOPIFY",
    }

    customer = _one("customers/update", payload).payload

    assert customer.sms_marketing is expected
    assert customer.phone == "+16135550123"


def test_consent_inside_an_order_customer() -> None:
    payload = _sample("orders/create")
    payload["customer"]["email_marketing_consent"] = {"state": "unsubscribed"}
    payload["customer"]["sms_marketing_consent"] = {"state": "subscribed"}

    customer = _one("orders/create", payload).payload.customer

    assert (customer.email_marketing, customer.sms_marketing) == (
        ConsentState.REVOKED,
        ConsentState.GRANTED,
    )


def test_customer_tags_split_on_commas() -> None:
    payload = _sample("customers/update")
    payload["tags"] = "vip, wholesale ,, newsletter"

    assert _one("customers/update", payload).payload.tags == ["vip", "wholesale", "newsletter"]


def test_refund_sample_amount_is_its_refund_transactions() -> None:
    event = _one("refunds/create", _sample("refunds/create"))

    assert event.type is EventType.REFUND_CREATED
    assert event.payload == Refund(
        external_id="890088186047892400",
        order_external_id="820982911946154500",
        amount=Decimal("85.00"),  # 75.00 + 10.00
        currency=None,
        note="Things were damaged",
        created_at=SAMPLE_TIME,
    )


def test_refund_ignores_failed_and_non_refund_transactions() -> None:
    payload = _sample("refunds/create")
    transactions = payload["transactions"]
    transactions[0]["currency"] = "USD"
    transactions[1]["status"] = "failure"
    transactions.append({**transactions[0], "kind": "sale", "amount": "500.00"})

    refund = _one("refunds/create", payload).payload

    assert (refund.amount, refund.currency) == (Decimal("75.00"), "USD")


def test_refund_without_money_movement_falls_back_to_the_lines() -> None:
    # Given a refund whose money has not moved yet: no successful refund transaction
    payload = _sample("refunds/create")
    payload["transactions"] = []
    payload["refund_line_items"][0]["total_tax"] = 7.2

    refund = _one("refunds/create", payload).payload

    # Then the refunded lines' subtotal plus their tax is what is owed
    assert refund.amount == Decimal("89.99") + Decimal("19.99") + Decimal("24.99") + Decimal(
        "159.99"
    ) + Decimal("119.99") + Decimal("7.2")
    assert refund.currency == "USD"


def test_product_sample_exact_values() -> None:
    event = _one("products/create", _sample("products/create"))

    assert event.type is EventType.PRODUCT_CREATED
    assert event.payload == Product(
        external_id="788032119674292900",
        title="Example T-Shirt",
        handle="example-t-shirt",
        product_type="Shirts",
        vendor="Acme",
        status="active",
        tags=["example", "mens", "t-shirt"],
        variants=[
            Variant(
                external_id="642667041472714000",
                title="Small",
                price=Decimal("19.99"),
                inventory_quantity=75,
            ),
            Variant(
                external_id="757650484644203900",
                title="Medium",
                price=Decimal("19.99"),
                inventory_quantity=50,
            ),
        ],
        updated_at=SAMPLE_TIME,
    )


@pytest.mark.parametrize(
    ("domains", "expected"),
    [
        pytest.param({}, None, id="sample_has_none_case"),
        pytest.param(
            {"domain": "supertoys.com", "myshopify_domain": "super-toys.myshopify.com"},
            "super-toys.myshopify.com",
            id="myshopify_first_case",
        ),
        pytest.param({"domain": "supertoys.com"}, "supertoys.com", id="domain_only_case"),
    ],
)
def test_app_uninstalled(domains: dict[str, str], expected: str | None) -> None:
    payload = _sample("app/uninstalled")
    payload.update(domains)
    payload["updated_at"] = "2021-06-01T12:00:00Z"  # the shop's record, not the uninstall

    event = _one("app/uninstalled", payload)

    assert event.type is EventType.STORE_UNINSTALLED
    assert event.payload == StoreUninstalled(shop_domain=expected)
    assert event.occurred_at == RECEIVED_AT


# --- timestamps -------------------------------------------------------------------------


def test_shopify_offsets_become_utc() -> None:
    payload = _sample("customers/update")
    payload["updated_at"] = "2005-07-31T15:57:11-04:00"

    event = _one("customers/update", payload)

    assert event.occurred_at == datetime(2005, 7, 31, 19, 57, 11, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert event.payload.updated_at.tzinfo is UTC


def test_occurred_at_falls_back_to_created_at_then_received_at() -> None:
    payload = _sample("customers/update")
    payload["updated_at"] = None
    payload["created_at"] = "2021-03-04T05:06:07+02:00"
    assert _one("customers/update", payload).occurred_at == datetime(
        2021, 3, 4, 3, 6, 7, tzinfo=UTC
    )

    del payload["created_at"]
    assert _one("customers/update", payload).occurred_at == RECEIVED_AT


def test_received_at_in_another_zone_is_stored_in_utc() -> None:
    payload = _sample("app/uninstalled")
    received_at = datetime(2025, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))

    event = map_delivery("app/uninstalled", payload, received_at=received_at)[0]

    assert event.occurred_at == RECEIVED_AT
    assert event.occurred_at.tzinfo is UTC


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        map_delivery(
            "customers/update",
            {"id": 1},
            received_at=datetime(2025, 5, 6, 7, 8, 9),  # noqa: DTZ001 - the point of the test
        )


# --- unknown topics and malformed bodies ------------------------------------------------


@pytest.mark.parametrize("topic", ["orders/edited", "shop/redact", "ORDERS/CREATE", ""])
def test_unknown_topic_is_refused_before_the_body_is_read(topic: str) -> None:
    with pytest.raises(UnknownTopic) as raised:
        map_delivery(topic, ["not", "an", "object"], received_at=RECEIVED_AT)

    assert raised.value.topic == topic
    assert str(raised.value) == f"parley does not map the Shopify topic {topic!r}"


@pytest.mark.parametrize("body", [[], "{}", None, 42], ids=["list", "string", "null", "number"])
def test_body_that_is_not_an_object_is_malformed(body: object) -> None:
    with pytest.raises(MalformedPayload) as raised:
        _map("orders/create", body)

    assert raised.value.reason == "orders/create: the body is not a JSON object"


def _orders_create(**changes: Any) -> dict[str, Any]:
    payload = _sample("orders/create")
    for key, value in changes.items():
        if value is _ABSENT:
            payload.pop(key)
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"id": _ABSENT}, "'id' is missing", id="missing_id_case"),
        pytest.param({"id": None}, "'id' is missing", id="null_id_case"),
        pytest.param({"id": True}, "'id' is not an id", id="bool_id_case"),
        pytest.param({"id": 1.5}, "'id' is not an id", id="float_id_case"),
        pytest.param({"id": "x" * 256}, "'id' is not an id", id="long_id_case"),
        pytest.param(
            {"name": None, "order_number": None}, "'name' is missing", id="no_number_case"
        ),
        pytest.param(
            {"created_at": "yesterday"},
            "'created_at' is not a timestamp with a UTC offset",
            id="bad_date_case",
        ),
        pytest.param(
            {"updated_at": "2021-12-31T19:00:00"},
            "'updated_at' is not a timestamp with a UTC offset",
            id="naive_date_case",
        ),
        pytest.param(
            {"cancelled_at": 1640995200}, "'cancelled_at' is not a timestamp", id="epoch_case"
        ),
        pytest.param({"email": 7}, "'email' is not text", id="email_number_case"),
        pytest.param(
            {"total_price": "lots"}, "'total_price' is not a decimal amount", id="bad_total_case"
        ),
        pytest.param(
            {"total_price": "NaN"}, "'total_price' is not a decimal amount", id="nan_total_case"
        ),
        pytest.param({"customer": "John"}, "'customer' is not an object", id="customer_text_case"),
        pytest.param({"line_items": {}}, "'line_items' is not a list", id="items_object_case"),
        pytest.param({"line_items": [3]}, "'line_items[0]' is not an object", id="item_case"),
    ],
)
def test_malformed_order_names_the_field(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedPayload) as raised:
        _map("orders/create", _orders_create(**change))

    assert raised.value.reason == f"orders/create: {reason}"
    assert str(raised.value) == raised.value.reason


def test_malformed_nested_field_is_named_with_its_path() -> None:
    payload = _sample("orders/create")
    payload["line_items"][1]["price"] = "19,99"
    payload["line_items"][2]["quantity"] = "two"

    with pytest.raises(MalformedPayload) as raised:
        _map("orders/create", payload)

    assert raised.value.reason == "orders/create: 'line_items[1].price' is not a decimal amount"


@pytest.mark.parametrize(
    ("topic", "mutate", "reason"),
    [
        pytest.param(
            "orders/create",
            lambda p: p["line_items"][2].update(quantity="two"),
            "'line_items[2].quantity' is not an integer",
            id="quantity_case",
        ),
        pytest.param(
            "orders/create",
            lambda p: p["line_items"][0].update(title=None, name=None),
            "'line_items[0].title' is missing",
            id="title_case",
        ),
        pytest.param(
            "orders/create",
            lambda p: p["customer"].update(updated_at="soon"),
            "'customer.updated_at' is not a timestamp with a UTC offset",
            id="customer_date_case",
        ),
        pytest.param(
            "orders/create",
            lambda p: p["customer"]["default_address"].update(phone=123),
            "'customer.default_address.phone' is not text",
            id="address_phone_case",
        ),
        pytest.param(
            "fulfillments/update",
            lambda p: p.pop("order_id"),
            "'order_id' is missing",
            id="fulfillment_order_case",
        ),
        pytest.param(
            "fulfillments/update",
            lambda p: p.update(tracking_numbers="1Z9"),
            "'tracking_numbers' is not a list of text",
            id="tracking_numbers_case",
        ),
        pytest.param(
            "checkouts/create",
            lambda p: p.update(token=None, id=None),
            "'id' is missing",
            id="checkout_id_case",
        ),
        pytest.param(
            "customers/update",
            lambda p: p.update(tags=7),
            "'tags' is not a comma-separated list",
            id="tags_case",
        ),
        pytest.param(
            "customers/update",
            lambda p: p.update(email_marketing_consent="yes"),
            "'email_marketing_consent' is not an object",
            id="consent_case",
        ),
        pytest.param(
            "customers/update",
            lambda p: p.update(accepts_marketing="yes"),
            "'accepts_marketing' is not true or false",
            id="legacy_consent_case",
        ),
        pytest.param(
            "refunds/create",
            lambda p: p["transactions"][1].update(amount="ten"),
            "'transactions[1].amount' is not a decimal amount",
            id="refund_amount_case",
        ),
        pytest.param(
            "products/update",
            lambda p: p.pop("title"),
            "'title' is missing",
            id="product_title_case",
        ),
        pytest.param(
            "products/update",
            lambda p: p["variants"][1].update(inventory_quantity="50"),
            "'variants[1].inventory_quantity' is not an integer",
            id="inventory_case",
        ),
    ],
)
def test_malformed_field_is_named(topic: str, mutate: Any, reason: str) -> None:
    payload = _sample(topic)
    mutate(payload)

    with pytest.raises(MalformedPayload) as raised:
        _map(topic, payload)

    assert raised.value.reason == f"{topic}: {reason}"


# --- round trip through the simulator's builders ----------------------------------------

ANA = {
    "id": 7001,
    "email": "ana@example.com",
    "phone": "+12025550143",
    "first_name": "Ana",
    "last_name": "Silva",
    "email_consent": True,
    "sms_consent": False,
}
ITEMS = [
    {"title": "Linen shirt", "quantity": 2, "price": "39.50", "sku": "LS-M"},
    {"title": "Canvas tote", "quantity": 1, "price": Decimal("18"), "sku": "TOTE-1"},
]
PLACED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_order_payload_round_trip() -> None:
    # Given an order the simulator builds
    body = payloads.order_payload(
        order_id=5001, number=1001, customer=ANA, line_items=ITEMS, created_at=PLACED_AT
    )

    # When it goes through the wire and back
    event = _one("orders/create", json.loads(payloads.encode(body)))

    # Then parley reads exactly what was built
    order = event.payload
    assert event.type is EventType.ORDER_CREATED
    assert event.occurred_at == PLACED_AT
    assert (order.external_id, order.number, order.currency) == ("5001", "#1001", "USD")
    assert (order.email, order.phone, order.total_price) == (
        "ana@example.com",
        "+12025550143",
        Decimal("97.00"),
    )
    assert [(i.title, i.quantity, i.price, i.sku) for i in order.line_items] == [
        ("Linen shirt", 2, Decimal("39.50"), "LS-M"),
        ("Canvas tote", 1, Decimal("18.00"), "TOTE-1"),
    ]
    assert order.customer == Customer(
        external_id="7001",
        email="ana@example.com",
        phone="+12025550143",
        first_name="Ana",
        last_name="Silva",
        country_code="US",
        locale="en",
        email_marketing=ConsentState.GRANTED,
        sms_marketing=ConsentState.UNKNOWN,
        email_marketing_since=PLACED_AT,
        updated_at=PLACED_AT,
    )
    assert order.status_url is not None
    assert order.status_url.startswith("https://parley-demo.myshopify.com/")
    assert (order.financial_status, order.cancelled_at, order.cancel_reason) == ("paid", None, None)


def test_cancelled_order_payload_round_trip() -> None:
    cancelled_at = PLACED_AT + timedelta(hours=3)
    body = payloads.order_payload(
        order_id=5002,
        number=1002,
        customer={**ANA, "sms_consent": "unsubscribed", "country_code": "CA"},
        line_items=ITEMS[:1],
        currency="CAD",
        created_at=PLACED_AT,
        cancelled_at=cancelled_at,
        financial_status="refunded",
    )

    event = _one("orders/cancelled", body)

    assert event.type is EventType.ORDER_CANCELLED
    assert event.occurred_at == cancelled_at
    order = event.payload
    assert (order.cancelled_at, order.cancel_reason, order.currency) == (
        cancelled_at,
        "customer",
        "CAD",
    )
    assert order.customer.sms_marketing is ConsentState.REVOKED
    assert order.customer.country_code == "CA"


def test_fulfillment_payload_round_trip() -> None:
    shipped_at = PLACED_AT + timedelta(days=1)
    delivered_at = PLACED_AT + timedelta(days=3)
    body = payloads.fulfillment_payload(
        fulfillment_id=9001,
        order_id=5001,
        customer=ANA,
        tracking_company="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784",
        shipment_status="delivered",
        created_at=shipped_at,
        updated_at=delivered_at,
        line_items=ITEMS,
        order_number=1001,
    )
    order = payloads.order_payload(
        order_id=5001, number=1001, customer=ANA, line_items=ITEMS, created_at=PLACED_AT
    )

    event = _one("fulfillments/update", body)

    assert event.type is EventType.FULFILLMENT_DELIVERED
    assert event.occurred_at == delivered_at
    assert event.payload == Fulfillment(
        external_id="9001",
        order_external_id="5001",
        status="success",
        shipment_status=ShipmentStatus.DELIVERED,
        tracking_company="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784",
        line_items=_one("orders/create", order).payload.line_items,
        customer=Customer(
            email="ana@example.com",
            phone="+12025550143",
            first_name="Ana",
            last_name="Silva",
            country_code="US",
        ),
        created_at=shipped_at,
        updated_at=delivered_at,
    )
    # The fulfillment ships the order's own line items, ids included
    assert [item["id"] for item in body["line_items"]] == [
        item["id"] for item in order["line_items"]
    ]
    assert body["name"] == "#1001.1"


def test_checkout_payload_round_trip() -> None:
    body = payloads.checkout_payload(
        checkout_id=3001, customer=ANA, line_items=ITEMS, created_at=PLACED_AT
    )

    event = _one("checkouts/create", body)

    checkout = event.payload
    assert event.type is EventType.CHECKOUT_STARTED
    assert checkout.external_id == body["token"]
    assert checkout.recovery_url == body["abandoned_checkout_url"]
    assert f"/checkouts/{body['token']}/recover?key=" in checkout.recovery_url
    assert (checkout.email, checkout.total_price, checkout.completed_at) == (
        "ana@example.com",
        Decimal("97.00"),
        None,
    )
    assert checkout.customer.external_id == "7001"
    assert checkout.customer.email_marketing is ConsentState.GRANTED


def test_guest_checkout_payload_round_trip() -> None:
    completed_at = PLACED_AT + timedelta(minutes=20)
    body = payloads.checkout_payload(
        checkout_id=3002,
        token="b7c4a2e9",
        customer=None,
        email="guest@example.com",
        line_items=ITEMS[1:],
        created_at=PLACED_AT,
        updated_at=completed_at,
        completed_at=completed_at,
    )

    checkout = _one("checkouts/update", body).payload

    assert checkout.external_id == "b7c4a2e9"
    assert checkout.completed_at == completed_at
    assert checkout.customer == Customer(email="guest@example.com", locale="en")


def test_customer_payload_round_trip() -> None:
    updated_at = PLACED_AT + timedelta(days=10)
    body = payloads.customer_payload(
        customer={
            **ANA,
            "email_consent": "unsubscribed",
            "sms_consent": True,
            "tags": ["vip", "newsletter"],
            "country_code": "PT",
            "city": "Lisboa",
        },
        created_at=PLACED_AT,
        updated_at=updated_at,
    )

    event = _one("customers/update", body)

    assert event.type is EventType.CUSTOMER_UPDATED
    assert event.occurred_at == updated_at
    assert event.payload == Customer(
        external_id="7001",
        email="ana@example.com",
        phone="+12025550143",
        first_name="Ana",
        last_name="Silva",
        country_code="PT",
        email_marketing=ConsentState.REVOKED,
        sms_marketing=ConsentState.GRANTED,
        email_marketing_since=PLACED_AT,
        sms_marketing_since=PLACED_AT,
        tags=["vip", "newsletter"],
        updated_at=updated_at,
    )
    assert body["default_address"]["city"] == "Lisboa"


def test_builders_refuse_naive_times() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        payloads.customer_payload(
            customer=ANA,
            created_at=datetime(2025, 3, 1, 12, 0),  # noqa: DTZ001 - the point of the test
        )


def _keys(value: dict[str, Any]) -> set[str]:
    return set(value)


# Shopify added the consent objects in 2022; the documented customer sample predates them.
CONSENT_KEYS = {"email_marketing_consent", "sms_marketing_consent"}


def test_built_bodies_use_only_shopifys_field_names() -> None:
    # Given the documented samples
    order_sample = _sample("orders/create")
    fulfillment_sample = _sample("fulfillments/create")
    checkout_sample = _sample("checkouts/create")
    customer_sample = _sample("customers/create")

    order = payloads.order_payload(
        order_id=5001, number=1001, customer=ANA, line_items=ITEMS, created_at=PLACED_AT
    )
    fulfillment = payloads.fulfillment_payload(
        fulfillment_id=9001,
        order_id=5001,
        customer=ANA,
        tracking_company="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784",
        shipment_status=None,
        created_at=PLACED_AT,
        updated_at=PLACED_AT,
        line_items=ITEMS,
    )
    checkout = payloads.checkout_payload(
        checkout_id=3001, customer=ANA, line_items=ITEMS, created_at=PLACED_AT
    )
    customer = payloads.customer_payload(customer=ANA, created_at=PLACED_AT)

    # Then every field the builders write is one Shopify documents for that topic
    assert _keys(order) <= _keys(order_sample)
    assert _keys(order["line_items"][0]) <= _keys(order_sample["line_items"][0])
    assert _keys(order["customer"]) <= _keys(order_sample["customer"]) | CONSENT_KEYS | {"tags"}
    assert _keys(order["shipping_address"]) == _keys(order_sample["shipping_address"])
    assert _keys(fulfillment) <= _keys(fulfillment_sample)
    assert _keys(fulfillment["line_items"][0]) <= _keys(fulfillment_sample["line_items"][0])
    assert _keys(checkout) <= _keys(checkout_sample)
    assert _keys(checkout["line_items"][0]) <= _keys(checkout_sample["line_items"][0])
    assert _keys(customer) <= _keys(customer_sample) | CONSENT_KEYS | {"tags"}
    assert _keys(customer["default_address"]) == _keys(customer_sample["default_address"])


def test_a_consent_is_read_with_the_date_the_shopper_gave_it() -> None:
    body = payloads.customer_payload(customer={**ANA, "sms_consent": True}, created_at=PLACED_AT)
    body["sms_marketing_consent"]["consent_updated_at"] = "2025-04-02T09:30:00-04:00"
    del body["email_marketing_consent"]
    body["accepts_marketing"] = True
    body["accepts_marketing_updated_at"] = "2025-01-05T10:00:00Z"

    customer = _one("customers/update", body).payload

    assert (customer.sms_marketing, customer.sms_marketing_since) == (
        ConsentState.GRANTED,
        datetime(2025, 4, 2, 13, 30, tzinfo=UTC),
    )
    assert (customer.email_marketing, customer.email_marketing_since) == (
        ConsentState.GRANTED,
        datetime(2025, 1, 5, 10, 0, tzinfo=UTC),
    )


def test_a_consent_date_that_is_not_a_timestamp_is_refused_with_its_field() -> None:
    body = payloads.customer_payload(customer={**ANA, "sms_consent": True}, created_at=PLACED_AT)
    body["sms_marketing_consent"]["consent_updated_at"] = "last Tuesday"

    with pytest.raises(MalformedPayload) as raised:
        _map("customers/update", body)

    assert raised.value.reason == (
        "customers/update: 'sms_marketing_consent.consent_updated_at' is not a timestamp "
        "with a UTC offset"
    )


# --- text longer than parley keeps ------------------------------------------------------

LONG_PHONE = "+44 (0) 20 7946 0958 / mobile +44 7700 900123"


def test_display_text_longer_than_parley_keeps_is_cut_to_fit() -> None:
    # Given an order whose name and cancel reason, and whose shopper's name, are too long
    payload = _sample("orders/cancelled") | {"name": "#" + "A" * 70, "cancel_reason": "x" * 100}
    payload["customer"] = payload["customer"] | {"first_name": "Zo" + "e" * 300}

    order = _one("orders/cancelled", payload).payload

    # Then each is cut to its column, and the delivery maps
    assert (order.number, order.cancel_reason) == ("#" + "A" * 63, "x" * 64)
    assert order.customer.first_name == "Zo" + "e" * 198


def test_a_carrier_name_longer_than_parley_keeps_is_cut_to_fit() -> None:
    payload = _sample("fulfillments/update") | {"tracking_company": "X" * 250}

    assert _one("fulfillments/update", payload).payload.tracking_company == "X" * 200


@pytest.mark.parametrize("topic", ["orders/create", "checkouts/create"])
def test_a_phone_too_long_to_keep_is_left_out_not_cut(topic: str) -> None:
    """Cut short, a phone would be another number: the order or checkout keeps none."""
    payload = _sample(topic) | {"phone": LONG_PHONE}

    assert _one(topic, payload).payload.phone is None
