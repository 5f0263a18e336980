"""A WhatsApp media id to the file: Graph's ``GET /{version}/{media-id}``.

Meta answers ``{"url": ..., "mime_type": ..., "sha256": ..., "file_size": ...}`` for the
number's access token; the URL is good for five minutes and needs the same token. So it
is looked up afresh each time an agent opens the file, never stored.
"""

from __future__ import annotations

import httpx2

from parley.channels.http import json_or_empty
from parley.channels.media import Download, MediaUnavailable


async def media_download(
    client: httpx2.AsyncClient,
    *,
    base_url: str,
    api_version: str,
    access_token: str,
    media_id: str,
    phone_number_id: str | None,
) -> Download:
    """Where ``media_id`` can be fetched now, and with which header.

    ``phone_number_id`` (the number the customer wrote to) makes Meta check the media was
    sent to that number, so one store's token never fetches another number's files.
    """
    if not media_id.isascii() or not media_id.isdigit():
        raise MediaUnavailable(f"{media_id!r} is not a WhatsApp media id")
    params = {"phone_number_id": phone_number_id} if phone_number_id else None
    authorization = {"Authorization": f"Bearer {access_token}"}
    try:
        answer = await client.get(
            f"{base_url.rstrip('/')}/{api_version}/{media_id}",
            params=params,
            headers=authorization,
        )
    except httpx2.HTTPError as exc:
        raise MediaUnavailable(f"WhatsApp did not answer ({exc.__class__.__name__})") from exc
    body = json_or_empty(answer)
    if answer.status_code != 200:
        error = body.get("error")
        said = error.get("message") if isinstance(error, dict) else None
        raise MediaUnavailable(
            f"WhatsApp refused the media lookup ({said or f'HTTP {answer.status_code}'})"
        )
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise MediaUnavailable("WhatsApp's media lookup named no file")
    return Download(url=url, headers=authorization)
