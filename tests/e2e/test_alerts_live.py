"""Alerts in the live demo: a send that ends in the dead letter is posted to the engineer's
webhook (a real HTTP server here) by the running worker's watch, and ``GET /metrics`` shows
it to a scraper with the token, and to nobody without."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import deliveries

TOKEN = "scraper-token-e2e"


class Receiver(ThreadingHTTPServer):
    """The engineer's alert webhook: keeps every JSON body posted to it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/parley"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _metrics(demo, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return demo.http.get("/metrics", headers=headers)


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_a_send_reaching_the_dead_letter_is_alerted_to_the_webhook_and_scraped(
    start_demo, receiver
):
    demo = start_demo(
        PARLEY_JOB_BACKOFF_BASE_SECONDS="0.01",
        PARLEY_JOB_MAX_ATTEMPTS="3",
        PARLEY_ALERT_CHECK_SECONDS="1",
        PARLEY_ALERT_WEBHOOK_URL=receiver.url,
        PARLEY_METRICS_TOKEN=TOKEN,
    )
    demo.inject_fault(channel="sms", status=503, count=-1)
    placed, dispatched, *_ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)

    demo.wait_for(
        lambda: [p for p in receiver.posts if p["alert"] == "dead_letter"],
        timeout=20.0,
        what="the dead-letter alert at the webhook",
    )

    [alert] = [p for p in receiver.posts if p["alert"] == "dead_letter"]
    assert alert["status"] == "firing"
    assert alert["summary"] == (
        "1 job reached the dead letter in the last 15 min (journeys.advance: 1); 1 in it now. "
        "`parley jobs dead` lists them with why, `parley jobs retry` re-drives them."
    )
    assert alert["text"] == f"parley alert dead_letter firing: {alert['summary']} ({demo.base_url})"
    assert alert["source"] == demo.base_url
    scraped = _metrics(demo, TOKEN)
    assert scraped.status_code == 200
    assert _sample(scraped.text, "parley_dead_letter_jobs", kind="journeys.advance") == 1.0
    assert _sample(scraped.text, "parley_alert_firing", alert="dead_letter") == 1.0
    assert _metrics(demo, None).status_code == 401
    assert _metrics(demo, "guess").status_code == 401
    assert "GET /metrics refused: a wrong bearer token" in demo.stderr()
