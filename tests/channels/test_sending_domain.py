"""The sending domain's SPF, DKIM and DMARC, read over real DNS (UDP) from the sandbox's
nameserver with each record set as a domain owner might have it (RELIABILITY S12)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from tests.channels.conftest import start_smtp_server

from parley.channels.base import ChannelKind
from parley.channels.email_smtp.domain import DnsUnavailable, check_domain, make_resolver
from parley.channels.registry import check_providers
from parley.sandbox.nameserver import SandboxNameserver, demo_zone
from parley.settings import get_settings

pytestmark = pytest.mark.anyio

SHOP = "shop.example"
KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "q" * 300 + "IDAQAB"
GOOD = {
    SHOP: ["v=spf1 include:_spf.relay.example -all", "google-site-verification=abc"],
    f"s1._domainkey.{SHOP}": [f"v=DKIM1; k=rsa; p={KEY}"],
    f"_dmarc.{SHOP}": ["v=DMARC1; p=quarantine; rua=mailto:d@shop.example"],
}


@pytest.fixture
async def nameserver() -> AsyncIterator[SandboxNameserver]:
    server = SandboxNameserver({name: list(records) for name, records in GOOD.items()}, port=0)
    await server.start()
    yield server
    server.stop()


async def _check(server: SandboxNameserver, domain: str = SHOP, selector: str | None = "s1"):
    resolver = make_resolver([f"127.0.0.1:{server.port}"], timeout=2)
    return await check_domain(domain, dkim_selector=selector, resolver=resolver)


async def test_a_domain_with_spf_dkim_and_dmarc_is_ready(nameserver):
    found = await _check(nameserver)

    assert found.problems == []
    assert found.spf == ("v=spf1 include:_spf.relay.example -all",)
    # A key longer than one TXT string (255 bytes) comes back whole.
    assert found.dkim == (f"v=DKIM1; k=rsa; p={KEY}",)
    assert found.describe() == (
        "sending domain shop.example: SPF, DKIM (s1) and DMARC (quarantine) in place"
    )


@pytest.mark.parametrize(
    ("name", "records", "problem"),
    [
        (SHOP, ["google-site-verification=abc"], "no SPF record (v=spf1) at shop.example"),
        (
            SHOP,
            ["v=spf1 include:a.example -all", "v=spf1 include:b.example -all"],
            "2 SPF records at shop.example: receivers treat that as an error",
        ),
        (f"s1._domainkey.{SHOP}", None, "no DKIM key at s1._domainkey.shop.example"),
        (
            f"s1._domainkey.{SHOP}",
            ["v=DKIM1; k=rsa; p="],
            "the DKIM key at s1._domainkey.shop.example is revoked (empty p=)",
        ),
        (f"_dmarc.{SHOP}", None, "no DMARC record (v=DMARC1) at _dmarc.shop.example"),
        (
            f"_dmarc.{SHOP}",
            ["v=DMARC1; p=monitor"],
            "the DMARC record at _dmarc.shop.example has no valid policy "
            "(p=none, quarantine or reject)",
        ),
        (
            f"_dmarc.{SHOP}",
            ["v=DMARC1; p=none", "v=DMARC1; p=reject"],
            "2 DMARC records at _dmarc.shop.example: none applies",
        ),
    ],
)
async def test_each_record_short_of_the_rules_is_named(nameserver, name, records, problem):
    if records is None:
        del nameserver.zone[name]
    else:
        nameserver.zone[name] = records

    found = await _check(nameserver)

    assert found.problems == [problem]
    assert not found.is_ready


async def test_a_name_with_records_of_other_kinds_only_has_no_txt(nameserver):
    nameserver.zone[f"_dmarc.{SHOP}"] = []

    found = await _check(nameserver)

    assert found.problems == ["no DMARC record (v=DMARC1) at _dmarc.shop.example"]


async def test_a_subdomain_without_dmarc_of_its_own_takes_its_organisational_domains(
    nameserver,
):
    nameserver.zone["mail.shop.example"] = ["v=spf1 -all"]
    nameserver.zone["s1._domainkey.mail.shop.example"] = [f"v=DKIM1; p={KEY}"]

    found = await _check(nameserver, "mail.shop.example")

    assert found.problems == []
    assert found.dmarc_at == SHOP

    del nameserver.zone[f"_dmarc.{SHOP}"]
    found = await _check(nameserver, "mail.shop.example")
    assert found.problems == [
        "no DMARC record (v=DMARC1) at _dmarc.mail.shop.example or _dmarc.shop.example"
    ]


async def test_without_a_selector_dkim_is_named_as_unchecked(nameserver):
    found = await _check(nameserver, selector=None)

    assert found.problems == [
        "DKIM not checked: set EMAIL_DKIM_SELECTOR to the selector your relay signs with"
    ]


async def test_dns_that_does_not_answer_is_an_outage_not_a_missing_record():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # takes queries, answers none
        resolver = make_resolver([f"127.0.0.1:{silent.getsockname()[1]}"], timeout=0.5)
        with pytest.raises(DnsUnavailable, match=r"DNS did not answer for shop\.example"):
            await check_domain(SHOP, dkim_selector="s1", resolver=resolver)


def test_the_nameserver_ignores_what_is_not_a_query_and_answers_with_authority():
    server = SandboxNameserver(GOOD)
    assert server.answer(b"\x00\x01 not dns") is None


async def test_providers_check_adds_the_sending_domain_to_the_email_line(nameserver):
    relay = start_smtp_server()
    nameserver.zone.update(demo_zone(SHOP, dkim_selector="s1"))
    settings = get_settings(
        smtp_host="127.0.0.1",
        smtp_port=relay.port,
        email_from=f"Shop <orders@{SHOP}>",
        email_dkim_selector="s1",
        dns_nameservers=f"127.0.0.1:{nameserver.port}",
    )
    try:
        [ready] = await check_providers(settings, [ChannelKind.EMAIL])
        del nameserver.zone[f"_dmarc.{SHOP}"]
        [short] = await check_providers(settings, [ChannelKind.EMAIL])
        [unchecked] = await check_providers(
            settings.model_copy(update={"email_domain_check": False}), [ChannelKind.EMAIL]
        )
    finally:
        relay.stop()

    took = f"the mail server at 127.0.0.1:{relay.port} took the connection (no login configured)"
    assert (ready.is_ok, ready.said) == (
        True,
        f"{took}; sending domain shop.example: SPF, DKIM (s1) and DMARC (none) in place",
    )
    assert (short.is_ok, short.said) == (
        False,
        f"{took}; sending domain shop.example: no DMARC record (v=DMARC1) at "
        "_dmarc.shop.example (marketing email waits until this is fixed)",
    )
    assert (unchecked.is_ok, unchecked.said) == (True, took)
