"""``/admin/privacy``: the customers' privacy requests the store's platform forwarded, what
parley did about each, and the data gathered for an access request (admins only)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from parley.accounts.service import audit_as
from parley.clock import utc_now
from parley.errors import NotFound
from parley.http.web.admin.common import page
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of
from parley.http.web.security import client_ip
from parley.privacy import service as privacy

PAGE_SIZE = 100


async def privacy_page(request: Request) -> Response:
    """``GET /admin/privacy``: the newest :data:`PAGE_SIZE` requests."""
    login = admin(request)
    requests = await in_transaction(
        db_of(request),
        lambda s: privacy.list_requests(s, workspace_id=login.workspace_id, limit=PAGE_SIZE),
    )
    return page(request, "admin/privacy.html", section="privacy", requests=requests)


async def download_export(request: Request) -> Response:
    """``GET /admin/privacy/{request_id}/export.json``: an access request's data, to hand
    to the customer; each download is audited."""
    login = admin(request)
    raw = request.path_params["request_id"]
    request_id = int(raw) if raw.isdigit() and len(raw) < 19 else 0
    ip = client_ip(request)

    def read(session: Session) -> dict[str, Any] | None:
        found = privacy.find_export(session, workspace_id=login.workspace_id, request_id=request_id)
        if found is not None:
            audit_as(
                session,
                login,
                "export",
                now=utc_now(),
                ip=ip,
                detail={"what": "privacy request", "request": request_id},
            )
        return found

    export = await in_transaction(db_of(request), read)
    if export is None:
        raise NotFound("no such access request, or its export was erased")
    return Response(
        json.dumps(export, indent=2, ensure_ascii=False),
        media_type="application/json; charset=utf-8",
        headers={
            "content-disposition": (
                f'attachment; filename="{login.workspace_slug}-privacy-request-{request_id}.json"'
            ),
            "cache-control": "no-store",
        },
    )
