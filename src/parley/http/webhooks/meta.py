"""``/webhooks/whatsapp/{workspace}`` and ``/webhooks/instagram/{workspace}``: Meta's webhooks.

Both are signed the same way (``X-Hub-Signature-256``, keyed with the app secret) and
both begin with the ``hub.challenge`` handshake, answered only for the workspace's own
verify token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from parley.channels import meta
from parley.channels.base import InboundEvent, SignatureError
from parley.channels.instagram import webhook as instagram
from parley.channels.whatsapp_cloud import webhook as whatsapp
from parley.db import Database
from parley.http.webhooks.inbound import InboundDelivery, delivery_key, nudge_worker, receive
from parley.workspaces import service as workspaces
from parley.workspaces.access import AccountKeys

log = logging.getLogger(__name__)

WHATSAPP = "whatsapp_cloud"
INSTAGRAM = "instagram"
KEPT_HEADERS = ("x-hub-signature-256", "content-type", "user-agent")


def _verify_tokens(db: Database, slug: str, provider: str) -> list[str]:
    with db.transaction() as session:
        workspace = workspaces.find_access(session, slug=slug)
        if workspace is None:
            return []
        accounts = workspaces.channel_accounts(
            session, workspace_id=workspace.id, provider=provider
        )
        return [a.secrets["verify_token"] for a in accounts if a.secrets.get("verify_token")]


async def _handshake(request: Request, provider: str) -> Response:
    """Echo ``hub.challenge`` for ``hub.mode=subscribe`` with this workspace's token; 403."""
    slug = request.path_params["workspace"]
    tokens = await run_in_threadpool(_verify_tokens, request.app.state.db, slug, provider)
    params = dict(request.query_params)
    for token in tokens:
        challenge = meta.handshake(params, token)
        if challenge is not None:
            return PlainTextResponse(challenge)
    log.warning("%s handshake for %s refused: wrong mode or verify token", provider, slug)
    return JSONResponse({"error": "verification failed"}, status_code=403)


def _verifier(body: bytes, header: str | None) -> Callable[[Sequence[AccountKeys]], None]:
    def verify(accounts: Sequence[AccountKeys]) -> None:
        secrets = {a.secrets.get("app_secret") for a in accounts} - {None, ""}
        for secret in secrets:
            try:
                meta.verify_signature(body, header, str(secret))
            except SignatureError:
                continue
            return
        raise SignatureError("X-Hub-Signature-256 does not match")

    return verify


async def _post(
    request: Request, provider: str, parser: Callable[[bytes], list[InboundEvent]]
) -> Response:
    body = await request.body()
    answer = await receive(
        request.app.state.db,
        request.path_params["workspace"],
        InboundDelivery(
            provider=provider,
            key=delivery_key(body),
            body=body.decode("utf-8", errors="replace"),
            headers={name: value for name in KEPT_HEADERS if (value := request.headers.get(name))},
            verify=_verifier(body, request.headers.get("x-hub-signature-256")),
            parse=lambda: parser(body),
        ),
    )
    nudge_worker(request)
    return JSONResponse(answer)


async def whatsapp_handshake(request: Request) -> Response:
    return await _handshake(request, WHATSAPP)


async def whatsapp_webhook(request: Request) -> Response:
    return await _post(request, WHATSAPP, whatsapp.parse)


async def instagram_handshake(request: Request) -> Response:
    return await _handshake(request, INSTAGRAM)


async def instagram_webhook(request: Request) -> Response:
    return await _post(request, INSTAGRAM, instagram.parse)
