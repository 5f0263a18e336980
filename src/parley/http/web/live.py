"""``GET /inbox/events``: the live stream each agent's screen listens to."""

from __future__ import annotations

from starlette.routing import Route


def live_routes() -> list[Route]:
    return []
