"""The sandbox's DNS console: records a store publishes through ``/api/dns`` are what the
sandbox's nameserver answers over real DNS (UDP), and the domain check reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from parley.channels.email_smtp.domain import check_domain, make_resolver
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.nameserver import SandboxNameserver, demo_zone
from parley.sandbox.store import SandboxStore
from parley.settings import Settings

pytestmark = pytest.mark.anyio

NORTH = "north.example"


@pytest.fixture
async def zone() -> AsyncIterator[tuple[dict[str, list[str]], SandboxNameserver]]:
    records = demo_zone("demo.parley.test", dkim_selector="parley")
    server = SandboxNameserver(records, port=0)
    await server.start()
    yield records, server
    server.stop()


@pytest.fixture
async def console(zone) -> AsyncIterator[httpx2.AsyncClient]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app = create_sandbox_app(SandboxStore(), settings, status_webhooks=False, zone=zone[0])
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as client:
        yield client


async def test_records_published_at_the_console_are_answered_and_read_by_the_check(zone, console):
    _, server = zone
    published = {
        NORTH: ["v=spf1 ip4:127.0.0.1 -all", "parley-verification=tok3n"],
        f"s1._domainkey.{NORTH}": ["v=DKIM1; k=rsa; p=MIIB"],
        f"_dmarc.{NORTH}": ["v=DMARC1; p=none"],
    }
    for name, txt in published.items():
        answer = await console.put(f"/api/dns/{name.upper()}.", json={"txt": txt})
        assert answer.status_code == 200
        assert answer.json() == {"name": name, "txt": txt}

    resolver = make_resolver([f"127.0.0.1:{server.port}"], timeout=2)
    found = await check_domain(NORTH, dkim_selector="s1", resolver=resolver)

    assert (found.problems, found.verifications) == ([], ("tok3n",))
    listing = (await console.get("/api/dns")).json()["records"]
    assert listing[NORTH] == published[NORTH]
    assert "_dmarc.demo.parley.test" in listing


async def test_a_name_deleted_at_the_console_no_longer_exists(zone, console):
    _, server = zone
    await console.put(f"/api/dns/{NORTH}", json={"txt": ["parley-verification=tok3n"]})

    deleted = await console.delete(f"/api/dns/{NORTH}")
    again = await console.delete(f"/api/dns/{NORTH}")

    assert (deleted.status_code, again.status_code) == (204, 404)
    resolver = make_resolver([f"127.0.0.1:{server.port}"], timeout=2)
    found = await check_domain(NORTH, dkim_selector="s1", resolver=resolver)
    assert (found.spf, found.verifications) == ((), ())


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        pytest.param("north", {"txt": ["x"]}, "name must be a domain name", id="one_label"),
        pytest.param("no_rth.example!", {"txt": ["x"]}, "name must be a domain name", id="chars"),
        pytest.param(NORTH, {"txt": "x"}, "txt must be a list of records", id="not_a_list"),
        pytest.param(NORTH, {"txt": [""]}, "txt must be a list of records", id="empty_record"),
        pytest.param(NORTH, {"txt": [], "ttl": 5}, "unknown field(s): ttl", id="unknown_field"),
    ],
)
async def test_a_malformed_record_is_refused_with_the_reason_and_nothing_changes(
    zone, console, name, body, reason
):
    records, _ = zone
    before = {key: list(value) for key, value in records.items()}

    answer = await console.put(f"/api/dns/{name}", json=body)

    assert answer.status_code == 422
    assert reason in answer.json()["error"]
    assert records == before


async def test_a_record_of_more_than_255_bytes_of_utf8_is_answered_split_by_bytes(zone, console):
    """A DKIM key pasted with a stray curly quote, say: 250 characters are 251 and more
    bytes, and a TXT string holds 255 bytes. Split by characters, the answer could not be
    built, and the nameserver went silent on the whole name."""
    _, server = zone
    record = "v=DKIM1; k=rsa; p=" + "é" * 200 + "A" * 100
    answer = await console.put(f"/api/dns/s1._domainkey.{NORTH}", json={"txt": [record]})
    assert answer.status_code == 200

    resolver = make_resolver([f"127.0.0.1:{server.port}"], timeout=2)
    found = await resolver.resolve(f"s1._domainkey.{NORTH}", "TXT")

    [txt] = list(found)
    assert [len(piece) for piece in txt.strings] == [255, 255, 8]
    assert b"".join(txt.strings).decode() == record
