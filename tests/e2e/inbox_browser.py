"""Driving the agents' inbox in a real browser: Debian's ``chromium`` under Playwright.

Never downloads a browser: Playwright launches the system binary (``PARLEY_CHROMIUM`` or
``/usr/bin/chromium``). ``.ci/run`` installs it from Debian's packages.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("PARLEY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: browser tests skipped"
    if not os.path.exists(CHROMIUM):
        return (
            f"no chromium at {CHROMIUM}: browser tests skipped "
            "(install Debian's package: apt-get install chromium)"
        )
    return None


CHROMIUM_PROBLEM = _problem()

Chromium = Any
"""A Playwright ``Browser`` (typed loosely: Playwright may be absent)."""


@contextmanager
def start_chromium() -> Iterator[Chromium]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Root in a container has no user namespaces for chromium's sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/inbox")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base_url}/inbox**")
