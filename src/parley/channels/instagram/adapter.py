"""Send Instagram messages with the Instagram API with Instagram Login.

Wire format: ``POST {base}/{version}/{instagram_account_id}/messages`` with a bearer token
and a JSON body ``{"recipient": {...}, "message": {"text": ...}}``; success is 200 with
``{"recipient_id", "message_id"}``, failure a Graph error ``{"error": {"message", "type",
"code", "error_subcode", "fbtrace_id"}}``.

Addressing (``OutboundMessage.to``):

- an Instagram-scoped user id (IGSID, ``"1784..."``): a direct message,
  ``{"recipient": {"id": IGSID}}``;
- ``"comment:<comment_id>"``: a *private reply* to that comment,
  ``{"recipient": {"comment_id": ...}}``. The commenter may never have messaged the store,
  so there is no IGSID conversation yet; the comment is the address. The prefix lives in
  ``to`` (not only in ``in_reply_to``) because it changes *who* receives the message, and
  ``to`` is what delivery, dedupe and opt-out checks already key on. ``in_reply_to`` is
  not put on the wire: the comment id in ``to`` is all Meta needs.

Policy (Meta's, enforced by the caller, not here): a DM is free within 24 h of the
customer's last message; from 24 h to 7 d only a person may answer, and the message must
carry the ``HUMAN_AGENT`` tag, which this adapter adds when ``is_human_agent`` is set. A
private reply is one message per comment within 7 days of it and takes no tag.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Self

import httpx2

from parley.channels.base import (
    AccountChannelError,
    Capabilities,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendResult,
)
from parley.channels.http import (
    error_for_exception,
    json_or_empty,
    make_client,
    status_detail,
)
from parley.channels.meta import graph_error, read_node
from parley.settings import Settings

PROVIDER_NAME = "Instagram"
COMMENT_PREFIX = "comment:"

# Graph codes that mean "later", even when Meta sends them with a plain 400.
TRANSIENT_CODES = frozenset(
    {
        "2",  # API Service: temporary downtime or overload
        "4",  # Application request limit reached
        "17",  # User request limit reached
        "32",  # Page/account request limit reached
        "613",  # Calls to this API have exceeded the rate limit
    }
)

# Graph codes that refuse the page's token, not the message. (Code 10 is not among them:
# Instagram sends it for a message outside the recipient's window.)
ACCOUNT_CODES = frozenset(
    {
        "0",  # AuthException: the access token was invalidated
        "190",  # access token expired or invalid
    }
)


class Instagram:
    """Instagram messaging adapter; one instance holds one pooled HTTP client for all sends."""

    kind: ClassVar[ChannelKind] = ChannelKind.INSTAGRAM
    provider: ClassVar[str] = "instagram"
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_len=1000, session_window=timedelta(hours=24)
    )

    def __init__(
        self,
        *,
        instagram_account_id: str,
        access_token: str,
        base_url: str = "https://graph.instagram.com",
        api_version: str = "v21.0",
        timeout: float = 10.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        root = f"{base_url.rstrip('/')}/{api_version}"
        self.account_id = instagram_account_id
        self.me_url = str(httpx2.URL(f"{root}/me"))
        self.messages_url = str(httpx2.URL(f"{root}/{instagram_account_id}/messages"))
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._client = make_client(timeout, transport)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """Build from ``instagram_*`` settings; ``overrides`` (e.g. ``transport``) win."""
        options: dict[str, Any] = {
            "instagram_account_id": settings.instagram_account_id,
            "access_token": settings.instagram_access_token,
            "base_url": settings.instagram_base_url,
            "api_version": settings.instagram_api_version,
            "timeout": settings.provider_timeout_seconds,
        }
        return cls(**(options | overrides))

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one DM or private reply; raise Transient/PermanentChannelError on failure."""
        payload = build_payload(message)
        try:
            response = await self._client.post(
                self.messages_url, json=payload, headers=self._headers
            )
        except httpx2.HTTPError as exc:
            raise error_for_exception(exc, provider=PROVIDER_NAME) from exc

        body = json_or_empty(response)
        if response.is_success:
            message_id = body.get("message_id")
            if not isinstance(message_id, str) or not message_id:
                # Meta may have delivered it; a retry could send the message twice.
                raise PermanentChannelError(
                    f"Instagram answered {response.status_code} without a message id"
                )
            return SendResult(provider_message_id=message_id, raw=body)

        raise graph_error(
            response,
            body,
            transient_codes=TRANSIENT_CODES,
            reason=_reason,
            account_codes=ACCOUNT_CODES,
        )

    async def check(self) -> str:
        """Read ``/me`` with the token: it must be the professional account that sends."""
        me = await read_node(
            self._client,
            self.me_url,
            headers=self._headers,
            fields="user_id,username",
            provider=PROVIDER_NAME,
            transient_codes=TRANSIENT_CODES,
            account_codes=ACCOUNT_CODES,
        )
        username = f"@{me['username']}" if me.get("username") else "an unnamed account"
        if str(me.get("user_id")) != self.account_id:
            raise AccountChannelError(
                f"the Instagram token is {username}'s ({me.get('user_id')}), not the account"
                f" in PARLEY_INSTAGRAM_ACCOUNT_ID ({self.account_id})"
            )
        return f"the token is the Instagram account {username}'s"

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The JSON body for ``/messages``; PermanentChannelError if there is no recipient."""
    to = message.to.strip()
    comment_id = to.removeprefix(COMMENT_PREFIX).strip() if to.startswith(COMMENT_PREFIX) else None
    if not to or comment_id == "":
        raise PermanentChannelError("an Instagram message needs a recipient id or comment id")
    if comment_id is not None:
        return {"recipient": {"comment_id": comment_id}, "message": {"text": message.text}}
    payload: dict[str, Any] = {"recipient": {"id": to}, "message": {"text": message.text}}
    if message.is_human_agent:
        payload["messaging_type"] = "MESSAGE_TAG"
        payload["tag"] = "HUMAN_AGENT"
    return payload


def _reason(status_code: int, provider_code: str | None, error: dict[str, Any]) -> str:
    verb = "rejected the message" if status_code < 500 else "could not take the message"
    reason = f"Instagram {verb} ({status_detail(status_code, provider_code)})"
    if error.get("message"):
        reason += f": {error['message']}"
    return reason
