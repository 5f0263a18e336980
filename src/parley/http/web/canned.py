"""Canned replies: saved answers with variables, managed by admins, used by every agent."""

from __future__ import annotations

from starlette.routing import Route


def canned_routes() -> list[Route]:
    return []
