"""The process's adapters: the deployment's by channel, a store account's own built once
for its credentials, built again when they change, and every one of them closed."""

from __future__ import annotations

import asyncio

import pytest

from parley.channels.adapters import ChannelAdapters
from parley.channels.base import ChannelKind, OutboundMessage, SendingAccount
from parley.channels.instagram.adapter import Instagram
from parley.channels.registry import build_account_adapter
from parley.channels.twilio_sms.adapter import TwilioSms
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.settings import Settings


class Closing:
    """An adapter that counts its closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


def _account(version: str, address: str = "200000000000002") -> SendingAccount:
    return SendingAccount(
        provider="whatsapp_cloud",
        address=address,
        credentials=(("access_token", f"token-{version}"),),
        version=version,
    )


def _message(account: SendingAccount | None = None) -> OutboundMessage:
    return OutboundMessage(idempotency_key="k", to="447911123456", text="hi", account=account)


def test_a_store_accounts_adapter_is_built_once_per_version_of_its_credentials():
    deployment = Closing("deployment")
    built: list[Closing] = []

    def build(account: SendingAccount) -> Closing:
        built.append(Closing(f"{account.address}@{account.version}"))
        return built[-1]

    adapters = ChannelAdapters({ChannelKind.WHATSAPP: deployment}, build=build)  # type: ignore[dict-item]

    assert adapters.for_message(ChannelKind.WHATSAPP, _message()) is deployment
    first = adapters.for_message(ChannelKind.WHATSAPP, _message(_account("v1")))
    again = adapters.for_message(ChannelKind.WHATSAPP, _message(_account("v1")))
    rotated = adapters.for_message(ChannelKind.WHATSAPP, _message(_account("v2")))
    other = adapters.for_message(ChannelKind.WHATSAPP, _message(_account("v1", "300")))

    assert [adapter.name for adapter in built] == [
        "200000000000002@v1",
        "200000000000002@v2",
        "300@v1",
    ]
    assert first is again is built[0]
    assert (rotated, other) == (built[1], built[2])
    assert first.closed == 0  # replaced, but a send begun before may still be using it

    asyncio.run(adapters.aclose())

    assert [deployment.closed, *(adapter.closed for adapter in built)] == [1, 1, 1, 1]


def test_without_a_way_to_build_them_a_store_account_is_refused_not_sent_from_the_deployment():
    adapters = ChannelAdapters.of({ChannelKind.WHATSAPP: Closing("deployment")})  # type: ignore[dict-item]
    with pytest.raises(LookupError, match="no adapter is set up for store accounts"):
        adapters.for_message(ChannelKind.WHATSAPP, _message(_account("v1")))
    assert ChannelAdapters.of(adapters) is adapters


@pytest.mark.parametrize(
    ("account", "cls", "wanted"),
    [
        pytest.param(
            SendingAccount(
                "whatsapp_cloud",
                "200000000000002",
                (("access_token", "wa-token"), ("business_account_id", "2222")),
                "v1",
            ),
            WhatsappCloud,
            {
                "messages_url": "https://graph.facebook.com/v21.0/200000000000002/messages",
                "templates_url": "https://graph.facebook.com/v21.0/2222/message_templates",
                "_headers": {"Authorization": "Bearer wa-token"},
            },
            id="whatsapp",
        ),
        pytest.param(
            SendingAccount(
                "twilio",
                "+15005550199",
                (("account_sid", "AC" + "1" * 32), ("auth_token", "tw-token")),
                "v1",
            ),
            TwilioSms,
            {
                "from_number": "+15005550199",
                "account_sid": "AC" + "1" * 32,
                "messages_url": f"https://api.twilio.com/2010-04-01/Accounts/AC{'1' * 32}"
                "/Messages.json",
            },
            id="twilio",
        ),
        pytest.param(
            SendingAccount("instagram", "17841400000000002", (("access_token", "ig"),), "v1"),
            Instagram,
            {
                "account_id": "17841400000000002",
                "_headers": {"Authorization": "Bearer ig"},
            },
            id="instagram",
        ),
    ],
)
def test_a_store_accounts_adapter_speaks_for_that_account_at_the_deployments_addresses(
    account, cls, wanted
):
    adapter = build_account_adapter(Settings(_env_file=None), account)  # type: ignore[call-arg]
    try:
        assert isinstance(adapter, cls)
        assert {name: getattr(adapter, name) for name in wanted} == wanted
    finally:
        asyncio.run(adapter.aclose())
