"""Creating stores and connecting their provider accounts: what is kept, what is refused."""

from __future__ import annotations

import pytest

from parley.errors import Conflict, Invalid
from parley.workspaces import service as workspaces
from parley.workspaces.credentials import CHANNEL_PROVIDERS
from parley.workspaces.models import ChannelAccount, Workspace
from support import count, rows, seed


def _connect(db, workspace_id: int, address: str, provider: str = "twilio") -> ChannelAccount:
    with db.transaction() as session:
        return workspaces.add_channel_account(
            session,
            workspace_id=workspace_id,
            channel=CHANNEL_PROVIDERS[provider][0],
            provider=provider,
            address=address,
            secrets={"auth_token": "t0k"},
        )


def _addresses(db) -> list[tuple[int, str]]:
    return [(account.id, account.address) for account in rows(db, ChannelAccount)]


def test_a_twilio_number_typed_with_spaces_is_kept_in_e164_and_is_one_account(db):
    workspace_id = seed(db)

    account = _connect(db, workspace_id, " +1 (555) 000-2222 ")

    (saved,) = rows(db, ChannelAccount, ChannelAccount.id == account.id)
    assert saved.address == "+15550002222"
    with pytest.raises(Conflict, match=r"twilio account \+15550002222 is already connected"):
        _connect(db, workspace_id, "+15550002222")
    assert count(db, ChannelAccount, ChannelAccount.provider == "twilio") == 2  # the demo's too


@pytest.mark.parametrize("address", ["555 000 2222", "my-number", "+1", "+1555000222233334444"])
def test_a_twilio_address_that_is_no_phone_number_is_refused_and_nothing_is_connected(db, address):
    workspace_id = seed(db)
    before = _addresses(db)

    with pytest.raises(Invalid, match=r"a Twilio number in E\.164 form, e\.g\. \+15551234567"):
        _connect(db, workspace_id, address)

    assert _addresses(db) == before


def test_a_twilio_messaging_service_is_connected_by_its_sid(db):
    workspace_id = seed(db)

    account = _connect(db, workspace_id, " MG0123456789ABCDEF0123456789abcdef ")

    assert account.address == "MG0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("provider", "address", "said"),
    [
        ("whatsapp_cloud", "+1 555 000 1111", "the WhatsApp phone number id: digits only"),
        ("instagram", "@juniper.pine", "the Instagram account id: digits only"),
        ("mailgun", "support at shop", "the inbound email address"),
    ],
)
def test_an_account_address_its_provider_never_names_is_refused(db, provider, address, said):
    workspace_id = seed(db)
    before = _addresses(db)

    with pytest.raises(Invalid, match=said):
        _connect(db, workspace_id, address, provider)

    assert _addresses(db) == before


def test_meta_ids_and_inbound_addresses_are_kept_as_their_webhooks_name_them(db):
    workspace_id = seed(db)

    kept = [
        _connect(db, workspace_id, " 109876543210 ", "whatsapp_cloud").address,
        _connect(db, workspace_id, "17841400000000099", "instagram").address,
        _connect(db, workspace_id, " Help@Shop.example ", "mailgun").address,
    ]

    assert kept == ["109876543210", "17841400000000099", "help@shop.example"]


def test_a_store_with_an_unknown_time_zone_is_refused_and_not_created(db):
    with (
        db.transaction() as session,
        pytest.raises(Invalid, match="unknown time zone 'Mars/Olympus'"),
    ):
        workspaces.create_workspace(session, slug="mars", name="Mars", timezone="Mars/Olympus")

    assert count(db, Workspace) == 0


@pytest.mark.parametrize("slug", ["acme/eu", "Acme", "acme eu", "-acme", "", "a" * 65, "acme?x"])
def test_a_store_whose_slug_no_webhook_address_can_name_is_refused(db, slug):
    with db.transaction() as session, pytest.raises(Invalid, match="a store's slug is 1 to 64"):
        workspaces.create_workspace(session, slug=slug, name="Acme")

    assert count(db, Workspace) == 0
