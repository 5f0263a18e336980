"""The canonical event vocabulary: what happened in a store, in parley's own words.

Every store platform (Shopify, WooCommerce, the generic API) maps its deliveries to these
events, so journeys and the store's data never depend on one platform's wire format. Each
event carries a typed payload; the generic ``POST /api/v1/events`` validates against the
same models.

| event                       | payload          | meaning                                      |
|-----------------------------|------------------|----------------------------------------------|
| ``order.created``           | ``Order``        | a customer placed an order                   |
| ``order.updated``           | ``Order``        | any change to an order (address, items, ...) |
| ``order.paid``              | ``Order``        | payment captured                             |
| ``order.cancelled``         | ``Order``        | the order was cancelled                      |
| ``order.fulfilled``         | ``Order``        | every item was fulfilled                     |
| ``fulfillment.created``     | ``Fulfillment``  | items were handed to a carrier (dispatch)    |
| ``fulfillment.updated``     | ``Fulfillment``  | tracking changed, no new shipment status     |
| ``fulfillment.in_transit``  | ``Fulfillment``  | carrier reports in transit                   |
| ``fulfillment.out_for_delivery`` | ``Fulfillment`` | with the courier today                   |
| ``fulfillment.delivered``   | ``Fulfillment``  | delivered                                    |
| ``fulfillment.failed``      | ``Fulfillment``  | delivery failed / attempted                  |
| ``checkout.started``        | ``Checkout``     | a cart reached checkout (cart-recovery)      |
| ``checkout.updated``        | ``Checkout``     | the checkout changed                         |
| ``customer.created``        | ``Customer``     | a customer record appeared                   |
| ``customer.updated``        | ``Customer``     | contact details or consent changed           |
| ``refund.created``          | ``Refund``       | money was returned                           |
| ``product.created``         | ``Product``      | catalogue addition                           |
| ``product.updated``         | ``Product``      | catalogue change (price, stock, ...)         |
| ``store.uninstalled``       | ``StoreUninstalled`` | the store removed parley: stop every send |
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


class EventType(StrEnum):
    """Stored values: never renumber or reuse."""

    ORDER_CREATED = "order.created"
    ORDER_UPDATED = "order.updated"
    ORDER_PAID = "order.paid"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_FULFILLED = "order.fulfilled"
    FULFILLMENT_CREATED = "fulfillment.created"
    FULFILLMENT_UPDATED = "fulfillment.updated"
    FULFILLMENT_IN_TRANSIT = "fulfillment.in_transit"
    FULFILLMENT_OUT_FOR_DELIVERY = "fulfillment.out_for_delivery"
    FULFILLMENT_DELIVERED = "fulfillment.delivered"
    FULFILLMENT_FAILED = "fulfillment.failed"
    CHECKOUT_STARTED = "checkout.started"
    CHECKOUT_UPDATED = "checkout.updated"
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    REFUND_CREATED = "refund.created"
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    STORE_UNINSTALLED = "store.uninstalled"


class ConsentState(StrEnum):
    """A platform's statement about marketing consent on one channel."""

    GRANTED = "granted"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Fields are bounded as the columns that keep them are, so a value parley could not store
# is refused with its name (422) on every engine, where PostgreSQL would fail the write and
# SQLite keep it whole. A platform's mapper cuts display text to fit before it gets here.
ExternalId = Annotated[str, Field(min_length=1, max_length=255)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code")]
MONEY_LIMIT = Decimal("999999999999.999")
"""The largest amount ``Numeric(15, 3)`` keeps, either way: twelve whole digits, and the
three decimals of the currencies that have them (KWD, BHD, OMR, JOD, TND)."""
Money = Annotated[Decimal, Field(ge=-MONEY_LIMIT, le=MONEY_LIMIT)]


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is past the last one parley can keep") from None


Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A time with its offset, kept in UTC: one whose UTC day is past the calendar's last
(``9999-12-31T23:00-05:00``) is refused with its name, not failed on its write."""


class Customer(_Model):
    """A shopper as the store platform knows them."""

    external_id: ExternalId | None = None
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = None
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone, when the platform knows"
    )
    country_code: str | None = Field(
        default=None, max_length=2, description="ISO 3166 alpha-2, for phones"
    )
    locale: str | None = Field(
        default=None, description="language the shopper used at checkout, e.g. en or fr-CA"
    )
    email_marketing: ConsentState = ConsentState.UNKNOWN
    sms_marketing: ConsentState = ConsentState.UNKNOWN
    email_marketing_since: Moment | None = Field(
        default=None, description="when the shopper last gave or withdrew email marketing"
    )
    sms_marketing_since: Moment | None = Field(
        default=None, description="when the shopper last gave or withdrew SMS marketing"
    )
    tags: list[str] = Field(default_factory=list)
    updated_at: Moment | None = None


class LineItem(_Model):
    title: str
    quantity: int = 1
    price: Decimal | None = None
    sku: str | None = None
    variant_title: str | None = None
    product_external_id: str | None = None
    variant_external_id: str | None = None


class Address(_Model):
    name: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    zip: str | None = None
    country_code: str | None = None
    phone: str | None = None


class Order(_Model):
    external_id: ExternalId
    number: str = Field(max_length=64, description="What the customer sees, e.g. #1001")
    customer: Customer | None = None
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    currency: Currency = "USD"
    total_price: Money | None = None
    financial_status: str | None = Field(default=None, max_length=32)
    fulfillment_status: str | None = Field(default=None, max_length=32)
    line_items: list[LineItem] = Field(default_factory=list)
    shipping_address: Address | None = None
    status_url: str | None = None
    cancelled_at: Moment | None = None
    cancel_reason: str | None = Field(default=None, max_length=64)
    created_at: Moment | None = None
    updated_at: Moment | None = None


class ShipmentStatus(StrEnum):
    """Carrier-reported progress of one shipment, in parley's words."""

    CONFIRMED = "confirmed"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILED = "failed"
    ATTEMPTED_DELIVERY = "attempted_delivery"
    READY_FOR_PICKUP = "ready_for_pickup"
    LABEL_PRINTED = "label_printed"
    UNKNOWN = "unknown"


class Fulfillment(_Model):
    external_id: ExternalId
    order_external_id: ExternalId
    status: str | None = Field(default=None, max_length=32)
    shipment_status: ShipmentStatus | None = None
    tracking_company: str | None = Field(default=None, max_length=200)
    tracking_number: str | None = Field(default=None, max_length=200)
    tracking_url: str | None = None
    line_items: list[LineItem] = Field(default_factory=list)
    customer: Customer | None = None
    estimated_delivery_at: Moment | None = None
    created_at: Moment | None = None
    updated_at: Moment | None = None


class Checkout(_Model):
    external_id: ExternalId
    customer: Customer | None = None
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    currency: Currency = "USD"
    total_price: Money | None = None
    line_items: list[LineItem] = Field(default_factory=list)
    recovery_url: str | None = None
    completed_at: Moment | None = None
    created_at: Moment | None = None
    updated_at: Moment | None = None


class Refund(_Model):
    external_id: ExternalId
    order_external_id: ExternalId
    amount: Money | None = None
    currency: Currency | None = None
    note: str | None = None
    created_at: Moment | None = None


class Variant(_Model):
    external_id: ExternalId
    title: str | None = None
    sku: str | None = None
    price: Decimal | None = None
    inventory_quantity: int | None = None


class Product(_Model):
    external_id: ExternalId
    title: str = Field(max_length=500)
    handle: str | None = Field(default=None, max_length=255)
    product_type: str | None = Field(default=None, max_length=255)
    vendor: str | None = Field(default=None, max_length=255)
    status: str | None = Field(default=None, max_length=32)
    tags: list[str] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)
    updated_at: Moment | None = None


class StoreUninstalled(_Model):
    shop_domain: str | None = None


PAYLOAD_MODELS: dict[EventType, type[_Model]] = {
    EventType.ORDER_CREATED: Order,
    EventType.ORDER_UPDATED: Order,
    EventType.ORDER_PAID: Order,
    EventType.ORDER_CANCELLED: Order,
    EventType.ORDER_FULFILLED: Order,
    EventType.FULFILLMENT_CREATED: Fulfillment,
    EventType.FULFILLMENT_UPDATED: Fulfillment,
    EventType.FULFILLMENT_IN_TRANSIT: Fulfillment,
    EventType.FULFILLMENT_OUT_FOR_DELIVERY: Fulfillment,
    EventType.FULFILLMENT_DELIVERED: Fulfillment,
    EventType.FULFILLMENT_FAILED: Fulfillment,
    EventType.CHECKOUT_STARTED: Checkout,
    EventType.CHECKOUT_UPDATED: Checkout,
    EventType.CUSTOMER_CREATED: Customer,
    EventType.CUSTOMER_UPDATED: Customer,
    EventType.REFUND_CREATED: Refund,
    EventType.PRODUCT_CREATED: Product,
    EventType.PRODUCT_UPDATED: Product,
    EventType.STORE_UNINSTALLED: StoreUninstalled,
}

Payload = Order | Fulfillment | Checkout | Customer | Refund | Product | StoreUninstalled


class Event(_Model):
    """One canonical store event, ready for the domain."""

    type: EventType
    payload: Any
    occurred_at: datetime

    @classmethod
    def build(cls, type_: EventType, payload: Payload, occurred_at: datetime) -> Event:
        """Make an event, checking that the payload is the kind the type promises."""
        expected = PAYLOAD_MODELS[type_]
        if not isinstance(payload, expected):
            raise TypeError(f"{type_} carries {expected.__name__}, not {type(payload).__name__}")
        return cls(type=type_, payload=payload, occurred_at=occurred_at)


def max_length(model: type[BaseModel], field: str) -> int:
    """The most characters ``model`` takes in ``field``: what a mapper cuts display text to."""
    for constraint in model.model_fields[field].metadata:
        limit = getattr(constraint, "max_length", None)
        if isinstance(limit, int):
            return limit
    raise LookupError(f"{model.__name__}.{field} has no maximum length")


def parse_payload(type_: EventType, data: dict[str, Any]) -> Payload:
    """Validate a JSON payload for an event type (the generic API's entry point)."""
    return PAYLOAD_MODELS[type_].model_validate(data)  # type: ignore[return-value]
