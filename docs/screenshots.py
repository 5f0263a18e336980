"""Make the README's screenshots of the agents' inbox from a running ``make demo``.

    make demo                                   # in one terminal, on a fresh var/
    .venv/bin/python docs/screenshots.py        # in another

It plays four orders through the demo, writes as customers on WhatsApp, SMS, email and
the storefront chat, then photographs the screens with Debian's chromium (``PARLEY_CHROMIUM``
or ``/usr/bin/chromium``) into ``docs/``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import httpx2
from playwright.sync_api import Page, sync_playwright

from parley.demo.simulate import run_simulation
from parley.settings import get_settings

DOCS = Path(__file__).parent
CUSTOMERS_WRITE = [
    {"channel": "whatsapp", "from": "+447911123456", "text": "where is my order?"},
    {"channel": "sms", "from": "+12025550143", "text": "My parcel arrived damaged, can a person help?"},
    {"channel": "email", "from": "alan@example.com", "text": "Hi, do you ship to Canada?"},
    {"channel": "whatsapp", "from": "+447911123456", "text": "Great, thank you! Can I return it if it doesn't fit?"},
]


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/inbox**")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    base = args.url.rstrip("/")
    settings = get_settings()
    run_simulation(
        base_url=base,
        workspace="demo",
        secret=settings.demo_shopify_secret,
        orders=4,
        delay=0.2,
        duplicates=1,
        echo=lambda _line: None,
    )
    with httpx2.Client(base_url=base) as http:
        for message in CUSTOMERS_WRITE:
            http.post("/sandbox/api/inbound", json=message).raise_for_status()
            time.sleep(1.0)
    chromium = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        agent = browser.new_page(viewport={"width": 1440, "height": 900})
        sign_in(agent, base, settings.demo_admin_email, settings.demo_admin_password)
        agent.screenshot(path=args.out / "inbox-list.png")
        agent.locator('[data-test="conversation-row"]', has_text="Ada").first.click()
        agent.locator('[data-test="timeline"]').wait_for()
        agent.wait_for_timeout(500)
        agent.screenshot(path=args.out / "inbox-conversation.png")

        shopper = browser.new_page(viewport={"width": 900, "height": 900})
        shopper.goto(f"{base}/demo/store")
        shopper.click('[aria-label="Open chat"]')
        shopper.fill('[aria-label="Message"]', "Do the Trail Runner 2 run small?")
        shopper.click('[aria-label="Send"]')
        agent.goto(f"{base}/inbox?channel=webchat")
        agent.locator('[data-test="conversation-row"]').first.click()
        agent.fill('[data-test="reply-body"]', "Hi! They run true to size; if between sizes, go up.")
        agent.click('[data-test="send-reply"]')
        shopper.wait_for_timeout(1500)
        agent.wait_for_timeout(500)
        agent.set_viewport_size({"width": 1100, "height": 900})
        shopper.screenshot(path=args.out / "webchat-shopper.png")
        agent.screenshot(path=args.out / "webchat-agent.png")

        admin = browser.new_page(viewport={"width": 1440, "height": 900})
        admin.context.add_cookies(agent.context.cookies())
        admin.goto(f"{base}/admin/journeys/dispatch")
        admin.wait_for_timeout(800)
        admin.screenshot(path=args.out / "admin-journey.png")
        admin.goto(f"{base}/admin/channels")
        admin.screenshot(path=args.out / "admin-channels.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
