"""Seeding the demo store: products, and customers spread over channels, zones and consents.

Every shopper here is invented for the demo. Their Shopify ids match what ``parley
simulate`` sends, so simulated orders land on profiles whose consent decides the channel:
Ada said yes to WhatsApp, Grace only to SMS, Alan gave nothing but an email address.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from parley import events
from parley.commerce import service as commerce
from parley.customers import service as customers
from parley.messaging.types import Purpose
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace

DEMO_SLUG = "demo"
DEMO_NAME = "Juniper & Pine"


@dataclass(frozen=True)
class DemoShopper:
    shopify_id: str
    first_name: str
    last_name: str
    email: str
    phone: str | None
    timezone: str
    consents: tuple[tuple[str, Purpose], ...]
    note: str


SHOPPERS: tuple[DemoShopper, ...] = (
    DemoShopper(
        "7001",
        "Ada",
        "Lovelace",
        "ada@example.com",
        "+447911123456",
        "Europe/London",
        (("whatsapp", Purpose.TRANSACTIONAL), ("email", Purpose.MARKETING)),
        "WhatsApp opt-in at checkout: shipping news on WhatsApp",
    ),
    DemoShopper(
        "7002",
        "Grace",
        "Hopper",
        "grace@example.com",
        "+12025550143",
        "America/New_York",
        (("sms", Purpose.TRANSACTIONAL),),
        "SMS only: shipping news by text message",
    ),
    DemoShopper(
        "7003",
        "Alan",
        "Turing",
        "alan@example.com",
        None,
        "Europe/London",
        (),
        "email only: everything by email",
    ),
    DemoShopper(
        "7004",
        "Frida",
        "Kahlo",
        "frida@example.com",
        "+525512345678",
        "America/Mexico_City",
        (("whatsapp", Purpose.TRANSACTIONAL), ("sms", Purpose.TRANSACTIONAL)),
        "WhatsApp first, SMS as fallback",
    ),
)

PRODUCTS: tuple[tuple[str, str, str, str], ...] = (
    ("8001", "Merino Crew Sweater", "Knitwear", "89.00"),
    ("8002", "Linen Camp Shirt", "Shirts", "64.00"),
    ("8003", "Waxed Canvas Tote", "Bags", "48.00"),
    ("8004", "Trail Runner 2", "Shoes", "129.00"),
    ("8005", "Organic Cotton Tee", "Tees", "24.00"),
)


def seed_demo(
    session: Session, *, shopify_secret: str, api_key: str, slug: str = DEMO_SLUG
) -> Workspace:
    """Create the demo workspace once; later calls update its secrets and return it."""
    workspace = workspaces.find_workspace(session, slug=slug)
    if workspace is not None:
        workspace.shopify_secret = shopify_secret
        workspace.api_key_hash = workspaces.hash_api_key(api_key)
        return workspace
    workspace = workspaces.create_workspace(
        session,
        slug=slug,
        name=DEMO_NAME,
        timezone="Europe/London",
        shopify_secret=shopify_secret,
        api_key=api_key,
        store_url="https://juniper-and-pine.example",
        support_email="help@juniper-and-pine.example",
    )
    workspace.shopify_shop_domain = "parley-demo.myshopify.com"
    for external_id, title, product_type, price in PRODUCTS:
        commerce.record_product(
            session,
            workspace_id=workspace.id,
            product=events.Product(
                external_id=external_id,
                title=title,
                product_type=product_type,
                vendor=DEMO_NAME,
                status="active",
                variants=[
                    events.Variant(
                        external_id=f"{external_id}1",
                        title="Default",
                        price=Decimal(price),
                        inventory_quantity=25,
                    )
                ],
            ),
        )
    for shopper in SHOPPERS:
        customer_id = customers.resolve_customer_id(
            session,
            workspace_id=workspace.id,
            contact=customers.contact_from(
                events.Customer(external_id=shopper.shopify_id),
                email=shopper.email,
                phone=shopper.phone,
            ),
            profile=events.Customer(
                external_id=shopper.shopify_id,
                first_name=shopper.first_name,
                last_name=shopper.last_name,
                email=shopper.email,
                phone=shopper.phone,
                timezone=shopper.timezone,
            ),
        )
        assert customer_id is not None
        for channel, purpose in shopper.consents:
            customers.record_consent(
                session,
                workspace_id=workspace.id,
                customer_id=customer_id,
                channel=channel,
                purpose=purpose,
                is_granted=True,
                source="demo seed: opt-in at checkout",
            )
    return workspace
