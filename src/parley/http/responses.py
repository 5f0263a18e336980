"""Mapping domain errors and database outages to HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]

EXCEPTION_HANDLERS: dict[int | type[Exception], Handler] = {
    ParleyError: domain_error,
    OperationalError: database_unavailable,
}
