"""Reading the business account's templates from the Graph API: every page, by cursor on
parley's own URL, with Meta's status and category; refusals classified as for a send."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from parley.channels.base import (
    AccountChannelError,
    PermanentChannelError,
    TemplateReview,
    TransientChannelError,
)
from parley.channels.whatsapp_cloud.adapter import WhatsappCloud
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.store import SandboxStore
from parley.settings import Settings

pytestmark = pytest.mark.anyio

TOKEN = "EAAG-listing-token"
WABA = "102290129340398"


def _adapter(transport: httpx2.AsyncBaseTransport, *, base_url: str) -> WhatsappCloud:
    return WhatsappCloud(
        phone_number_id="106540352242922",
        access_token=TOKEN,
        base_url=base_url,
        business_account_id=WABA,
        transport=transport,
    )


async def test_every_page_of_the_sandbox_account_is_read() -> None:
    # Given the sandbox's account with its defaults and 230 more templates (3 pages of 100)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        whatsapp_access_token=TOKEN,
        whatsapp_business_account_id=WABA,
    )
    app = create_sandbox_app(SandboxStore(), settings, status_webhooks=False)
    catalogue = app.state.whatsapp_templates
    defaults = len(catalogue.all())
    for number in range(230):
        category = "MARKETING" if number % 2 else "UTILITY"
        catalogue.put(f"promo_{number:03}", "en_US", category=category, status="APPROVED")
    catalogue.put("promo_000", "en_US", status="PAUSED", category="UTILITY")
    adapter = _adapter(httpx2.ASGITransport(app=app), base_url="http://sandbox.test/whatsapp")

    reviews = await adapter.list_templates()
    await adapter.aclose()

    assert len(reviews) == defaults + 230
    assert len({(r.name, r.language) for r in reviews}) == defaults + 230
    by_name = {r.name: r for r in reviews}
    assert by_name["promo_000"] == TemplateReview(
        name="promo_000",
        language="en_US",
        status="PAUSED",
        category="UTILITY",
        meta_id=by_name["promo_000"].meta_id,
    )
    assert by_name["promo_229"].category == "MARKETING"
    assert by_name["order_dispatched"].status == "APPROVED"


async def test_the_next_link_is_never_followed_with_the_token() -> None:
    # Given a Graph answer whose next link names another host
    requests: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        after = request.url.params.get("after")
        item = {"name": f"t{after or 0}", "language": "en", "status": "APPROVED"}
        body: dict[str, Any] = {"data": [item | {"category": "UTILITY", "id": "7"}]}
        if after is None:
            body["paging"] = {
                "cursors": {"before": "b", "after": "c1"},
                "next": "https://evil.example/steal?after=c1",
            }
        return httpx2.Response(200, json=body)

    adapter = _adapter(httpx2.MockTransport(answer), base_url="https://graph.test")

    reviews = await adapter.list_templates()
    await adapter.aclose()

    assert [r.name for r in reviews] == ["t0", "tc1"]
    assert {request.url.host for request in requests} == {"graph.test"}
    assert [request.url.path for request in requests] == [f"/v21.0/{WABA}/message_templates"] * 2
    assert requests[1].url.params["after"] == "c1"
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in requests)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        pytest.param(
            401,
            {"error": {"message": "Invalid OAuth access token.", "code": 190}},
            AccountChannelError,
            id="bad_token",
        ),
        pytest.param(
            503, {"error": {"message": "down", "code": 2}}, TransientChannelError, id="outage"
        ),
        pytest.param(200, {"nothing": []}, PermanentChannelError, id="no_data"),
    ],
)
async def test_a_refused_listing_raises_as_a_send_would(
    status: int, body: dict[str, Any], error: type[Exception]
) -> None:
    adapter = _adapter(
        httpx2.MockTransport(lambda _request: httpx2.Response(status, json=body)),
        base_url="https://graph.test",
    )

    with pytest.raises(error):
        await adapter.list_templates()
    await adapter.aclose()


async def test_without_a_business_account_nothing_is_asked() -> None:
    requests: list[httpx2.Request] = []
    adapter = WhatsappCloud(
        phone_number_id="1",
        access_token=TOKEN,
        transport=httpx2.MockTransport(lambda r: requests.append(r) or httpx2.Response(500)),
    )

    with pytest.raises(PermanentChannelError, match="no WhatsApp business account id"):
        await adapter.list_templates()
    await adapter.aclose()

    assert requests == []
