"""``/admin/failed``: what gave up after every retry (the dead letter), and sending it again
once the cause is fixed (a provider back up, a credential replaced); the messages held
for review, with the admin's word on each (it arrived, or send it again); and, while the
store's sends are running late, how late (the deployment's lateness alert, for this
store alone)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from parley.alerts.rules import running_late
from parley.clock import utc_now
from parley.dead_letter import failed_sends
from parley.errors import ParleyError
from parley.held_messages import held_messages
from parley.http.web.admin import store
from parley.http.web.admin.common import done, page
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of, path_int
from parley.http.web.security import client_ip
from parley.jobs.backlog import store_backlog
from parley.messaging.refusals import recent_refusals
from parley.runtime import thresholds

PAGE_SIZE = 100


async def _page(request: Request, *, status_code: int = 200, error: str | None = None) -> Response:
    login = admin(request)
    now = utc_now()
    sends, held, refused, due = await in_transaction(
        db_of(request),
        lambda s: (
            failed_sends(s, workspace_id=login.workspace_id, limit=PAGE_SIZE),
            held_messages(s, workspace_id=login.workspace_id, limit=PAGE_SIZE),
            recent_refusals(s, workspace_id=login.workspace_id, now=now),
            store_backlog(s, workspace_id=login.workspace_id, now=now),
        ),
    )
    late = running_late(due, thresholds(request.app.state.settings), now=now)
    return page(
        request,
        "admin/failed.html",
        section="failed",
        status_code=status_code,
        error=error,
        sends=sends,
        held=held,
        refused=refused,
        late=late,
        page_size=PAGE_SIZE,
    )


async def failed_page(request: Request) -> Response:
    """``GET /admin/failed``: newest first."""
    return await _page(request)


async def retry_one(request: Request) -> Response:
    """``POST /admin/failed/{job_id}/retry``."""
    return await _retry(request, [path_int(request, "job_id")])


async def retry_all(request: Request) -> Response:
    """``POST /admin/failed/retry``: everything in the store's dead letter."""
    return await _retry(request, None)


async def _retry(request: Request, job_ids: list[int] | None) -> Response:
    login = admin(request)
    try:
        await in_transaction(
            db_of(request),
            lambda s: store.retry_failed_sends(
                s, login=login, job_ids=job_ids, ip=client_ip(request)
            ),
        )
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/failed", "retried")


async def held_arrived(request: Request) -> Response:
    """``POST /admin/failed/held/{message_id}/arrived``: the provider's log shows it."""
    return await _review(request, arrived=True)


async def held_send_again(request: Request) -> Response:
    """``POST /admin/failed/held/{message_id}/send-again``: the provider's log lacks it."""
    return await _review(request, arrived=False)


async def _review(request: Request, *, arrived: bool) -> Response:
    login = admin(request)
    message_id = path_int(request, "message_id")
    try:
        await in_transaction(
            db_of(request),
            lambda s: store.review_held_message(
                s, login=login, message_id=message_id, arrived=arrived, ip=client_ip(request)
            ),
        )
    except ParleyError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, status_code=exc.status_code, error=exc.message)
    return done("/admin/failed", "arrived" if arrived else "retried")
