"""The sandbox's own JSON API: read and clear captures, inject and clear faults.

Used by the page's poller, by tests driving the demo over HTTP and by operators rehearsing
provider outages (``POST /api/faults {"channel": "sms", "status": 503, "count": 3}``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.sandbox.store import CHANNELS, SandboxStore


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


class SandboxApi:
    """Handlers for ``/api/messages`` and ``/api/faults``."""

    def __init__(self, store: SandboxStore) -> None:
        self._store = store

    async def list_messages(self, request: Request) -> Response:
        """``GET /api/messages?channel=&to=&limit=``: oldest first; ``limit`` keeps the newest."""
        channel = request.query_params.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            return _bad_request(f"channel must be one of {', '.join(CHANNELS)}")
        limit_param = request.query_params.get("limit")
        limit: int | None = None
        if limit_param:
            if not limit_param.isdigit() or int(limit_param) < 1:
                return _bad_request("limit must be a positive integer")
            limit = int(limit_param)
        messages = self._store.list(channel=channel, to=request.query_params.get("to") or None)
        if limit is not None:
            messages = messages[-limit:]
        return JSONResponse({"messages": [message.to_public() for message in messages]})

    async def clear_messages(self, request: Request) -> Response:
        """``DELETE /api/messages``."""
        self._store.clear()
        return Response(status_code=204)

    async def list_faults(self, request: Request) -> Response:
        """``GET /api/faults``: the faults still waiting, in the order they apply."""
        return JSONResponse({"faults": [fault.to_public() for fault in self._store.faults()]})

    async def inject_fault(self, request: Request) -> Response:
        """``POST /api/faults`` with ``{channel, status, count=1, delay_seconds=0}``."""
        try:
            payload: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _bad_request("the body must be a JSON object")
        if not isinstance(payload, dict):
            return _bad_request("the body must be a JSON object")
        channel, status = payload.get("channel"), payload.get("status")
        if not isinstance(channel, str) or not isinstance(status, int):
            return _bad_request("'channel' (a string) and 'status' (an integer) are required")
        try:
            fault = self._store.inject_fault(
                channel,
                status,
                count=payload.get("count", 1),
                delay_seconds=payload.get("delay_seconds", 0.0),
            )
        except ValueError as error:
            return _bad_request(str(error))
        return JSONResponse({"fault": fault.to_public()}, status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        """``DELETE /api/faults``."""
        self._store.clear_faults()
        return Response(status_code=204)
