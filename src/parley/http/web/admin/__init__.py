"""``/admin``: workspace settings, journeys, the team and the audit log (admins only)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def admin_routes() -> list[BaseRoute]:
    return []
