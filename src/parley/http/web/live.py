"""``GET /inbox/events``: the live stream each agent's screen listens to (Server-Sent Events).

Each frame is one committed ``live_events`` row: ``id`` (what the browser sends back as
``Last-Event-ID`` when it reconnects), ``event`` (the kind) and ``data`` (JSON ``{kind,
conversation_id, data}``: ids and statuses, never customer content). A comment every
:data:`HEARTBEAT_SECONDS` keeps proxies from timing the stream out. ``event: ended`` is
sent once the agent's session or membership is gone; the stream then closes.
"""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from parley.accounts.service import token_digest
from parley.db import Database
from parley.http.web.pages import signed_in
from parley.http.web.sessions import CookieNames, session_policy
from parley.live.hub import Ending, Subscriber
from parley.live.relay import Relay
from parley.settings import Settings

HEARTBEAT_SECONDS = 15.0
RETRY_MILLISECONDS = 2000
ENDED_FRAME = b"event: ended\ndata: {}\n\n"


class EventStream(Response):
    """A stream bound to one subscriber: replays what a reconnect missed, then follows the
    hub until the session is revoked, the client goes away or the server shuts down."""

    media_type = "text/event-stream"

    def __init__(self, relay: Relay, subscriber: Subscriber, *, after: int | None) -> None:
        # Not ``Response.__init__``: it would fix a Content-Length for an empty body.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.relay = relay
        self.subscriber = subscriber
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        watcher = asyncio.create_task(_watch_disconnect(receive, subscriber))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await _write(send, f"retry: {RETRY_MILLISECONDS}\n\n".encode())
            # The session was read before the stream joined the hub: a removal the relay
            # handed on in between concerned no stream, so this one is checked itself.
            await self.relay.revalidate([subscriber])
            replayed: set[int] = set()
            if self.after is not None:
                for missed in await self.relay.replay(
                    workspace_id=subscriber.workspace_id,
                    user_id=subscriber.user_id,
                    after=self.after,
                ):
                    # Revoked while the replay was read: what follows may be past the end.
                    if subscriber.ending is not None:
                        break
                    replayed.add(missed.id)
                    await _write(send, missed.frame())
            while True:
                item = await subscriber.next(HEARTBEAT_SECONDS)
                if item is None:
                    await _write(send, b": keep-alive\n\n")
                elif isinstance(item, Ending):
                    if item is Ending.REVOKED:
                        await _write(send, ENDED_FRAME)
                    break
                elif item.id not in replayed:
                    await _write(send, item.frame())
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
            watcher.cancel()
            self.relay.hub.unsubscribe(subscriber)


async def _write(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _watch_disconnect(receive: Receive, subscriber: Subscriber) -> None:
    """End the stream as soon as the browser closes it, not at the next heartbeat."""
    while (await receive())["type"] != "http.disconnect":
        pass
    subscriber.end(Ending.DISCONNECTED)


def _last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if value and value.isdigit() and len(value) < 20:
        return int(value)
    return None


async def events(request: Request) -> Response:
    """``GET /inbox/events``: needs a signed-in session (401 otherwise)."""
    login = signed_in(request)
    relay: Relay | None = getattr(request.app.state, "live", None)
    if relay is None or relay.hub.is_closed:
        return JSONResponse({"error": "live updates are not running here"}, status_code=503)
    names = CookieNames.from_settings(request.app.state.settings)
    subscriber = relay.hub.subscribe(
        workspace_id=login.workspace_id,
        user_id=login.user_id,
        token_digest=token_digest(request.cookies.get(names.session, "")),
    )
    return EventStream(relay, subscriber, after=_last_event_id(request))


def uvicorn_exiting() -> bool:
    """True once uvicorn was told to stop.

    uvicorn waits for open responses to finish before it runs the app's lifespan shutdown,
    and a live stream never finishes by itself; uvicorn offers no hook, but the handler it
    installs for SIGTERM/SIGINT is its ``Server.handle_exit``, whose server says so.
    """
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return isinstance(server, uvicorn.Server) and server.should_exit


async def start_relay(app: Starlette, db: Database, settings: Settings) -> Relay:
    """This process's relay, on ``app.state.live``; stop it with ``await relay.stop()``."""
    relay = Relay(db, policy=session_policy(settings), is_exiting=uvicorn_exiting)
    await relay.start()
    app.state.live = relay
    return relay


def live_routes() -> list[Route]:
    return [Route("/inbox/events", events, methods=["GET"])]
