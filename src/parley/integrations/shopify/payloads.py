"""Realistic Shopify webhook bodies and headers, for ``parley simulate`` and tests.

Each builder returns a body with the shape of Shopify's documented example for its topic
(API 2025-04): the fields :mod:`parley.integrations.shopify.mapping` reads, plus enough of
the rest for a person to recognise the delivery. Ids that the caller does not give (line
items, variants, addresses) are derived from the ids it does give, so the same call always
builds the same body and an order's line items match its fulfillment's.

A shopper is described by a plain dict:

- ``id``, ``email``, ``phone``, ``first_name``, ``last_name`` (any may be None except ``id``);
- ``email_consent`` and ``sms_consent``: True (``subscribed``), False (``not_subscribed``) or
  a Shopify consent state such as ``"unsubscribed"``;
- optionally ``address1``, ``city``, ``province``, ``province_code``, ``zip``,
  ``country_code`` (defaults: a street in Portland, Maine) and ``tags`` (a list).

A line item is ``{"title", "quantity", "price", "sku"}``, optionally with ``variant_title``,
``product_id``, ``variant_id``, ``vendor`` and ``grams``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from parley.clock import utc_now
from parley.integrations.shopify.signature import HEADER as HMAC_HEADER
from parley.integrations.shopify.signature import sign

DEMO_SHOP_DOMAIN = "parley-demo.myshopify.com"

_DEFAULT_ADDRESS = {
    "address1": "12 Harbour Street",
    "city": "Portland",
    "province": "Maine",
    "province_code": "ME",
    "zip": "04101",
    "country_code": "US",
}

_COUNTRY_NAMES = {
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "IE": "Ireland",
    "DE": "Germany",
    "FR": "France",
    "ES": "Spain",
    "IT": "Italy",
    "NL": "Netherlands",
    "AU": "Australia",
    "BR": "Brazil",
    "MX": "Mexico",
    "IN": "India",
}

_CENT = Decimal("0.01")


def _stable_id(*parts: object) -> int:
    """A Shopify-sized id (13 digits, exact in JavaScript too) derived from ``parts``."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return 1_000_000_000_000 + int.from_bytes(digest[:6], "big") % 9_000_000_000_000


def _secret_key(*parts: object) -> str:
    return hashlib.sha256(":".join(str(part) for part in parts).encode()).hexdigest()[:32]


def _shop_id(shop_domain: str) -> int:
    return 10_000_000 + _stable_id("shop", shop_domain) % 90_000_000


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("Shopify timestamps carry a UTC offset: pass an aware datetime")
    return value.isoformat(timespec="seconds")


def _amount(value: object) -> Decimal:
    return Decimal(str(value)).quantize(_CENT)


def _money(value: object) -> str:
    return str(_amount(value))


def _money_set(value: object, currency: str) -> dict[str, Any]:
    money = {"amount": _money(value), "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def _gid(kind: str, id_: int) -> str:
    return f"gid://shopify/{kind}/{id_}"


def _consent_state(value: bool | str | None) -> str:
    if isinstance(value, str):
        return value
    return "subscribed" if value else "not_subscribed"


def _email_consent(customer: Mapping[str, Any], *, at: datetime) -> dict[str, Any] | None:
    if not customer.get("email"):
        return None
    state = _consent_state(customer.get("email_consent"))
    return {
        "state": state,
        "opt_in_level": "single_opt_in",
        "consent_updated_at": _timestamp(at) if state != "not_subscribed" else None,
    }


def _sms_consent(customer: Mapping[str, Any], *, at: datetime) -> dict[str, Any] | None:
    # Shopify sends no SMS consent object for a customer without a phone number.
    if not customer.get("phone"):
        return None
    state = _consent_state(customer.get("sms_consent"))
    return {
        "state": state,
        "opt_in_level": "single_opt_in",
        "consent_updated_at": _timestamp(at) if state != "not_subscribed" else None,
        "consent_collected_from": "SHOPIFY",
    }


def _full_name(customer: Mapping[str, Any]) -> str | None:
    parts = [customer.get("first_name"), customer.get("last_name")]
    return " ".join(part for part in parts if part) or None


def _address(customer: Mapping[str, Any]) -> dict[str, Any]:
    """A shipping or billing address for the shopper (Shopify's MailingAddress fields)."""
    fields = {key: customer.get(key, default) for key, default in _DEFAULT_ADDRESS.items()}
    return {
        "first_name": customer.get("first_name"),
        "address1": fields["address1"],
        "phone": customer.get("phone"),
        "city": fields["city"],
        "zip": fields["zip"],
        "province": fields["province"],
        "country": _COUNTRY_NAMES.get(fields["country_code"], fields["country_code"]),
        "last_name": customer.get("last_name"),
        "address2": None,
        "company": None,
        "latitude": None,
        "longitude": None,
        "name": _full_name(customer),
        "country_code": fields["country_code"],
        "province_code": fields["province_code"],
    }


def _default_address(customer: Mapping[str, Any]) -> dict[str, Any]:
    address = _address(customer)
    return {
        "id": _stable_id("address", customer["id"]),
        "customer_id": customer["id"],
        "first_name": address["first_name"],
        "last_name": address["last_name"],
        "company": None,
        "address1": address["address1"],
        "address2": None,
        "city": address["city"],
        "province": address["province"],
        "country": address["country"],
        "zip": address["zip"],
        "phone": address["phone"],
        "name": address["name"],
        "province_code": address["province_code"],
        "country_code": address["country_code"],
        "country_name": address["country"],
        "default": True,
    }


def _customer_object(
    customer: Mapping[str, Any],
    *,
    created_at: datetime,
    updated_at: datetime,
    currency: str = "USD",
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "id": customer["id"],
        "email": customer.get("email"),
        "created_at": _timestamp(created_at),
        "updated_at": _timestamp(updated_at),
        "first_name": customer.get("first_name"),
        "last_name": customer.get("last_name"),
        "state": "enabled",
        "note": note,
        "verified_email": bool(customer.get("email")),
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": customer.get("phone"),
        "email_marketing_consent": _email_consent(customer, at=created_at),
        "sms_marketing_consent": _sms_consent(customer, at=created_at),
        "tags": ", ".join(customer.get("tags", ())),
        "currency": currency,
        "tax_exemptions": [],
        "admin_graphql_api_id": _gid("Customer", customer["id"]),
        "default_address": _default_address(customer),
    }


def _product_id(item: Mapping[str, Any]) -> int:
    return int(item.get("product_id") or _stable_id("product", item.get("sku") or item["title"]))


def _variant_id(item: Mapping[str, Any]) -> int:
    return int(
        item.get("variant_id")
        or _stable_id("variant", item.get("sku") or item["title"], item.get("variant_title"))
    )


def _order_line_item(
    item: Mapping[str, Any], *, order_id: int, index: int, currency: str
) -> dict[str, Any]:
    line_item_id = _stable_id("line_item", order_id, index)
    variant_title = item.get("variant_title")
    name = f"{item['title']} - {variant_title}" if variant_title else item["title"]
    quantity = int(item.get("quantity", 1))
    return {
        "id": line_item_id,
        "admin_graphql_api_id": _gid("LineItem", line_item_id),
        "attributed_staffs": [],
        "current_quantity": quantity,
        "fulfillable_quantity": quantity,
        "fulfillment_service": "manual",
        "fulfillment_status": None,
        "gift_card": False,
        "grams": int(item.get("grams", 250)),
        "name": name,
        "price": _money(item["price"]),
        "price_set": _money_set(item["price"], currency),
        "product_exists": True,
        "product_id": _product_id(item),
        "properties": [],
        "quantity": quantity,
        "requires_shipping": True,
        "sales_line_item_group_id": None,
        "sku": item.get("sku"),
        "taxable": True,
        "title": item["title"],
        "total_discount": "0.00",
        "total_discount_set": _money_set(0, currency),
        "variant_id": _variant_id(item),
        "variant_inventory_management": "shopify",
        "variant_title": variant_title,
        "vendor": item.get("vendor"),
        "tax_lines": [],
        "duties": [],
        "discount_allocations": [],
    }


def _subtotal(line_items: Sequence[Mapping[str, Any]]) -> Decimal:
    return sum(
        (_amount(item["price"]) * int(item.get("quantity", 1)) for item in line_items),
        Decimal(0),
    )


def order_payload(
    *,
    order_id: int,
    number: int,
    customer: Mapping[str, Any],
    line_items: Sequence[Mapping[str, Any]],
    currency: str = "USD",
    created_at: datetime,
    updated_at: datetime | None = None,
    cancelled_at: datetime | None = None,
    financial_status: str = "paid",
    fulfillment_status: str | None = None,
    customer_locale: str = "en",
    shop_domain: str = DEMO_SHOP_DOMAIN,
) -> dict[str, Any]:
    """Build an ``orders/*`` webhook body (``orders/create``, ``orders/paid``, ...).

    Args:
        order_id: Shopify's order id.
        number: the number the shopper sees; the order is named ``#<number>``.
        customer: the shopper (see the module docstring).
        line_items: what was bought (see the module docstring).
        currency: ISO 4217 code of every amount.
        created_at: when the order was placed (aware).
        updated_at: its last change; defaults to ``cancelled_at`` or ``created_at``.
        cancelled_at: when it was cancelled (by the customer), if it was.
        financial_status: Shopify's payment state (paid, pending, refunded, voided, ...).
        fulfillment_status: None (nothing shipped), partial or fulfilled.
        customer_locale: the language the shopper used.
        shop_domain: the shop's myshopify.com domain, for the order status page.

    Returns:
        The body, ready for ``json.dumps``.
    """
    updated_at = updated_at or cancelled_at or created_at
    subtotal = _money(_subtotal(line_items))
    token = _secret_key("order", order_id)
    shipping_address = _address(customer)
    return {
        "id": order_id,
        "admin_graphql_api_id": _gid("Order", order_id),
        "app_id": None,
        "browser_ip": None,
        "buyer_accepts_marketing": _consent_state(customer.get("email_consent")) == "subscribed",
        "cancel_reason": "customer" if cancelled_at else None,
        "cancelled_at": _timestamp(cancelled_at),
        "cart_token": None,
        "checkout_id": None,
        "checkout_token": None,
        "client_details": None,
        "closed_at": None,
        "confirmation_number": _secret_key("confirmation", order_id)[:9].upper(),
        "confirmed": True,
        "contact_email": customer.get("email"),
        "created_at": _timestamp(created_at),
        "currency": currency,
        "current_subtotal_price": subtotal,
        "current_subtotal_price_set": _money_set(subtotal, currency),
        "current_total_discounts": "0.00",
        "current_total_price": subtotal,
        "current_total_price_set": _money_set(subtotal, currency),
        "current_total_tax": "0.00",
        "customer_locale": customer_locale,
        "discount_codes": [],
        "email": customer.get("email"),
        "estimated_taxes": False,
        "financial_status": financial_status,
        "fulfillment_status": fulfillment_status,
        "name": f"#{number}",
        "note": None,
        "note_attributes": [],
        # Shopify numbers orders from 1001; `number` is the count without that offset.
        "number": number - 1000 if number > 1000 else number,
        "order_number": number,
        "order_status_url": (
            f"https://{shop_domain}/{_shop_id(shop_domain)}/orders/{token}/authenticate"
            f"?key={_secret_key('order-status', order_id)}"
        ),
        "payment_gateway_names": ["shopify_payments"],
        "phone": customer.get("phone"),
        "presentment_currency": currency,
        "processed_at": _timestamp(created_at),
        "source_name": "web",
        "subtotal_price": subtotal,
        "subtotal_price_set": _money_set(subtotal, currency),
        "tags": "",
        "tax_lines": [],
        "taxes_included": False,
        "test": False,
        "token": token,
        "total_discounts": "0.00",
        "total_discounts_set": _money_set(0, currency),
        "total_line_items_price": subtotal,
        "total_line_items_price_set": _money_set(subtotal, currency),
        "total_outstanding": "0.00" if financial_status == "paid" else subtotal,
        "total_price": subtotal,
        "total_price_set": _money_set(subtotal, currency),
        "total_shipping_price_set": _money_set(0, currency),
        "total_tax": "0.00",
        "total_tax_set": _money_set(0, currency),
        "total_weight": sum(int(item.get("grams", 250)) for item in line_items),
        "updated_at": _timestamp(updated_at),
        "user_id": None,
        "billing_address": dict(shipping_address),
        "customer": _customer_object(
            customer, created_at=created_at, updated_at=updated_at, currency=currency
        ),
        "discount_applications": [],
        "fulfillments": [],
        "line_items": [
            _order_line_item(item, order_id=order_id, index=index, currency=currency)
            for index, item in enumerate(line_items)
        ],
        "refunds": [],
        "shipping_address": shipping_address,
        "shipping_lines": [],
        "returns": [],
    }


def fulfillment_payload(
    *,
    fulfillment_id: int,
    order_id: int,
    customer: Mapping[str, Any],
    tracking_company: str | None,
    tracking_number: str | None,
    tracking_url: str | None,
    shipment_status: str | None,
    created_at: datetime,
    updated_at: datetime | None = None,
    line_items: Sequence[Mapping[str, Any]] = (),
    order_number: int | None = None,
    status: str = "success",
    currency: str = "USD",
) -> dict[str, Any]:
    """Build a ``fulfillments/create`` or ``fulfillments/update`` webhook body.

    Args:
        fulfillment_id: Shopify's fulfillment id.
        order_id: the order it ships.
        customer: the shopper it goes to (see the module docstring).
        tracking_company: the carrier's name, e.g. ``UPS``.
        tracking_number: the carrier's tracking number.
        tracking_url: the carrier's tracking page.
        shipment_status: Shopify's carrier status (in_transit, out_for_delivery, delivered,
            failure, ...) or None before the carrier reports.
        created_at: when it was created (aware).
        updated_at: its last change; defaults to ``created_at``.
        line_items: the order's line items it ships, as given to :func:`order_payload`
            (same order, same ids).
        order_number: the order's number, to name the fulfillment ``#1001.1``.
        status: Shopify's fulfillment status (success, pending, cancelled, ...).
        currency: ISO 4217 code of the line items' prices.

    Returns:
        The body, ready for ``json.dumps``.
    """
    items = []
    for index, item in enumerate(line_items):
        line_item = _order_line_item(item, order_id=order_id, index=index, currency=currency)
        for key in ("attributed_staffs", "current_quantity", "sales_line_item_group_id"):
            line_item.pop(key)
        items.append(line_item)
    return {
        "id": fulfillment_id,
        "order_id": order_id,
        "status": status,
        "created_at": _timestamp(created_at),
        "service": "manual",
        "updated_at": _timestamp(updated_at or created_at),
        "tracking_company": tracking_company,
        "shipment_status": shipment_status,
        "location_id": _stable_id("location", order_id) if items else None,
        "origin_address": None,
        "email": customer.get("email"),
        "destination": _address(customer),
        "line_items": items,
        "tracking_number": tracking_number,
        "tracking_numbers": [tracking_number] if tracking_number else [],
        "tracking_url": tracking_url,
        "tracking_urls": [tracking_url] if tracking_url else [],
        "receipt": {},
        "name": f"#{order_number}.1" if order_number is not None else None,
        "admin_graphql_api_id": _gid("Fulfillment", fulfillment_id),
    }


def _checkout_line_item(item: Mapping[str, Any], *, token: str) -> dict[str, Any]:
    quantity = int(item.get("quantity", 1))
    price = _amount(item["price"])
    return {
        "applied_discounts": [],
        "discount_allocations": [],
        "key": _secret_key("checkout-line", token, item.get("sku") or item["title"]),
        "destination_location_id": None,
        "fulfillment_service": "manual",
        "gift_card": False,
        "grams": int(item.get("grams", 250)),
        "origin_location_id": None,
        "presentment_title": item["title"],
        "presentment_variant_title": item.get("variant_title"),
        "product_id": _product_id(item),
        "properties": None,
        "quantity": quantity,
        "requires_shipping": True,
        "sku": item.get("sku"),
        "tax_lines": [],
        "taxable": True,
        "title": item["title"],
        "variant_id": _variant_id(item),
        "variant_title": item.get("variant_title"),
        "variant_price": str(price),
        "vendor": item.get("vendor"),
        "user_id": None,
        "rank": None,
        "compare_at_price": None,
        "line_price": str(price * quantity),
        "price": str(price),
    }


def checkout_payload(
    *,
    checkout_id: int,
    customer: Mapping[str, Any] | None,
    line_items: Sequence[Mapping[str, Any]],
    created_at: datetime,
    updated_at: datetime | None = None,
    completed_at: datetime | None = None,
    token: str | None = None,
    currency: str = "USD",
    email: str | None = None,
    shop_domain: str = DEMO_SHOP_DOMAIN,
) -> dict[str, Any]:
    """Build a ``checkouts/create`` or ``checkouts/update`` (abandoned checkout) webhook body.

    Args:
        checkout_id: Shopify's checkout id.
        customer: the shopper when logged in or known (see the module docstring); None for a
            guest, then ``email`` is what they typed.
        line_items: the cart (see the module docstring).
        created_at: when the checkout started (aware).
        updated_at: its last change; defaults to ``created_at``.
        completed_at: when it became an order, if it did.
        token: the checkout token; derived from ``checkout_id`` when not given.
        currency: ISO 4217 code of every amount.
        email: the contact email of a guest checkout; defaults to the customer's.
        shop_domain: the shop's myshopify.com domain, for the recovery link.

    Returns:
        The body, ready for ``json.dumps``.
    """
    token = token or _secret_key("checkout", checkout_id)
    subtotal = _money(_subtotal(line_items))
    contact = customer or {}
    address = _address(contact) if customer else None
    return {
        "id": checkout_id,
        "token": token,
        "cart_token": _secret_key("cart", checkout_id),
        "email": email or contact.get("email"),
        "gateway": None,
        "buyer_accepts_marketing": _consent_state(contact.get("email_consent")) == "subscribed",
        "created_at": _timestamp(created_at),
        "updated_at": _timestamp(updated_at or created_at),
        "landing_site": "/",
        "note": None,
        "note_attributes": [],
        "referring_site": None,
        "shipping_lines": [],
        "taxes_included": False,
        "total_weight": sum(int(item.get("grams", 250)) for item in line_items),
        "currency": currency,
        "completed_at": _timestamp(completed_at),
        "closed_at": None,
        "user_id": None,
        "location_id": None,
        "source_identifier": None,
        "source_url": None,
        "device_id": None,
        "phone": contact.get("phone"),
        "customer_locale": "en",
        "line_items": [_checkout_line_item(item, token=token) for item in line_items],
        "name": f"#{checkout_id}",
        "source": None,
        "abandoned_checkout_url": (
            f"https://{shop_domain}/{_shop_id(shop_domain)}/checkouts/{token}/recover"
            f"?key={_secret_key('recover', token)}"
        ),
        "discount_codes": [],
        "tax_lines": [],
        "source_name": "web",
        "presentment_currency": currency,
        "buyer_accepts_sms_marketing": _consent_state(contact.get("sms_consent")) == "subscribed",
        "sms_marketing_phone": contact.get("phone") if contact.get("sms_consent") else None,
        "total_discounts": "0.00",
        "total_line_items_price": subtotal,
        "total_price": subtotal,
        "total_tax": "0.00",
        "subtotal_price": subtotal,
        "total_duties": None,
        "reservation_token": None,
        "billing_address": address,
        "shipping_address": address,
        "customer": (
            _customer_object(
                customer,
                created_at=created_at,
                updated_at=updated_at or created_at,
                currency=currency,
            )
            if customer
            else None
        ),
    }


def customer_payload(
    *,
    customer: Mapping[str, Any],
    created_at: datetime,
    updated_at: datetime | None = None,
    note: str | None = None,
    currency: str = "USD",
) -> dict[str, Any]:
    """Build a ``customers/create`` or ``customers/update`` webhook body.

    Args:
        customer: the shopper (see the module docstring); ``tags`` become Shopify's
            comma-separated string.
        created_at: when the customer record was created (aware).
        updated_at: its last change (a consent change, say); defaults to ``created_at``.
        note: the merchant's note on the customer.
        currency: the customer's currency.

    Returns:
        The body, ready for ``json.dumps``.
    """
    body = _customer_object(
        customer,
        created_at=created_at,
        updated_at=updated_at or created_at,
        currency=currency,
        note=note,
    )
    body["addresses"] = [body["default_address"]]
    return body


def encode(payload: Mapping[str, Any]) -> bytes:
    """Serialise a body the way Shopify sends it: compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_headers(
    topic: str,
    body: bytes,
    secret: str,
    *,
    shop_domain: str,
    webhook_id: str,
    event_id: str | None = None,
    triggered_at: datetime | None = None,
    api_version: str = "2025-04",
) -> dict[str, str]:
    """Build the headers Shopify sends with one webhook delivery.

    Args:
        topic: the webhook topic, e.g. ``orders/create``.
        body: the exact bytes that will be sent.
        secret: the app's client secret to sign them with.
        shop_domain: the shop's myshopify.com domain.
        webhook_id: this delivery's id (differs for each subscription and each delivery).
        event_id: the event's id, shared by every delivery of that event; derived from
            ``topic`` and ``webhook_id`` when not given.
        triggered_at: when Shopify triggered the event (aware); defaults to now.
        api_version: the API version the body follows.

    Returns:
        Header names in Shopify's spelling, mapped to their values.
    """
    triggered_at = triggered_at or utc_now()
    if triggered_at.tzinfo is None:
        raise ValueError("triggered_at must be timezone-aware")
    stamp = triggered_at.astimezone(UTC).isoformat(timespec="microseconds")
    event_id = event_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{webhook_id}"))
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        HMAC_HEADER: sign(body, secret),
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": stamp.replace("+00:00", "Z"),
        "X-Shopify-API-Version": api_version,
    }
