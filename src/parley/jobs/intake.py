"""Deliveries being taken in, so a worker in the same process gives way to them.

``parley serve`` runs the API and a worker in one process, and on SQLite they share one
writer. A store platform waits a few seconds for its webhook's answer (Shopify: 5 s) and
retries, then gives up on the endpoint, when it does not come; a send that starts a few
hundred milliseconds later loses nothing. So while deliveries are in flight the embedded
worker waits before it takes the database or starts a send, up to ``max_wait`` each time
so that sends still move under a flood. Measured (``bench/ingest.py``, memory phase,
SQLite): without this and with 200-job batches the server answered 105 of the 220
webhooks/s offered with p99 7.9 s.

Everything here runs on the event loop's thread: the counting middleware and the worker's
waits are coroutines of the same loop, so no lock is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INTAKE_PATHS = ("/webhooks/", "/api/v1/events")


class Intake:
    """How many deliveries are being taken in right now, and a wait for none."""

    def __init__(self, *, max_wait: float = 0.5) -> None:
        self.max_wait = max_wait
        self.in_flight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def started(self) -> None:
        self.in_flight += 1
        self._quiet.clear()

    def ended(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._quiet.set()

    async def give_way(self) -> None:
        """Return once no delivery is in flight, or after ``max_wait`` seconds."""
        if self.in_flight == 0:
            return
        try:
            async with asyncio.timeout(self.max_wait):
                await self._quiet.wait()
        except TimeoutError:
            return


class CountIntake:
    """ASGI middleware: count the requests to the intake paths while they run.

    The :class:`Intake` is the app's ``state.intake``, made by the lifespan on the loop
    that serves (an asyncio event belongs to one loop); without one, nothing is counted.
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = INTAKE_PATHS) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        intake = _intake_of(scope)
        if intake is None or not str(scope.get("path", "")).startswith(self.paths):
            await self.app(scope, receive, send)
            return
        intake.started()
        try:
            await self.app(scope, receive, send)
        finally:
            intake.ended()


def _intake_of(scope: Scope) -> Intake | None:
    if scope["type"] != "http" or "app" not in scope:
        return None
    intake = getattr(scope["app"].state, "intake", None)
    return intake if isinstance(intake, Intake) else None
