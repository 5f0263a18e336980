"""Seeding the demo store: products, and customers spread over channels, zones and consents.

Every shopper here is invented for the demo. Their Shopify ids match what ``parley
simulate`` sends, so simulated orders land on profiles whose consent decides the channel:
Ada said yes to WhatsApp, Grace only to SMS, Alan gave nothing but an email address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley import events
from parley.accounts import service as accounts
from parley.accounts.models import Membership, Role, User
from parley.clock import utc_now
from parley.commerce import service as commerce
from parley.customers import service as customers
from parley.inbox.models import CannedReply
from parley.messaging.types import Purpose
from parley.settings import Settings
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


@dataclass(frozen=True)
class DemoChannels:
    """The demo store's provider accounts and the secrets their webhooks are signed with:
    the ``PARLEY_DEMO_*`` settings, which the sandbox signs its customer messages with."""

    meta_app_secret: str
    meta_verify_token: str
    twilio_auth_token: str
    mailgun_signing_key: str
    whatsapp_phone_number_id: str
    twilio_number: str
    instagram_account_id: str
    inbound_email: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DemoChannels:
        return cls(
            meta_app_secret=settings.demo_meta_app_secret,
            meta_verify_token=settings.demo_meta_verify_token,
            twilio_auth_token=settings.demo_twilio_auth_token,
            mailgun_signing_key=settings.demo_mailgun_signing_key,
            whatsapp_phone_number_id=settings.whatsapp_phone_number_id,
            twilio_number=settings.twilio_from_number,
            instagram_account_id=settings.instagram_account_id,
            inbound_email=parseaddr(settings.email_from)[1],
        )

    def accounts(self) -> list[tuple[str, str, str, dict[str, str]]]:
        """``(channel, provider, address, secrets)`` for each account."""
        meta = {"app_secret": self.meta_app_secret, "verify_token": self.meta_verify_token}
        return [
            ("whatsapp", "whatsapp_cloud", self.whatsapp_phone_number_id, meta),
            ("instagram", "instagram", self.instagram_account_id, meta),
            ("sms", "twilio", self.twilio_number, {"auth_token": self.twilio_auth_token}),
            ("email", "mailgun", self.inbound_email, {"signing_key": self.mailgun_signing_key}),
        ]


DEMO_POSTAL_ADDRESS = "Juniper & Pine, 14 Harbour Street, Portland, ME 04101, USA"
"""Invented, as the store is: what its marketing email shows (CAN-SPAM)."""

# The store's own words, which the assistant quotes (invented for the demo).
KNOWLEDGE: tuple[dict[str, str], ...] = (
    {
        "title": "Returns policy",
        "text": "You can return unworn items within 30 days of delivery for a full refund. "
        "Start a return from the link in your delivery email; return shipping is free in "
        "the UK and EU.\n\nRefunds go back to the original payment method within 5 "
        "working days of the return reaching our warehouse.",
    },
    {
        "title": "Shipping",
        "text": "We ship to the UK, the EU, the US, Canada and Mexico. Standard delivery "
        "takes 2-4 working days in the UK and 4-8 working days elsewhere; express delivery "
        "takes 1-2 working days.\n\nOrders placed before 2 pm UK time leave our warehouse "
        "the same day.",
    },
    {
        "title": "Size guide",
        "text": "Our knitwear and shirts run true to size; if you are between sizes, take "
        "the larger one. The Trail Runner 2 runs half a size small, so order half a size "
        "up.\n\nChest measurements: S 91-96 cm, M 97-102 cm, L 103-108 cm, XL 109-114 cm.",
    },
    {
        "title": "Payments",
        "text": "We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google "
        "Pay. You are charged when your order is placed.",
    },
    {
        "title": "Orders and cancellations",
        "text": "You can cancel an order free of charge until it ships; after that, return "
        "it instead. There is no cancellation fee.",
    },
    {
        "title": "Your account",
        "text": "Create an account at checkout or from the Sign in page. To reset your "
        "password, use 'Forgot password' on the Sign in page; the link is valid for one "
        "hour. To delete your account, write to us and we will erase your data within 30 "
        "days.",
    },
    {
        "title": "Product care",
        "text": "Merino wool: hand wash cold or use a wool cycle, dry flat. Waxed canvas: "
        "wipe clean, re-wax once a year. Linen and organic cotton: machine wash at 30 °C.",
    },
)

PRODUCTS: tuple[tuple[str, str, str, str], ...] = (
    ("8001", "Merino Crew Sweater", "Knitwear", "89.00"),
    ("8002", "Linen Camp Shirt", "Shirts", "64.00"),
    ("8003", "Waxed Canvas Tote", "Bags", "48.00"),
    ("8004", "Trail Runner 2", "Shoes", "129.00"),
    ("8005", "Organic Cotton Tee", "Tees", "24.00"),
)


def seed_demo(
    session: Session,
    *,
    shopify_secret: str,
    api_key: str,
    slug: str = DEMO_SLUG,
    channels: DemoChannels | None = None,
) -> Workspace:
    """Create the demo workspace once; later calls update its secrets and return it."""
    channels = channels or DemoChannels.from_settings(Settings())
    workspace = workspaces.find_workspace(session, slug=slug)
    if workspace is not None:
        workspace.shopify_secret = shopify_secret
        workspace.api_key_hash = workspaces.hash_api_key(api_key)
        _connect_channels(session, workspace, channels)
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
    workspace.settings = {
        "knowledge": [dict(section) for section in KNOWLEDGE],
        "return_window_days": 30,
        "review_url": "https://juniper-and-pine.example/pages/reviews",
        "postal_address": DEMO_POSTAL_ADDRESS,
    }
    _connect_channels(session, workspace, channels)
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
    seed_canned_replies(session, workspace)
    return workspace


CANNED_REPLIES: tuple[tuple[str, str, str], ...] = (
    (
        "tracking",
        "Where is my order",
        "Hi {{ customer.first_name or 'there' }}, your order"
        "{% if order.name %} {{ order.name }}{% endif %} is on its way"
        "{% if order.tracking_url %}: you can follow it here {{ order.tracking_url }}{% endif %}."
        " Anything else I can help with?\n{{ agent.first_name }}, {{ store.name }}",
    ),
    (
        "returns",
        "How to return an item",
        "Hi {{ customer.first_name or 'there' }}, you can return anything within 30 days of "
        "delivery: reply with the item and the reason and we'll send a free return label."
        "\n{{ agent.first_name }}, {{ store.name }}",
    ),
    (
        "thanks",
        "Thanks, closing",
        "Thanks for getting in touch, {{ customer.first_name or 'and have a lovely day' }}! "
        "If anything else comes up, just reply here.\n{{ agent.first_name }}, {{ store.name }}",
    ),
)


def seed_canned_replies(session: Session, workspace: Workspace) -> None:
    """A few canned replies agents use every day, so the composer's picker has something."""
    now = utc_now()
    for shortcut, title, body in CANNED_REPLIES:
        session.add(
            CannedReply(
                workspace_id=workspace.id,
                shortcut=shortcut,
                title=title,
                body=body,
                created_at=now,
                updated_at=now,
            )
        )


DEMO_AGENT_EMAIL = "agent@demo.parley.test"


def seed_demo_store(session: Session, settings: Settings) -> Workspace:
    """What ``parley demo`` seeds before it serves, from its settings: the store with its
    channels, and its team; a run again brings their secrets and sign-in up to date."""
    workspace = seed_demo(
        session,
        shopify_secret=settings.demo_shopify_secret,
        api_key=settings.demo_api_key,
        channels=DemoChannels.from_settings(settings),
    )
    seed_demo_team(
        session,
        workspace=workspace,
        admin_email=settings.demo_admin_email,
        password=settings.demo_admin_password,
        now=utc_now(),
    )
    return workspace


def seed_demo_team(
    session: Session, *, workspace: Workspace, admin_email: str, password: str, now: datetime
) -> None:
    """The demo's admin and one agent, both with ``password``; kept as they are if present."""
    for email, name, role in (
        (admin_email, "Avery Admin", Role.ADMIN),
        (DEMO_AGENT_EMAIL, "Sam Agent", Role.AGENT),
    ):
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = accounts.create_user(session, email=email, name=name, password=password, now=now)
        member = session.scalar(
            select(Membership).where(
                Membership.workspace_id == workspace.id, Membership.user_id == user.id
            )
        )
        if member is None:
            accounts.add_member(
                session, workspace_id=workspace.id, user_id=user.id, role=role, now=now
            )


def _connect_channels(session: Session, workspace: Workspace, channels: DemoChannels) -> None:
    """Connect each demo account, or bring its secrets up to date if connected."""
    connected = {
        (account.provider, account.address): account
        for provider in ("whatsapp_cloud", "instagram", "twilio", "mailgun")
        for account in workspaces.channel_accounts(
            session, workspace_id=workspace.id, provider=provider
        )
    }
    for channel, provider, address, secrets in channels.accounts():
        account = connected.get((provider, address))
        if account is not None:
            account.secrets = dict(secrets)
            continue
        workspaces.add_channel_account(
            session,
            workspace_id=workspace.id,
            channel=channel,
            provider=provider,
            address=address,
            secrets=secrets,
        )
