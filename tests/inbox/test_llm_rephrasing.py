"""The optional language model may reword the assistant's facts, never add one.

The model is a local stand-in of an OpenAI-compatible ``/v1/chat/completions`` endpoint
(a Starlette app reached through httpx2's ASGI transport), told how to answer per test.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.assistant.llm import Rephraser, is_grounded
from parley.channels.base import ChannelKind
from parley.messaging.models import Author, Message
from support import (
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    rows,
    seed,
)

ADA = "+447911123456"


class StandIn:
    """Answers every completion with ``reply(draft)``; records what it was sent."""

    def __init__(self, reply: Any, status: int = 200) -> None:
        self.reply = reply
        self.status = status
        self.requests: list[dict[str, Any]] = []

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        draft = json.loads(body["messages"][1]["content"])["draft"]
        content = self.reply(draft)
        return JSONResponse(
            {"choices": [{"message": {"role": "assistant", "content": content}}]},
            status_code=self.status,
        )

    def rephraser(self) -> Rephraser:
        app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
        return Rephraser(
            base_url="http://llm.local/v1",
            model="stand-in",
            api_key="k",
            transport=httpx2.ASGITransport(app=app),
        )


def _ask_where_my_order_is(db, tmp_path, stand_in: StandIn) -> Message:
    seed(db)
    placed, dispatched, *_ = deliveries("Ada", number=1501)
    post(db, placed)
    post(db, dispatched)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    worker.tasks["assistant.respond"].rephraser = stand_in.rephraser()
    drain(worker)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="where is my order?")
    drain(worker)
    (reply,) = rows(db, Message, Message.author == Author.ASSISTANT)
    return reply


def test_a_faithful_rewording_is_sent(db, tmp_path):
    stand_in = StandIn(lambda draft: "Good news! " + draft)
    reply = _ask_where_my_order_is(db, tmp_path, stand_in)
    assert reply.body.startswith("Juniper & Pine automated assistant here. Good news! Order #1501")
    (request,) = stand_in.requests
    facts = json.loads(request["messages"][1]["content"])["facts"]
    assert facts["order"] == "#1501"
    assert facts["carrier"] == "UPS"


def test_a_rewording_that_adds_a_fact_or_a_promise_is_discarded(db, tmp_path):
    stand_in = StandIn(lambda draft: draft + " Use code SAVE20 for 20% off, guaranteed by Friday!")
    reply = _ask_where_my_order_is(db, tmp_path, stand_in)
    assert "SAVE20" not in reply.body
    assert "20%" not in reply.body
    assert "Order #1501" in reply.body


def test_a_model_outage_sends_the_draft(db, tmp_path):
    stand_in = StandIn(lambda draft: "ignored", status=503)
    reply = _ask_where_my_order_is(db, tmp_path, stand_in)
    assert "Order #1501" in reply.body
    assert len(stand_in.requests) == 1


def test_grounding_check_compares_numbers_links_and_promises():
    draft = "Order #1501 is on its way. Track it here: https://ups.example/1Z9"
    assert is_grounded("Your order #1501 is on the way! https://ups.example/1Z9", draft)
    assert not is_grounded("Order #1502 is on its way.", draft)
    assert not is_grounded("Order #1501 arrives 12 March.", draft)
    assert not is_grounded("Order #1501 is on its way, we promise.", draft)
