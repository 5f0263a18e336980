"""A store that connects its own WhatsApp number or Twilio account sends from it; a store
that connected none sends from the deployment's. Driven through the real adapters against
the sandbox's stand-ins of both APIs, on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from parley.alerts.rules import Thresholds
from parley.alerts.watch import watch
from parley.channels.adapters import ChannelAdapters
from parley.channels.base import ChannelKind
from parley.channels.registry import build_account_adapter
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.clock import utc_now
from parley.db import Database
from parley.demo.seed import DemoChannels, seed_demo
from parley.inbox.models import Conversation
from parley.messaging.models import Message, MessageStatus, SenderPace
from parley.messaging.pace import Allowance, Pacer, Sender
from parley.messaging.replies import reply_channels
from parley.messaging.senders import sending_accounts
from parley.sandbox.accounts import SandboxAccounts
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.store import SandboxStore
from parley.settings import Settings
from parley.workspaces.models import ChannelAccount, Workspace
from parley.workspaces.service import create_workspace
from support import (
    SECRET,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    make_worker,
    post,
    recording_adapters,
    rows,
    seed,
)

DEPLOYMENT_SID = "AC00000000000000000000000000000001"
DEPLOYMENT_TOKEN = "deployment-twilio-token"
DEPLOYMENT_NUMBER = "+15005550006"
DEPLOYMENT_PHONE_ID = "100000000000001"
DEPLOYMENT_WA_TOKEN = "deployment-whatsapp-token"

NORTH_SID = "AC0123456789abcdef0123456789abcdef"
NORTH_TWILIO_TOKEN = "north-twilio-token"
NORTH_NUMBER = "+15005550199"
NORTH_PHONE_ID = "200000000000002"
NORTH_WA_TOKEN = "north-whatsapp-token"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        twilio_base_url="http://sandbox.test/twilio",
        twilio_account_sid=DEPLOYMENT_SID,
        twilio_auth_token=DEPLOYMENT_TOKEN,
        twilio_from_number=DEPLOYMENT_NUMBER,
        whatsapp_base_url="http://sandbox.test/whatsapp",
        whatsapp_phone_number_id=DEPLOYMENT_PHONE_ID,
        whatsapp_access_token=DEPLOYMENT_WA_TOKEN,
    )


@pytest.fixture
def captured() -> SandboxStore:
    return SandboxStore()


@pytest.fixture
def providers(settings: Settings, captured: SandboxStore) -> SandboxAccounts:
    """Twilio and Meta as the sandbox stands in for them: the deployment's accounts and
    the north store's own, each with its own credentials."""
    accounts = SandboxAccounts.from_settings(settings)
    accounts.add_twilio(NORTH_SID, NORTH_TWILIO_TOKEN, NORTH_NUMBER)
    accounts.add_whatsapp(NORTH_PHONE_ID, NORTH_WA_TOKEN)
    return accounts


@pytest.fixture
def senders(
    settings: Settings, captured: SandboxStore, providers: SandboxAccounts
) -> Iterator[ChannelAdapters]:
    app = create_sandbox_app(captured, settings, status_webhooks=False, accounts=providers)
    transport = httpx2.ASGITransport(app=app)
    default: dict[ChannelKind, Any] = recording_adapters()
    default[ChannelKind.SMS] = TwilioSms.from_settings(settings, transport=transport)
    default[ChannelKind.WHATSAPP] = WhatsappCloud.from_settings(settings, transport=transport)
    adapters = ChannelAdapters(
        default,
        build=lambda account: build_account_adapter(settings, account, transport=transport),
    )
    yield adapters
    asyncio.run(adapters.aclose())


def _north(db: Database) -> int:
    """A second store on the deployment, with its own WhatsApp number and Twilio number
    connected for its webhooks (not yet for sending)."""
    channels = DemoChannels(
        meta_app_secret="north-meta-secret",
        meta_verify_token="north-verify",
        twilio_auth_token=NORTH_TWILIO_TOKEN,
        mailgun_signing_key="north-mailgun",
        whatsapp_phone_number_id=NORTH_PHONE_ID,
        twilio_number=NORTH_NUMBER,
        instagram_account_id="17841400000000002",
        inbound_email="help@north.example",
    )
    with db.transaction() as session:
        return seed_demo(
            session, shopify_secret=SECRET, api_key="north-key", slug="north", channels=channels
        ).id


def _give(db: Database, workspace_id: int, provider: str, **secrets: str) -> None:
    """The store enters sending fields on its account (as Settings → Channels saves them)."""
    with db.transaction() as session:
        account = session.scalars(
            select(ChannelAccount).where(
                ChannelAccount.workspace_id == workspace_id, ChannelAccount.provider == provider
            )
        ).one()
        account.secrets = {**account.secrets, **secrets}
        account.updated_at = utc_now()


def _ship(db: Database, slug: str, first_name: str, order_id: int) -> None:
    placed, dispatched, *_ = deliveries(first_name, order_id=order_id, number=order_id + 1000)
    post(db, placed, slug=slug)
    post(db, dispatched, slug=slug)


def _dispatches(db: Database, workspace_id: int) -> list[tuple[str, str]]:
    return sorted(
        (str(m.channel), str(m.status))
        for m in rows(db, Message, Message.workspace_id == workspace_id)
        if m.message_type == "dispatch"
    )


def _sent_from(captured: SandboxStore, channel: str) -> list[tuple[str, str]]:
    return [(m.sender, m.to) for m in captured.list(channel)]


def test_a_store_with_its_own_numbers_sends_from_them_and_another_from_the_deployments(
    db, frozen_clock, settings, captured, senders
):
    # Given the demo store, sending from the deployment's numbers, and the north store,
    # which enters its WhatsApp access token and its Twilio account SID
    demo = seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token=NORTH_WA_TOKEN)
    _give(db, north, "twilio", account_sid=NORTH_SID)

    # When each store ships an order to Ada (WhatsApp) and one to Grace (SMS only)
    for slug, base in (("demo", 500), ("north", 700)):
        _ship(db, slug, "Ada", base + 1)
        _ship(db, slug, "Grace", base + 2)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # Then each store's messages went from its own numbers, the demo's from the deployment's
    assert _sent_from(captured, "whatsapp") == [
        (DEPLOYMENT_PHONE_ID, "447911123456"),
        (NORTH_PHONE_ID, "447911123456"),
    ]
    assert _sent_from(captured, "sms") == [
        (DEPLOYMENT_NUMBER, "+12025550143"),
        (NORTH_NUMBER, "+12025550143"),
    ]
    assert (
        _dispatches(db, demo)
        == _dispatches(db, north)
        == [
            ("sms", MessageStatus.SENT),
            ("whatsapp", MessageStatus.SENT),
        ]
    )


def test_a_store_number_is_paced_on_its_own_row_not_the_deployments(
    db, frozen_clock, captured, senders
):
    # Given WhatsApp numbers paced at 1 message a second, the deployment's and north's
    seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token=NORTH_WA_TOKEN)
    pacer = Pacer({ChannelKind.WHATSAPP: Sender(f"whatsapp:{DEPLOYMENT_PHONE_ID}", Allowance(1))})

    # When both stores dispatch to Ada in the same batch
    _ship(db, "demo", "Ada", 501)
    _ship(db, "north", "Ada", 701)
    drain(make_worker(db, senders, pacer=pacer))  # type: ignore[arg-type]

    # Then neither waited for the other: each number spent its own allowance
    assert [sender for sender, _ in _sent_from(captured, "whatsapp")] == [
        DEPLOYMENT_PHONE_ID,
        NORTH_PHONE_ID,
    ]
    assert [row.sender for row in rows(db, SenderPace, order_by=lambda m: m.sender)] == [
        f"whatsapp:{DEPLOYMENT_PHONE_ID}",
        f"whatsapp:{NORTH_PHONE_ID}",
    ]


def test_a_refused_store_token_is_not_sent_from_the_deployments_number_instead(
    db, frozen_clock, captured, senders
):
    # Given north's WhatsApp token is one Meta does not know
    seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token="a-token-meta-revoked")

    # When north dispatches to Ada
    _ship(db, "north", "Ada", 701)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # Then nothing went out on WhatsApp from any number, and the refusal is on record
    assert captured.list("whatsapp") == []
    [refused] = [
        m
        for m in rows(db, Message, Message.workspace_id == north)
        if m.message_type == "dispatch" and m.channel == "whatsapp"
    ]
    assert (refused.status, refused.status_reason) == (
        MessageStatus.FAILED,
        "WhatsApp rejected the message (HTTP 401, error 190): Invalid OAuth access token.",
    )
    # and the dispatch fell back to Ada's next channel, as for any refused account
    assert _dispatches(db, north) == [("email", MessageStatus.SENT), ("whatsapp", "failed")]


def _watch(db: Database) -> dict[str, tuple[bool, str]]:
    """The deployment's alert watch once: each change, firing or not, and what it says."""
    with db.transaction() as session:
        changes = watch(session, Thresholds(), now=utc_now(), notify=False)
    return {change.name: (change.firing, change.summary) for change in changes}


def test_a_refused_store_account_is_kept_alerted_and_cleared_by_a_send_that_goes_through(
    db, frozen_clock, captured, providers, senders
):
    # Given north's WhatsApp token is one Meta does not know, and north dispatches to Ada
    seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token="a-token-meta-revoked")
    _ship(db, "north", "Ada", 701)
    drain(make_worker(db, senders))  # type: ignore[arg-type]
    refused_at = utc_now()

    # Then the account keeps when and why, and the deployment's alert names it
    reason = "WhatsApp rejected the message (HTTP 401, error 190): Invalid OAuth access token."
    [account] = rows(db, ChannelAccount, ChannelAccount.address == NORTH_PHONE_ID)
    assert (account.refused_at, account.refused_reason) == (refused_at, reason)
    assert _watch(db)["refused_accounts"] == (
        True,
        "1 store account refused by the provider (the latest, store 'north''s "
        f"whatsapp_cloud {NORTH_PHONE_ID} since 2026-03-02 10:00 UTC: {reason}). Their "
        "messages go on the next channel meanwhile; the store replaces the secrets on "
        "Settings → Channels, or fixes the account at the provider.",
    )

    # When the store's token works again (Meta reinstated it) and a send from it goes
    frozen_clock.advance(timedelta(minutes=5))
    providers.add_whatsapp(NORTH_PHONE_ID, "a-token-meta-revoked")
    _ship(db, "north", "Ada", 702)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # Then the refusal is cleared, and the alert resolves
    [account] = rows(db, ChannelAccount, ChannelAccount.address == NORTH_PHONE_ID)
    assert (account.refused_at, account.refused_reason) == (None, None)
    assert [sender for sender, _ in _sent_from(captured, "whatsapp")] == [NORTH_PHONE_ID]
    assert _watch(db)["refused_accounts"][0] is False


def test_a_new_token_is_used_from_the_next_send(db, frozen_clock, captured, providers, senders):
    # Given north sends from its own number with its first token
    seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token=NORTH_WA_TOKEN)
    _ship(db, "north", "Ada", 701)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # When Meta issues it a new token (the old one stops working) and the store saves it
    providers.add_whatsapp(NORTH_PHONE_ID, "north-whatsapp-token-2")
    frozen_clock.advance(timedelta(seconds=1))
    _give(db, north, "whatsapp_cloud", access_token="north-whatsapp-token-2")
    _ship(db, "north", "Ada", 702)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # Then the second dispatch went too, with the new token, from the same number
    assert [sender for sender, _ in _sent_from(captured, "whatsapp")] == [
        NORTH_PHONE_ID,
        NORTH_PHONE_ID,
    ]


def test_a_paused_account_sends_nothing_and_the_store_sends_from_the_deployments(
    db, frozen_clock, captured, senders
):
    seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token=NORTH_WA_TOKEN)
    with db.transaction() as session:
        account = session.scalars(
            select(ChannelAccount).where(
                ChannelAccount.workspace_id == north, ChannelAccount.provider == "whatsapp_cloud"
            )
        ).one()
        account.is_active = False
        account.updated_at = utc_now()

    _ship(db, "north", "Ada", 701)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    assert _sent_from(captured, "whatsapp") == [(DEPLOYMENT_PHONE_ID, "447911123456")]


def test_only_an_account_holding_what_its_provider_takes_sends(db, frozen_clock):
    # Given north's accounts: WhatsApp with only its webhook secrets, Twilio with its SID
    seed(db)
    north = _north(db)
    _give(db, north, "twilio", account_sid=NORTH_SID)

    with db.transaction() as session:
        found = sending_accounts(session, [1, north, 999])

    # Then north sends SMS from its own account and WhatsApp from the deployment's, the
    # demo store and an unknown store from the deployment's on every channel
    assert found[1] == {}
    assert found[999] == {}
    [(channel, account)] = found[north].items()
    assert channel is ChannelKind.SMS
    assert (account.provider, account.address) == ("twilio", NORTH_NUMBER)
    assert dict(account.credentials) == {
        "account_sid": NORTH_SID,
        "auth_token": NORTH_TWILIO_TOKEN,
    }
    assert NORTH_TWILIO_TOKEN not in repr(account)


def test_the_first_connected_of_two_sending_accounts_sends(db, frozen_clock):
    seed(db)
    north = _north(db)
    _give(db, north, "whatsapp_cloud", access_token=NORTH_WA_TOKEN)
    with db.transaction() as session:
        now = utc_now()
        session.add(
            ChannelAccount(
                workspace_id=north,
                channel="whatsapp",
                provider="whatsapp_cloud",
                address="300000000000003",
                secrets={"app_secret": "s", "verify_token": "v", "access_token": "t"},
                secret_fields={},
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )
    with db.transaction() as session:
        account = sending_accounts(session, [north])[north][ChannelKind.WHATSAPP]
        workspace = session.get_one(Workspace, north)
    assert account.address == NORTH_PHONE_ID
    assert workspace.slug == "north"


def test_the_reply_to_a_customer_goes_from_the_stores_own_number(
    db, frozen_clock, tmp_path, captured, senders
):
    # Given north sends SMS from its own Twilio number, and the demo store does not
    seed(db)
    north = _north(db)
    _give(db, north, "twilio", account_sid=NORTH_SID)

    # When Grace texts each store and the assistant answers
    worker = inbox_worker(db, senders, tmp_model_dir=tmp_path)  # type: ignore[arg-type]
    customer_writes(db, channel=ChannelKind.SMS, sender="+12025550143", text="hello", slug="north")
    customer_writes(db, channel=ChannelKind.SMS, sender="+12025550143", text="hello")
    drain(worker)

    # Then north's answer came from north's number, the demo's from the deployment's
    assert sorted(_sent_from(captured, "sms")) == [
        (DEPLOYMENT_NUMBER, "+12025550143"),
        (NORTH_NUMBER, "+12025550143"),
    ]


NORTH_SECOND_NUMBER = "+15005550198"


def _second_twilio_number(db: Database, providers: SandboxAccounts, north: int) -> None:
    """North's second number on its Twilio account, connected to send as well."""
    providers.add_twilio(NORTH_SID, NORTH_TWILIO_TOKEN, NORTH_SECOND_NUMBER)
    with db.transaction() as session:
        now = utc_now()
        session.add(
            ChannelAccount(
                workspace_id=north,
                channel="sms",
                provider="twilio",
                address=NORTH_SECOND_NUMBER,
                secrets={"auth_token": NORTH_TWILIO_TOKEN, "account_sid": NORTH_SID},
                secret_fields={},
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )


def _store_addresses(db: Database, workspace_id: int) -> list[tuple[str, str, str | None]]:
    return [
        (str(m.direction), str(m.message_type), m.store_address)
        for m in rows(db, Message, Message.workspace_id == workspace_id)
    ]


def test_a_reply_goes_from_the_number_the_customer_wrote_to_and_each_message_keeps_it(
    db, frozen_clock, tmp_path, captured, providers, senders
):
    # Given north sends from two numbers of its Twilio account, the first connected first
    seed(db)
    north = _north(db)
    _give(db, north, "twilio", account_sid=NORTH_SID)
    _second_twilio_number(db, providers, north)

    # When Grace texts north's second number, and north's dispatch to her goes out
    worker = inbox_worker(db, senders, tmp_model_dir=tmp_path)  # type: ignore[arg-type]
    customer_writes(
        db,
        channel=ChannelKind.SMS,
        sender="+12025550143",
        text="hello",
        slug="north",
        account=NORTH_SECOND_NUMBER,
    )
    drain(worker)
    _ship(db, "north", "Grace", 701)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # Then the answer came from the number she wrote to, the dispatch from the first;
    # each message keeps the store's number it came to or went from
    assert _sent_from(captured, "sms") == [
        (NORTH_SECOND_NUMBER, "+12025550143"),
        (NORTH_NUMBER, "+12025550143"),
    ]
    assert [entry for entry in _store_addresses(db, north) if entry[1] != "order_confirmation"] == [
        ("inbound", "inbound", NORTH_SECOND_NUMBER),
        ("outbound", "reply", NORTH_SECOND_NUMBER),
        ("outbound", "dispatch", NORTH_NUMBER),
    ]


def test_a_reply_to_a_number_the_store_does_not_send_from_goes_from_the_channels(
    db, frozen_clock, tmp_path, captured, senders
):
    # Given the demo store receives on the deployment's number and sends from no number
    # of its own: Grace's text came to +15005550006, connected for its webhooks only
    seed(db)
    worker = inbox_worker(db, senders, tmp_model_dir=tmp_path)  # type: ignore[arg-type]
    customer_writes(
        db, channel=ChannelKind.SMS, sender="+12025550143", text="hello", account=DEPLOYMENT_NUMBER
    )
    drain(worker)

    assert _sent_from(captured, "sms") == [(DEPLOYMENT_NUMBER, "+12025550143")]
    assert _store_addresses(db, 1) == [
        ("inbound", "inbound", DEPLOYMENT_NUMBER),
        ("outbound", "reply", None),
    ]


def test_a_stores_email_asks_for_replies_at_its_own_inbound_address(
    db, frozen_clock, tmp_path, senders
):
    # Given north connected help@north.example for its inbound email, and a store with
    # no inbound address at all
    seed(db)
    _north(db)
    with db.transaction() as session:
        create_workspace(session, slug="bare", name="Bare", shopify_secret=SECRET)

    # When each store confirms an order, and the assistant answers Grace's email to north
    for slug, order_id in (("demo", 501), ("north", 701), ("bare", 901)):
        placed, *_ = deliveries("Grace", order_id=order_id, number=order_id + 1000)
        post(db, placed, slug=slug)
    customer_writes(
        db, channel=ChannelKind.EMAIL, sender="grace@example.com", text="hello", slug="north"
    )
    drain(inbox_worker(db, senders, tmp_model_dir=tmp_path))  # type: ignore[arg-type]

    # Then north's two emails (north is seeded as a copy of the demo store, name and all)
    # ask for replies at north's inbound address; the demo store's at its own (the
    # deployment's From, so no Reply-To is written); the bare store's nowhere
    emails = senders[ChannelKind.EMAIL].sent  # type: ignore[attr-defined]
    by_store = sorted(
        (message.sender_name, message.subject or "", message.reply_address) for message in emails
    )
    assert [(name, reply) for name, _, reply in by_store] == [
        ("Bare", None),
        ("Juniper & Pine", "orders@demo.parley.test"),
        ("Juniper & Pine", "help@north.example"),
        ("Juniper & Pine", "help@north.example"),
    ]


DEMO_OWN_PHONE_ID = "300000000000003"
ADA_WA_ID = "447911123456"


def _own_whatsapp_number(db: Database, providers: SandboxAccounts) -> None:
    """The demo store connects a WhatsApp number of its own to send from; it still
    receives on the deployment's, connected for its webhooks only."""
    providers.add_whatsapp(DEMO_OWN_PHONE_ID, "demo-own-token")
    with db.transaction() as session:
        now = utc_now()
        session.add(
            ChannelAccount(
                workspace_id=1,
                channel="whatsapp",
                provider="whatsapp_cloud",
                address=DEMO_OWN_PHONE_ID,
                secrets={"app_secret": "s", "verify_token": "v", "access_token": "demo-own-token"},
                secret_fields={},
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )


def _whatsapp_sent(captured: SandboxStore) -> list[tuple[str, str, str | None]]:
    """Each WhatsApp message the sandbox took: from, to, and its template (None: text)."""
    return [
        (m.sender, m.to, m.template["name"] if m.template else None)
        for m in captured.list("whatsapp")
    ]


@pytest.mark.parametrize(
    ("written_to", "dispatch"),
    [
        (DEPLOYMENT_PHONE_ID, "order_dispatched"),
        (DEMO_OWN_PHONE_ID, None),
    ],
    ids=["to-the-deployments-number", "to-the-stores-own"],
)
def test_a_dispatch_is_free_text_only_when_she_wrote_to_the_number_it_goes_from(
    db, frozen_clock, captured, providers, senders, written_to, dispatch
):
    # Given the demo store sends from its own number, and Ada wrote to one of its numbers
    # an hour ago
    seed(db)
    _own_whatsapp_number(db, providers)
    customer_writes(
        db, channel=ChannelKind.WHATSAPP, sender="+" + ADA_WA_ID, text="hi", account=written_to
    )
    frozen_clock.advance(timedelta(hours=1))

    # When her order ships
    _ship(db, "demo", "Ada", 501)
    drain(make_worker(db, senders))  # type: ignore[arg-type]

    # Then the dispatch went from the store's number: as free text inside that number's
    # window, as the approved template when she wrote only to the deployment's
    assert _whatsapp_sent(captured) == [(DEMO_OWN_PHONE_ID, ADA_WA_ID, dispatch)]


def test_a_reply_to_the_deployments_number_goes_from_it_though_the_store_sends_from_its_own(
    db, frozen_clock, tmp_path, captured, providers, senders
):
    # Given the demo store sends from its own number, and Ada writes to the deployment's
    seed(db)
    _own_whatsapp_number(db, providers)
    worker = inbox_worker(db, senders, tmp_model_dir=tmp_path)  # type: ignore[arg-type]
    customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender="+" + ADA_WA_ID,
        text="hello",
        account=DEPLOYMENT_PHONE_ID,
    )
    drain(worker)

    # Then the answer came as free text from the number she wrote to, whose window her
    # message opened, and the reply records the deployment's
    assert _whatsapp_sent(captured) == [(DEPLOYMENT_PHONE_ID, ADA_WA_ID, None)]
    assert _store_addresses(db, 1) == [
        ("inbound", "inbound", DEPLOYMENT_PHONE_ID),
        ("outbound", "reply", None),
    ]


def test_a_reply_to_a_number_the_store_no_longer_sends_from_waits_for_a_template(
    db, frozen_clock, tmp_path, captured, providers, senders
):
    # Given Ada wrote to the store's own number an hour ago, and the store paused it since
    seed(db)
    _own_whatsapp_number(db, providers)
    received = customer_writes(
        db,
        channel=ChannelKind.WHATSAPP,
        sender="+" + ADA_WA_ID,
        text="agent please",
        account=DEMO_OWN_PHONE_ID,
    )
    frozen_clock.advance(timedelta(hours=1))
    with db.transaction() as session:
        own = session.scalars(
            select(ChannelAccount).where(ChannelAccount.address == DEMO_OWN_PHONE_ID)
        ).one()
        own.is_active = False
        own.updated_at = utc_now()

    # When an agent looks at her conversation's channels
    with db.transaction() as session:
        workspace = session.get_one(Workspace, 1)
        conversation = session.get_one(Conversation, received.conversation_id)
        options = reply_channels(
            session, workspace=workspace, conversation=conversation, now=utc_now()
        )
    whatsapp = next(o for o in options if o.channel is ChannelKind.WHATSAPP)

    # Then free text is refused: the reply would go from the deployment's number, whose
    # window she never opened; an approved template may go
    assert (whatsapp.recipient, whatsapp.refusal, whatsapp.needs_template) == (
        "+" + ADA_WA_ID,
        "outside WhatsApp's 24-hour window: only an approved template may be sent until the "
        "customer writes again",
        True,
    )
    drain(inbox_worker(db, senders, tmp_model_dir=tmp_path))  # type: ignore[arg-type]
    assert captured.list("whatsapp") == []
