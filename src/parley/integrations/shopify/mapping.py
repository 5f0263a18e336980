"""Shopify webhook deliveries, mapped to parley's canonical events.

:func:`map_delivery` takes the topic (``X-Shopify-Topic``) and the decoded JSON body of one
verified delivery and returns the events it means:

| Shopify topic           | canonical events                                                    |
|-------------------------|---------------------------------------------------------------------|
| ``orders/create``       | ``order.created``                                                   |
| ``orders/updated``      | ``order.updated``                                                   |
| ``orders/paid``         | ``order.paid``                                                      |
| ``orders/cancelled``    | ``order.cancelled``                                                 |
| ``orders/fulfilled``    | ``order.fulfilled``                                                 |
| ``fulfillments/create`` | ``fulfillment.created`` (+ the milestone its shipment status means) |
| ``fulfillments/update`` | the milestone of its shipment status, else ``fulfillment.updated``  |
| ``checkouts/create``    | ``checkout.started``                                                |
| ``checkouts/update``    | ``checkout.updated``                                                |
| ``customers/create``    | ``customer.created``                                                |
| ``customers/update``    | ``customer.updated``                                                |
| ``refunds/create``      | ``refund.created``                                                  |
| ``products/create``     | ``product.created``                                                 |
| ``products/update``     | ``product.updated``                                                 |
| ``app/uninstalled``     | ``store.uninstalled``                                               |

Any other topic raises :class:`UnknownTopic`; the compliance topics (``customers/redact``,
``shop/redact``, ``customers/data_request``) are privacy requests (:mod:`.compliance`), not events.
A body that cannot be read raises :class:`MalformedPayload` whose reason names the field.

Identifiers are Shopify's numeric ``id`` values as decimal strings. Every timestamp becomes an
aware UTC datetime; an event's ``occurred_at`` is the payload's ``updated_at``, else its
``created_at``, else the time the delivery was received, so the edge can discard stale retries
(RELIABILITY W5). ``app/uninstalled`` always uses the time received: its body is the shop's
record, whose ``updated_at`` says nothing about the uninstall.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from parley.db.text import storable
from parley.errors import Invalid
from parley.events import (
    Address,
    Checkout,
    ConsentState,
    Customer,
    Event,
    EventType,
    Fulfillment,
    LineItem,
    Order,
    Payload,
    Product,
    Refund,
    ShipmentStatus,
    StoreUninstalled,
    Variant,
    max_length,
)


class UnknownTopic(Exception):
    """parley does not map this Shopify topic to events (acknowledge it, do nothing)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"parley does not map the Shopify topic {topic!r}")
        self.topic = topic


class MalformedPayload(Invalid):
    """The body of a Shopify delivery cannot be read; ``reason`` names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)

_MAX_ID_LENGTH = 255


class Fields:
    """Typed reads from one JSON object; every failure names the field's path.

    Text comes back storable (:func:`parley.db.text.storable`): JSON may spell a NUL or
    half a surrogate pair, which no engine keeps, and a delivery refused or failed for one
    would be refused again on each of Shopify's retries and its events lost. The raw body
    keeps them as sent.
    """

    def __init__(self, data: Mapping[str, Any], *, topic: str, path: str = "") -> None:
        self._data = data
        self._topic = topic
        self._path = path

    def fail(self, key: str, problem: str) -> NoReturn:
        raise MalformedPayload(f"{self._topic}: '{self._path}{key}' {problem}")

    def ident(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None or value == "":
            return None
        # bool is an int in Python, and Shopify never sends one as an id.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and len(value) <= _MAX_ID_LENGTH:
            return storable(value)
        return self.fail(key, "is not an id")

    def required_ident(self, key: str) -> str:
        value = self.ident(key)
        if value is None:
            self.fail(key, "is missing")
        return value

    def idents(self, key: str) -> list[str]:
        """A list of ids (``orders_to_redact``)."""
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, "is not a list")
        found = []
        for index, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                found.append(str(item))
            elif isinstance(item, str) and 0 < len(item) <= _MAX_ID_LENGTH:
                found.append(storable(item))
            else:
                self.fail(f"{key}[{index}]", "is not an id")
        return found

    def text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, "is not text")
        return storable(value.strip()) or None

    def integer(self, key: str) -> int | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return self.fail(key, "is not an integer")

    def flag(self, key: str) -> bool | None:
        value = self._data.get(key)
        if value is None or isinstance(value, bool):
            return value
        return self.fail(key, "is not true or false")

    def money(self, key: str) -> Decimal | None:
        value = self._data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(key, "is not a decimal amount")
        try:
            # str() first: Decimal(0.1) would carry the float's binary error into prices.
            amount = Decimal(str(value))
        except InvalidOperation:
            self.fail(key, "is not a decimal amount")
        if not amount.is_finite():
            self.fail(key, "is not a decimal amount")
        return amount

    def when(self, key: str) -> datetime | None:
        value = self._data.get(key)
        if value is None or value == "":
            return None
        # Shopify always sends strings; pydantic would also read a bare number as epoch seconds.
        if not isinstance(value, str):
            self.fail(key, "is not a timestamp")
        try:
            return _TIMESTAMP.validate_python(value).astimezone(UTC)
        except ValidationError:
            return self.fail(key, "is not a timestamp with a UTC offset")

    def child(self, key: str) -> Fields | None:
        value = self._data.get(key)
        # Shopify serialises some absent objects as an empty list (checkout shipping_address).
        if value is None or value == []:
            return None
        if not isinstance(value, dict):
            self.fail(key, "is not an object")
        return Fields(value, topic=self._topic, path=f"{self._path}{key}.")

    def children(self, key: str) -> list[Fields]:
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, "is not a list")
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.fail(f"{key}[{index}]", "is not an object")
            items.append(Fields(item, topic=self._topic, path=f"{self._path}{key}[{index}]."))
        return items

    def strings(self, key: str) -> list[str]:
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, "is not a list of text")
        return [storable(item.strip()) for item in value if item.strip()]

    def words(self, key: str) -> list[str]:
        """Shopify tags: one comma-separated string (REST) or a list of strings."""
        value = self._data.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            parts = value.split(",")
        elif isinstance(value, list) and all(isinstance(part, str) for part in value):
            parts = value
        else:
            self.fail(key, "is not a comma-separated list")
        return [storable(part.strip()) for part in parts if part.strip()]


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)


# A delivery is refused only for what Shopify never sends; one refused for a long carrier
# name would be refused on each of Shopify's retries, and its events lost. So display text
# is cut to what parley keeps (the raw delivery keeps it whole), and a phone too long to
# keep is left out: cut short, it would be someone else's number.
_ORDER_NUMBER = max_length(Order, "number")
_CANCEL_REASON = max_length(Order, "cancel_reason")
_TRACKING_COMPANY = max_length(Fulfillment, "tracking_company")
_PERSON_NAME = min(max_length(Customer, "first_name"), max_length(Customer, "last_name"))
_ORDER_PHONE = max_length(Order, "phone")
_CHECKOUT_PHONE = max_length(Checkout, "phone")


def _cut(value: str | None, limit: int) -> str | None:
    """Display text, cut to ``limit`` characters."""
    return value[:limit] if value is not None else None


def _whole(value: str | None, limit: int) -> str | None:
    """A value kept only whole: None when longer than ``limit``."""
    return value if value is None or len(value) <= limit else None


def _country_code(value: str | None) -> str | None:
    if value and len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    return None


_CONSENT_STATES = {"subscribed": ConsentState.GRANTED, "unsubscribed": ConsentState.REVOKED}


def _consent(record: Fields, key: str, *, legacy_key: str | None = None) -> ConsentState:
    consent = record.child(key)
    if consent is not None:
        # not_subscribed, pending (double opt-in not confirmed), redacted, invalid: no grant.
        return _CONSENT_STATES.get(consent.text("state") or "", ConsentState.UNKNOWN)
    if legacy_key is not None and record.flag(legacy_key) is True:
        return ConsentState.GRANTED
    return ConsentState.UNKNOWN


def _consent_since(record: Fields, key: str, *, legacy_key: str | None = None) -> datetime | None:
    """When the shopper last gave or withdrew it, as the platform dated it: a grant dated
    after an erasure lifts the opt-out kept through it (:mod:`parley.customers.suppression`)."""
    consent = record.child(key)
    if consent is not None:
        return consent.when("consent_updated_at")
    return record.when(legacy_key) if legacy_key is not None else None


def _person_name(*sources: Fields | None) -> tuple[str | None, str | None]:
    """First and last name from the first source naming anyone, never mixed across sources."""
    for source in sources:
        if source is None:
            continue
        first_name, last_name = source.text("first_name"), source.text("last_name")
        if not (first_name or last_name) and (full_name := source.text("name")):
            first_name, _, last_name = full_name.partition(" ")
            last_name = last_name.strip() or None
        if first_name or last_name:
            return _cut(first_name, _PERSON_NAME), _cut(last_name, _PERSON_NAME)
    return None, None


def _customer(record: Fields | None, *, around: Fields | None = None) -> Customer | None:
    """Map a Shopify customer object; ``around`` is the order or checkout carrying it.

    Since API 2025-04, an order's customer object may omit contact details and names unless
    the app has protected-data access, so they fall back to the order's own fields and
    addresses.
    """
    shipping = around.child("shipping_address") if around else None
    billing = around.child("billing_address") if around else None
    default = record.child("default_address") if record else None
    email = _first(
        record.text("email") if record else None,
        around.text("email") if around else None,
        around.text("contact_email") if around else None,
    )
    # The shopper's own addresses before the one the parcel goes to: a gift's shipping
    # address carries the recipient's phone, which would become the shopper's identity
    # (and join the recipient's own profile to theirs).
    phone = _first(
        record.text("phone") if record else None,
        around.text("phone") if around else None,
        default.text("phone") if default else None,
        billing.text("phone") if billing else None,
        shipping.text("phone") if shipping else None,
    )
    if record is None and not (email or phone):
        return None
    first_name, last_name = _person_name(record, shipping, billing, default)
    country_code = _first(
        *(_country_code(a.text("country_code")) for a in (default, shipping, billing) if a)
    )
    # The order-level buyer_accepts_marketing flags are deliberately not read: they belong to
    # the checkout's email and phone, which may differ from the customer's, and consent must
    # never be granted to the wrong address.
    return Customer(
        external_id=record.ident("id") if record else None,
        email=email,
        phone=phone,
        first_name=first_name,
        last_name=last_name,
        country_code=country_code,
        locale=around.text("customer_locale") if around else None,
        email_marketing=(
            _consent(record, "email_marketing_consent", legacy_key="accepts_marketing")
            if record
            else ConsentState.UNKNOWN
        ),
        sms_marketing=(
            _consent(record, "sms_marketing_consent") if record else ConsentState.UNKNOWN
        ),
        email_marketing_since=(
            _consent_since(
                record, "email_marketing_consent", legacy_key="accepts_marketing_updated_at"
            )
            if record
            else None
        ),
        sms_marketing_since=(_consent_since(record, "sms_marketing_consent") if record else None),
        tags=record.words("tags") if record else [],
        updated_at=record.when("updated_at") if record else None,
    )


def _address(fields: Fields | None) -> Address | None:
    if fields is None:
        return None
    first_name, last_name = fields.text("first_name"), fields.text("last_name")
    joined = " ".join(part for part in (first_name, last_name) if part) or None
    return Address(
        name=fields.text("name") or joined,
        address1=fields.text("address1"),
        address2=fields.text("address2"),
        city=fields.text("city"),
        province=fields.text("province"),
        zip=fields.text("zip"),
        country_code=_country_code(fields.text("country_code")),
        phone=fields.text("phone"),
    )


def _line_items(fields: Fields) -> list[LineItem]:
    items = []
    for item in fields.children("line_items"):
        title = item.text("title") or item.text("name")
        if title is None:
            item.fail("title", "is missing")
        quantity = item.integer("quantity")
        items.append(
            LineItem(
                title=title,
                quantity=1 if quantity is None else quantity,
                price=item.money("price"),
                sku=item.text("sku"),
                variant_title=item.text("variant_title"),
                product_external_id=item.ident("product_id"),
                variant_external_id=item.ident("variant_id"),
            )
        )
    return items


def _order(fields: Fields) -> Order:
    external_id = fields.required_ident("id")
    order_number = fields.ident("order_number")
    number = fields.text("name") or (f"#{order_number}" if order_number else None)
    if number is None:
        fields.fail("name", "is missing")
    return Order(
        external_id=external_id,
        number=_cut(number, _ORDER_NUMBER),
        customer=_customer(fields.child("customer"), around=fields),
        email=fields.text("email") or fields.text("contact_email"),
        phone=_whole(fields.text("phone"), _ORDER_PHONE),
        currency=fields.text("currency") or "USD",
        total_price=fields.money("total_price"),
        financial_status=fields.text("financial_status"),
        fulfillment_status=fields.text("fulfillment_status"),
        line_items=_line_items(fields),
        shipping_address=_address(fields.child("shipping_address")),
        status_url=fields.text("order_status_url"),
        cancelled_at=fields.when("cancelled_at"),
        cancel_reason=_cut(fields.text("cancel_reason"), _CANCEL_REASON),
        created_at=fields.when("created_at"),
        updated_at=fields.when("updated_at"),
    )


# Shopify's shipment_status values (REST fulfillments, FulfillmentEventStatus in GraphQL):
# what each means in parley's words, and the milestone event it announces, if any.
_SHIPMENTS: dict[str, tuple[ShipmentStatus, EventType | None]] = {
    "label_printed": (ShipmentStatus.LABEL_PRINTED, None),
    "label_purchased": (ShipmentStatus.LABEL_PRINTED, None),
    # The carrier knows about the parcel but does not hold it yet: not in transit.
    "confirmed": (ShipmentStatus.CONFIRMED, None),
    "carrier_picked_up": (ShipmentStatus.IN_TRANSIT, EventType.FULFILLMENT_IN_TRANSIT),
    "in_transit": (ShipmentStatus.IN_TRANSIT, EventType.FULFILLMENT_IN_TRANSIT),
    # Still moving, only late: no new milestone, so no second "on its way" message.
    "delayed": (ShipmentStatus.IN_TRANSIT, None),
    "out_for_delivery": (ShipmentStatus.OUT_FOR_DELIVERY, EventType.FULFILLMENT_OUT_FOR_DELIVERY),
    "ready_for_pickup": (ShipmentStatus.READY_FOR_PICKUP, None),
    "attempted_delivery": (ShipmentStatus.ATTEMPTED_DELIVERY, EventType.FULFILLMENT_FAILED),
    "failure": (ShipmentStatus.FAILED, EventType.FULFILLMENT_FAILED),
    "delivered": (ShipmentStatus.DELIVERED, EventType.FULFILLMENT_DELIVERED),
    # The shopper collected it from a pickup point: delivered, as far as messages go.
    "picked_up": (ShipmentStatus.DELIVERED, EventType.FULFILLMENT_DELIVERED),
}


def _shipment(fields: Fields) -> tuple[ShipmentStatus | None, EventType | None]:
    raw = fields.text("shipment_status")
    if raw is None:
        return None, None
    return _SHIPMENTS.get(raw.lower(), (ShipmentStatus.UNKNOWN, None))


def _fulfillment(fields: Fields) -> Fulfillment:
    destination = fields.child("destination")
    email = fields.text("email")
    customer = None
    if destination is not None or email:
        first_name, last_name = _person_name(destination)
        customer = Customer(
            email=email,
            phone=destination.text("phone") if destination else None,
            first_name=first_name,
            last_name=last_name,
            country_code=_country_code(destination.text("country_code")) if destination else None,
        )
    tracking_numbers = fields.strings("tracking_numbers")
    tracking_urls = fields.strings("tracking_urls")
    return Fulfillment(
        external_id=fields.required_ident("id"),
        order_external_id=fields.required_ident("order_id"),
        status=fields.text("status"),
        shipment_status=_shipment(fields)[0],
        tracking_company=_cut(fields.text("tracking_company"), _TRACKING_COMPANY),
        tracking_number=_first(fields.text("tracking_number"), *tracking_numbers),
        tracking_url=_first(fields.text("tracking_url"), *tracking_urls),
        line_items=_line_items(fields),
        customer=customer,
        created_at=fields.when("created_at"),
        updated_at=fields.when("updated_at"),
    )


def _checkout(fields: Fields) -> Checkout:
    external_id = fields.ident("token") or fields.ident("id")
    if external_id is None:
        fields.fail("id", "is missing")
    return Checkout(
        external_id=external_id,
        customer=_customer(fields.child("customer"), around=fields),
        email=fields.text("email"),
        phone=_whole(fields.text("phone"), _CHECKOUT_PHONE),
        currency=fields.text("currency") or "USD",
        total_price=fields.money("total_price"),
        line_items=_line_items(fields),
        recovery_url=fields.text("abandoned_checkout_url"),
        completed_at=fields.when("completed_at"),
        created_at=fields.when("created_at"),
        updated_at=fields.when("updated_at"),
    )


def _refund_amount(fields: Fields) -> tuple[Decimal | None, str | None]:
    """Money returned: successful refund transactions, else the refunded lines' value.

    The transactions are what actually went back to the shopper. Without any (a refund still
    pending at the gateway), the refunded lines' subtotal plus their tax is what is owed.
    """
    refunds = [
        transaction
        for transaction in fields.children("transactions")
        if transaction.text("kind") == "refund" and transaction.text("status") in (None, "success")
    ]
    if refunds:
        total = sum((t.money("amount") or Decimal(0) for t in refunds), Decimal(0))
        return total, _first(*(t.text("currency") for t in refunds))
    lines = fields.children("refund_line_items")
    if not lines:
        return None, None
    total = sum(
        (
            (line.money("subtotal") or Decimal(0)) + (line.money("total_tax") or Decimal(0))
            for line in lines
        ),
        Decimal(0),
    )
    currencies = []
    for line in lines:
        money = line.child("subtotal_set")
        shop_money = money.child("shop_money") if money else None
        currencies.append(shop_money.text("currency_code") if shop_money else None)
    return total, _first(*currencies)


def _refund(fields: Fields) -> Refund:
    amount, currency = _refund_amount(fields)
    return Refund(
        external_id=fields.required_ident("id"),
        order_external_id=fields.required_ident("order_id"),
        amount=amount,
        currency=currency,
        note=fields.text("note"),
        created_at=fields.when("created_at"),
    )


def _product(fields: Fields) -> Product:
    title = fields.text("title")
    if title is None:
        fields.fail("title", "is missing")
    return Product(
        external_id=fields.required_ident("id"),
        title=title,
        handle=fields.text("handle"),
        product_type=fields.text("product_type"),
        vendor=fields.text("vendor"),
        status=fields.text("status"),
        tags=fields.words("tags"),
        variants=[
            Variant(
                external_id=variant.required_ident("id"),
                title=variant.text("title"),
                sku=variant.text("sku"),
                price=variant.money("price"),
                inventory_quantity=variant.integer("inventory_quantity"),
            )
            for variant in fields.children("variants")
        ],
        updated_at=fields.when("updated_at"),
    )


def _customer_record(fields: Fields) -> Customer:
    fields.required_ident("id")
    customer = _customer(fields)
    if customer is None:  # unreachable: a customer object always maps
        fields.fail("id", "is missing")
    return customer


_Mapped = list[tuple[EventType, Payload]]


def _orders(event_type: EventType) -> Callable[[Fields], _Mapped]:
    return lambda fields: [(event_type, _order(fields))]


def _fulfillments_create(fields: Fields) -> _Mapped:
    fulfillment = _fulfillment(fields)
    milestone = _shipment(fields)[1]
    # A fulfillment created with tracking already moving (a 3PL reporting late) also announces
    # that milestone, or the shopper would never hear it.
    mapped: _Mapped = [(EventType.FULFILLMENT_CREATED, fulfillment)]
    if milestone is not None:
        mapped.append((milestone, fulfillment))
    return mapped


def _fulfillments_update(fields: Fields) -> _Mapped:
    fulfillment = _fulfillment(fields)
    milestone = _shipment(fields)[1]
    return [(milestone or EventType.FULFILLMENT_UPDATED, fulfillment)]


def _store_uninstalled(fields: Fields) -> _Mapped:
    # myshopify_domain first: it is the shop's permanent name, the one X-Shopify-Shop-Domain
    # carries; `domain` is the primary (possibly custom) storefront domain.
    domain = fields.text("myshopify_domain") or fields.text("domain")
    return [(EventType.STORE_UNINSTALLED, StoreUninstalled(shop_domain=domain))]


_MAPPERS: dict[str, Callable[[Fields], _Mapped]] = {
    "orders/create": _orders(EventType.ORDER_CREATED),
    "orders/updated": _orders(EventType.ORDER_UPDATED),
    "orders/paid": _orders(EventType.ORDER_PAID),
    "orders/cancelled": _orders(EventType.ORDER_CANCELLED),
    "orders/fulfilled": _orders(EventType.ORDER_FULFILLED),
    "fulfillments/create": _fulfillments_create,
    "fulfillments/update": _fulfillments_update,
    "checkouts/create": lambda fields: [(EventType.CHECKOUT_STARTED, _checkout(fields))],
    "checkouts/update": lambda fields: [(EventType.CHECKOUT_UPDATED, _checkout(fields))],
    "customers/create": lambda fields: [(EventType.CUSTOMER_CREATED, _customer_record(fields))],
    "customers/update": lambda fields: [(EventType.CUSTOMER_UPDATED, _customer_record(fields))],
    "refunds/create": lambda fields: [(EventType.REFUND_CREATED, _refund(fields))],
    "products/create": lambda fields: [(EventType.PRODUCT_CREATED, _product(fields))],
    "products/update": lambda fields: [(EventType.PRODUCT_UPDATED, _product(fields))],
    "app/uninstalled": _store_uninstalled,
}

TOPICS: tuple[str, ...] = tuple(_MAPPERS)
"""The Shopify webhook topics :func:`map_delivery` maps, in the table's order."""

# The shop object sent on app/uninstalled is the shop's record: its updated_at is when the
# shop's settings last changed, not when the app was removed.
_OCCURRED_ON_RECEIPT = frozenset({"app/uninstalled"})


def _validation_reason(topic: str, error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    message = first["msg"]
    # Lower only the first letter: the rest may be a pattern or a limit to quote exactly.
    return f"{topic}: '{location}' {message[:1].lower()}{message[1:]}"


def map_delivery(topic: str, payload: object, *, received_at: datetime) -> list[Event]:
    """Map one verified Shopify webhook delivery to canonical events.

    Args:
        topic: the ``X-Shopify-Topic`` header, e.g. ``orders/create``.
        payload: the delivery's body, already decoded from JSON.
        received_at: when parley received the delivery (aware); the events' ``occurred_at``
            when the payload carries no timestamp.

    Returns:
        The events, in the order they happened (usually one).

    Raises:
        UnknownTopic: parley does not map ``topic``.
        MalformedPayload: the body is not a JSON object or a field is missing or mistyped.
        ValueError: ``received_at`` is naive.
    """
    mapper = _MAPPERS.get(topic)
    if mapper is None:
        raise UnknownTopic(topic)
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if not isinstance(payload, dict):
        raise MalformedPayload(f"{topic}: the body is not a JSON object")
    fields = Fields(payload, topic=topic)
    received_at = received_at.astimezone(UTC)
    occurred_at = (
        received_at
        if topic in _OCCURRED_ON_RECEIPT
        else fields.when("updated_at") or fields.when("created_at") or received_at
    )
    try:
        mapped = mapper(fields)
    except ValidationError as error:
        raise MalformedPayload(_validation_reason(topic, error)) from error
    return [Event.build(event_type, event, occurred_at) for event_type, event in mapped]
