"""``/inbox``: the agents' conversation list and conversations."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.http.web.pages import render, signed_in


async def inbox_page(request: Request) -> Response:
    signed_in(request)
    return render(request, "inbox.html")


def inbox_routes() -> list[Route]:
    return [Route("/inbox", inbox_page, methods=["GET"])]
