"""Mapping domain errors and database outages to HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from parley.errors import ParleyError

log = logging.getLogger(__name__)


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ParleyError)
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """No 2xx before the event is stored: a database outage asks the sender to retry."""
    log.error(
        "database unavailable while handling %s %s: %s", request.method, request.url.path, exc
    )
    return JSONResponse(
        {"error": "storage unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def api_http_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such path, a method it does not take) in the JSON every
    API answer has, ``{"error": ...}``, with their headers (``Allow`` on a 405)."""
    assert isinstance(exc, HTTPException)
    error = "no such endpoint" if exc.status_code == 404 else exc.detail
    return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)


async def no_such_path(request: Request, exc: Exception) -> Response:
    """A path no route matches: under ``/api/`` as the API answers it (a path parameter
    the API's mount cannot match, a newline say, never reaches the API's handlers);
    elsewhere, Starlette's plain answer."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return await api_http_error(request, exc)
    return PlainTextResponse(exc.detail, status_code=exc.status_code)


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]

EXCEPTION_HANDLERS: dict[int | type[Exception], Handler] = {
    ParleyError: domain_error,
    OperationalError: database_unavailable,
}
