"""Canned replies: saved answers with variables, managed by admins, used by every agent.

``/admin/canned-replies`` lists them to every member (agents read them to learn the
shortcuts); creating, editing and deleting are checked for the admin role on the server
(``inbox.canned``), whatever the page showed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from parley.errors import ParleyError
from parley.http.web.auth import in_transaction
from parley.http.web.pages import admin, db_of, path_int, render, signed_in
from parley.inbox import canned
from parley.inbox.canned import SAMPLE_CONTEXT

LIST = "/admin/canned-replies"


def _form_text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def canned_list(request: Request) -> Response:
    """``GET /admin/canned-replies``: every canned reply, and the form to add one."""
    login = signed_in(request)
    items = await in_transaction(
        db_of(request), lambda s: canned.list_canned(s, workspace_id=login.workspace_id)
    )
    return render(
        request,
        "canned/list.html",
        items=items,
        variables=SAMPLE_CONTEXT,
        error=None,
        form={"shortcut": "", "title": "", "body": ""},
    )


async def canned_edit(request: Request) -> Response:
    """``GET /admin/canned-replies/{id}``: the edit form (admins)."""
    login = admin(request)
    canned_id = path_int(request, "id")
    item = await in_transaction(
        db_of(request),
        lambda s: canned.get_canned(s, workspace_id=login.workspace_id, canned_id=canned_id),
    )
    return render(
        request,
        "canned/edit.html",
        item=item,
        variables=SAMPLE_CONTEXT,
        error=None,
        form={"shortcut": item.shortcut, "title": item.title, "body": item.body},
    )


async def canned_save(request: Request) -> Response:
    """``POST /admin/canned-replies`` (create) or ``/admin/canned-replies/{id}`` (update)."""
    login = admin(request)
    canned_id = path_int(request, "id") if "id" in request.path_params else None
    form = await request.form()
    fields = {name: _form_text(form, name) for name in ("shortcut", "title", "body")}

    def save(session: Session) -> None:
        canned.save_canned(session, login=login, canned_id=canned_id, **fields)

    try:
        await in_transaction(db_of(request), save)
    except ParleyError as exc:
        if exc.status_code in (403, 404):
            raise
        items = await in_transaction(
            db_of(request), lambda s: canned.list_canned(s, workspace_id=login.workspace_id)
        )
        return render(
            request,
            "canned/list.html" if canned_id is None else "canned/edit.html",
            status_code=exc.status_code,
            items=items,
            item={"id": canned_id},
            variables=SAMPLE_CONTEXT,
            error=exc.message,
            form=fields,
        )
    return RedirectResponse(LIST, status_code=303)


async def canned_delete(request: Request) -> Response:
    """``POST /admin/canned-replies/{id}/delete``."""
    login = admin(request)
    canned_id = path_int(request, "id")
    await in_transaction(
        db_of(request), lambda s: canned.delete_canned(s, login=login, canned_id=canned_id)
    )
    return RedirectResponse(LIST, status_code=303)


def canned_routes() -> list[Route]:
    return [
        Route(LIST, canned_list, methods=["GET"]),
        Route(LIST, canned_save, methods=["POST"]),
        Route(LIST + "/{id:int}", canned_edit, methods=["GET"]),
        Route(LIST + "/{id:int}", canned_save, methods=["POST"]),
        Route(LIST + "/{id:int}/delete", canned_delete, methods=["POST"]),
    ]
