"""A customer's message to a connected agent's live stream: seconds from send to screen.

Starts the real ``parley demo`` (sandbox providers, the demo store and its team) on a fresh
database, signs the demo agent in through the login form, opens ``GET /inbox/events`` (the
Server-Sent Events stream the inbox page listens to) and then, ``--messages`` times, has
Grace text the store through ``POST /sandbox/api/inbound``: the sandbox signs Twilio's
real webhook and posts it to parley, which verifies, stores and answers. Each message is
timed from the moment it is sent to the moment its ``message`` event arrives on the stream.

**Ceiling**: the same request's own round trip (send -> parley has durably stored the
message and answered): no screen can learn of a message before it is stored. The gap
between the two is the live path (the relay's read and the stream's write). The browser's
own rendering of the event is left out; ``tests/e2e`` checks it renders without a reload.

Run: ``.venv/bin/python bench/live_latency.py --db sqlite`` (or ``--db postgres``).
Goal: p99 < 1 s.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import benchkit
import httpx2
from benchkit import Row

GOAL_SECONDS = 1.0
AGENT_EMAIL = "agent@demo.parley.test"
GRACE = "+12025550143"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """The few things a browser does that httpx2 leaves to us: keep every cookie the app
    sets (they are ``__Host-`` and Secure, which httpx2's jar keeps off plain HTTP)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx2.Client(base_url=base_url, timeout=10.0, follow_redirects=False)
        self.cookies: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        jar = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {"cookie": jar, "accept": "text/html", "origin": str(self.http.base_url)}

    def keep(self, response: httpx2.Response) -> httpx2.Response:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response

    def sign_in(self, email: str, password: str) -> None:
        page = self.keep(self.http.get("/login", headers=self.headers()))
        token = CSRF_FIELD.search(page.text)
        assert token, "the login page has no CSRF field"
        answer = self.keep(
            self.http.post(
                "/login",
                headers=self.headers(),
                data={"email": email, "password": password, "csrf_token": token.group(1)},
            )
        )
        assert answer.status_code == 303, (answer.status_code, answer.text[:300])


def follow(browser: Browser, events: queue.Queue[tuple[float, dict[str, Any]]]) -> None:
    """Read the live stream, stamping each event with the time it arrived."""
    with browser.http.stream(
        "GET", "/inbox/events", headers={**browser.headers(), "accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 200, stream.status_code
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: ") and kind == "message":
                events.put((time.monotonic(), json.loads(line[len("data: ") :])))


def measure(base_url: str, password: str, messages: int) -> tuple[list[float], list[float]]:
    """(send -> stream, send -> stored) in seconds, one pair per message."""
    agent = Browser(base_url)
    agent.sign_in(AGENT_EMAIL, password)
    events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    threading.Thread(target=follow, args=(agent, events), daemon=True).start()
    phone = httpx2.Client(base_url=base_url, timeout=10.0)
    time.sleep(1.0)  # the stream is open and the relay is tailing
    to_screen: list[float] = []
    stored: list[float] = []
    for number in range(messages):
        sent = time.monotonic()
        answer = phone.post(
            "/sandbox/api/inbound",
            json={"channel": "sms", "from": GRACE, "text": f"probe {number}: are you there?"},
        )
        stored.append(time.monotonic() - sent)
        assert answer.status_code == 200, answer.text
        while True:  # the customer's message, not an earlier reply's event
            arrived, event = events.get(timeout=10.0)
            if event.get("data", {}).get("direction") == "inbound":
                break
        to_screen.append(arrived - sent)
        time.sleep(0.3)  # the assistant's answer and its events settle before the next
    return to_screen, stored


def run(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="parley-live-"))
    target = benchkit.Target(kind=kind, workdir=workdir, pg_admin_url=opts.pg_url)
    url = target.fresh("live")
    port, smtp_port = benchkit.free_port(), benchkit.free_port()
    password = "bench live password"
    env = {
        "PARLEY_DATABASE_URL": url,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_SANDBOX_SMTP_PORT": str(smtp_port),
        "PARLEY_DEMO_ADMIN_PASSWORD": password,
    }
    server = benchkit.Child(
        [str(Path(benchkit.PYTHON).with_name("parley")), "demo"],
        env=env,
        log=workdir / "demo.log",
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        benchkit.wait_http(f"{base_url}/healthz", timeout=120.0, child=server)
        to_screen, stored = measure(base_url, password, opts.messages)
    finally:
        server.stop()
        if not opts.keep:
            target.cleanup()
    p50, p99 = (benchkit.percentile(to_screen, q) for q in (50, 99))
    c50, c99 = (benchkit.percentile(stored, q) for q in (50, 99))
    rows = [
        Row("inbound -> agent's live stream, p50", p50, "s", c50, "stored and answered"),
        Row(
            "inbound -> agent's live stream, p99",
            p99,
            "s",
            c99,
            "stored and answered",
            goal=f"< {GOAL_SECONDS:.0f} s",
            passed=p99 < GOAL_SECONDS,
        ),
        Row("slowest", max(to_screen), "s", max(stored), "stored and answered"),
    ]
    return {"db": kind, "messages": opts.messages, "rows": [r.as_dict() for r in rows]}


def table(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    title = f"live updates on {result['db']} ({result.get('machine', benchkit.machine_line())})"
    return benchkit.render_table(title, rows, [f"{result['messages']} messages, one at a time"])


def parser() -> argparse.ArgumentParser:
    p = benchkit.bench_parser("parley live-update latency bench")
    p.add_argument("--messages", type=int, default=100)
    return p


def main() -> None:
    opts = parser().parse_args()
    benchkit.report(opts, run(opts.db, opts), table)


if __name__ == "__main__":
    main()
