"""``/admin/audit`` (read-only: no route changes an audit row) and the customer export."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from parley.accounts import service as accounts
from parley.http.web.admin import store
from parley.http.web.admin.common import page
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of
from parley.http.web.security import client_ip

PAGE_SIZE = 50


async def audit_page(request: Request) -> Response:
    """``GET /admin/audit?before=<id>``: newest first, ``PAGE_SIZE`` rows a page."""
    login = admin(request)
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 19 else None
    entries = await in_transaction(
        db_of(request),
        lambda s: accounts.audit_entries(
            s, workspace_id=login.workspace_id, limit=PAGE_SIZE + 1, before_id=before
        ),
    )
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    return page(
        request,
        "admin/audit.html",
        section="audit",
        entries=entries,
        next_before=entries[-1].id if more else None,
        is_first_page=before is None,
    )


async def export_customers(request: Request) -> Response:
    """``GET /admin/export/customers.csv``: this workspace's customers; audited."""
    login = admin(request)
    body = await in_transaction(
        db_of(request),
        lambda s: store.export_customers(s, login=login, ip=client_ip(request)),
    )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{login.workspace_slug}-customers.csv"',
            "cache-control": "no-store",
        },
    )
