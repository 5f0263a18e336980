"""The facts a template may use, gathered from the store's own data.

Only what is listed here reaches a template (see ``templates.py`` for the contract):
plain dicts of display values, never ORM objects, so a store-edited template cannot walk
into the database.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from parley.commerce.models import Fulfillment, Order
from parley.customers.models import Customer
from parley.messaging import postal_address
from parley.workspaces.models import Workspace


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def store_site(workspace: Workspace) -> str:
    """The store's site as it gave it; else, for a Shopify store, the shop Shopify serves
    (it sends shoppers on to the store's own domain); else empty. A link in a WhatsApp
    template is a parameter, and Meta refuses an empty one."""
    if workspace.store_url:
        return workspace.store_url
    if workspace.shopify_shop_domain:
        return f"https://{workspace.shopify_shop_domain}"
    return ""


def template_context(
    *,
    workspace: Workspace,
    customer: Customer,
    order: Order | None,
    fulfillment: Fulfillment | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the template context for one message."""
    context: dict[str, Any] = {
        "store": {
            "name": workspace.name,
            "url": store_site(workspace),
            "support_email": workspace.support_email or "",
            "postal_address": postal_address.of(workspace.settings),
        },
        "customer": {
            # A name of blanks (the events API keeps what it is sent) is no name: a
            # template's ``first_name or "there"`` must fall back, and WhatsApp refuses
            # the blank parameter it would otherwise become.
            "first_name": (customer.first_name or "").strip(),
            "last_name": (customer.last_name or "").strip(),
            "email": customer.email or "",
            "phone": customer.phone or "",
        },
        "order": None,
        "fulfillment": None,
        "review_url": (workspace.settings or {}).get("review_url") or "",
    }
    if order is not None:
        items = [
            {
                "title": item.get("title", ""),
                "quantity": item.get("quantity", 1),
                "price": item.get("price"),
                "variant_title": item.get("variant_title"),
            }
            for item in order.line_items
        ]
        context["order"] = {
            "number": order.number,
            "total": _money(order.total_price),
            "currency": order.currency,
            "status_url": order.status_url or "",
            "items": items,
            "item_count": sum(int(item["quantity"] or 0) for item in items),
        }
    if fulfillment is not None:
        context["fulfillment"] = {
            "tracking_company": fulfillment.tracking_company or "",
            "tracking_number": fulfillment.tracking_number or "",
            "tracking_url": fulfillment.tracking_url or "",
            "shipment_status": fulfillment.shipment_status or "",
        }
    context.update(extra or {})
    return context
