"""Deliveries being taken in: counted, bounded, and given way to.

A store platform waits a few seconds for its webhook's answer (Shopify: 5 s), retries
when it does not come, and gives up on the endpoint after enough failures. Two things
follow for ``parley serve``:

- **The embedded worker gives way.** The API and a worker share one process and, on
  SQLite, one writer; a send that starts a few hundred milliseconds later loses nothing.
  While deliveries are in flight the worker waits before it takes the database or starts
  a send, up to ``max_wait`` each time so that sends still move under a flood. Measured
  (``bench/ingest.py``, memory phase, SQLite): without this and with 200-job batches the
  server answered 105 of the 220 webhooks/s offered with p99 7.9 s. The worker also
  claims small batches while deliveries arrive, and large ones once the intake has been
  quiet for a while (:meth:`Intake.quiet_for`): a campaign from a quiet store goes out
  at a worker's full rate.
- **A storm is shed, not queued.** Past ``max_in_flight`` deliveries at once (a platform
  replaying hours of backlog after an outage), the next ones get 503 with
  ``Retry-After`` at once, before their body is read: the sender retries later, and the
  deliveries already admitted are answered in time instead of everyone timing out.

Everything here runs on the event loop's thread: the counting middleware and the worker's
waits are coroutines of the same loop, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

INTAKE_PATHS = ("/webhooks/", "/api/v1/events")


SHED_LOG_INTERVAL = 10.0
RETRY_AFTER_SECONDS = 5


class Intake:
    """How many deliveries are being taken in right now, and a wait for none."""

    def __init__(
        self,
        *,
        max_wait: float = 0.5,
        max_in_flight: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_wait = max_wait
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.shed = 0
        """Deliveries refused since the process started."""
        self._clock = clock
        self._last_started: float | None = None
        self._shed_logged_at: float | None = None
        self._shed_unlogged = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def admit(self) -> bool:
        """Count a delivery in, or refuse it (False) when ``max_in_flight`` are in."""
        if self.in_flight >= self.max_in_flight:
            self._count_shed()
            return False
        self.started()
        return True

    def started(self) -> None:
        self.in_flight += 1
        self._last_started = self._clock()
        self._quiet.clear()

    def quiet_for(self, seconds: float) -> bool:
        """No delivery is in flight and none has started for ``seconds``."""
        if self.in_flight:
            return False
        return self._last_started is None or self._clock() - self._last_started >= seconds

    def ended(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._quiet.set()

    def _count_shed(self) -> None:
        """Log a storm once per ``SHED_LOG_INTERVAL``, with how many were refused."""
        self.shed += 1
        self._shed_unlogged += 1
        now = self._clock()
        if self._shed_logged_at is None or now - self._shed_logged_at >= SHED_LOG_INTERVAL:
            log.warning(
                "intake full (%d deliveries in flight): refused %d with 503 and Retry-After",
                self.in_flight,
                self._shed_unlogged,
            )
            self._shed_logged_at = now
            self._shed_unlogged = 0

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
    """ASGI middleware: count the requests to the intake paths while they run, and refuse
    those past the bound.

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
        if not intake.admit():
            await _BUSY(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            intake.ended()


_BUSY = JSONResponse(
    {"error": "too many deliveries at once, retry later"},
    status_code=503,
    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
)


def _intake_of(scope: Scope) -> Intake | None:
    if scope["type"] != "http" or "app" not in scope:
        return None
    intake = getattr(scope["app"].state, "intake", None)
    return intake if isinstance(intake, Intake) else None
