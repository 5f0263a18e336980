"""Send WhatsApp messages with Meta's Cloud API.

Wire format: ``POST {base}/{version}/{phone_number_id}/messages`` with a bearer token and a
JSON body; success is 200 with ``messages[0].id`` (``wamid.…``), failure a Graph error
``{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}``.
Free text is only allowed inside the 24-hour customer-service window; outside it the caller
must send an approved template (``OutboundMessage.template``), or Meta answers 131047.
Checking the settings reads the phone number node, ``GET {base}/{version}/{phone_number_id}``.
The business account's templates, with Meta's review status and category, are read from
``GET {base}/{version}/{waba_id}/message_templates``, a page at a time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Self

import httpx2

from parley.channels.base import (
    Capabilities,
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendResult,
    TemplateRef,
    TemplateReview,
)
from parley.channels.http import (
    error_for_exception,
    json_or_empty,
    make_client,
    status_detail,
)
from parley.channels.meta import graph_error, read_node
from parley.settings import Settings

PROVIDER_NAME = "WhatsApp Cloud API"
TEMPLATE_FIELDS = "id,name,language,status,category,rejected_reason"
TEMPLATES_PER_PAGE = 100
MAX_TEMPLATE_PAGES = 100
"""Meta allows a business account at most 6,000 templates: 60 pages of 100."""

# Graph codes that mean "later", even when Meta sends them with a plain 400.
TRANSIENT_CODES = frozenset(
    {
        "2",  # API Service: temporary downtime or overload
        "4",  # API Too Many Calls (app-level rate limit)
        "80007",  # WhatsApp Business Account rate limit
        "130429",  # Cloud API throughput reached
        "131000",  # Something went wrong: Meta's advice is to try again
        "131016",  # Service unavailable
        "131048",  # Spam rate limit hit
        "131056",  # (business, consumer) pair rate limit: too many to one number
        "133004",  # Server temporarily unavailable
    }
)

# Graph codes that refuse the store's token or business account, not the message: fixed
# in Meta's Business Manager or parley's settings, the same message would go through.
ACCOUNT_CODES = frozenset(
    {
        "0",  # AuthException: the access token was invalidated
        "3",  # the app lacks the capability for this endpoint
        "10",  # permission not granted or revoked
        "190",  # access token expired or invalid
        "200",  # API permission missing
        "368",  # the account is temporarily blocked for policy violations
        "131005",  # access denied
        "131031",  # the business account is locked
        "131042",  # a payment problem on the business account
        "133010",  # the sending phone number is not registered
    }
)


class WhatsappCloud:
    """WhatsApp Cloud API adapter; one instance holds one pooled HTTP client for all sends."""

    kind: ClassVar[ChannelKind] = ChannelKind.WHATSAPP
    provider: ClassVar[str] = "whatsapp_cloud"
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_len=4096,
        supports_media=True,
        supports_buttons=True,
        session_window=timedelta(hours=24),
        requires_template_outside_window=True,
    )

    def __init__(
        self,
        *,
        phone_number_id: str,
        access_token: str,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
        business_account_id: str = "",
        timeout: float = 10.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        graph = f"{base_url.rstrip('/')}/{api_version}"
        self.number_url = str(httpx2.URL(f"{graph}/{phone_number_id}"))
        self.messages_url = f"{self.number_url}/messages"
        self.templates_url = (
            str(httpx2.URL(f"{graph}/{business_account_id}/message_templates"))
            if business_account_id
            else None
        )
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._client = make_client(timeout, transport)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """Build from ``whatsapp_*`` settings; ``overrides`` (e.g. ``transport``) win."""
        options: dict[str, Any] = {
            "phone_number_id": settings.whatsapp_phone_number_id,
            "access_token": settings.whatsapp_access_token,
            "base_url": settings.whatsapp_base_url,
            "api_version": settings.whatsapp_api_version,
            "business_account_id": settings.whatsapp_business_account_id,
            "timeout": settings.provider_timeout_seconds,
        }
        return cls(**(options | overrides))

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one text or template message; raise Transient/PermanentChannelError on failure."""
        try:
            response = await self._client.post(
                self.messages_url, json=build_payload(message), headers=self._headers
            )
        except httpx2.HTTPError as exc:
            raise error_for_exception(exc, provider=PROVIDER_NAME) from exc

        body = json_or_empty(response)
        if response.is_success:
            return SendResult(provider_message_id=_message_id(body, response), raw=body)

        raise graph_error(
            response,
            body,
            transient_codes=TRANSIENT_CODES,
            reason=_reason,
            account_codes=ACCOUNT_CODES,
        )

    async def check(self) -> str:
        """Read the sending phone number with the token (both must be right for it), then
        the business account's templates, which the policy reads hourly."""
        number = await read_node(
            self._client,
            self.number_url,
            headers=self._headers,
            fields="display_phone_number,verified_name",
            provider="WhatsApp",
            transient_codes=TRANSIENT_CODES,
            account_codes=ACCOUNT_CODES,
        )
        shown = number.get("display_phone_number") or number.get("id") or "?"
        name = f" ({number['verified_name']})" if number.get("verified_name") else ""
        said = f"the token reads the WhatsApp number {shown}{name}"
        if self.templates_url is None:
            return f"{said}; no business account id, so its templates are not read"
        templates = await self.list_templates()
        approved = sum(1 for template in templates if template.status == "APPROVED")
        marketing = sum(1 for template in templates if template.category == "MARKETING")
        return (
            f"{said} and {len(templates)} templates of its business account "
            f"({approved} approved, {marketing} marketing)"
        )

    async def list_templates(self) -> list[TemplateReview]:
        """Every template of the business account, with Meta's status and category.

        Pages are followed by their ``after`` cursor on our own URL, never by the
        ``paging.next`` address the answer names, which would be handed the token.
        """
        if self.templates_url is None:
            raise PermanentChannelError("no WhatsApp business account id is set")
        reviews: list[TemplateReview] = []
        after: str | None = None
        for _ in range(MAX_TEMPLATE_PAGES):
            params = {"limit": str(TEMPLATES_PER_PAGE)} | ({"after": after} if after else {})
            page = await read_node(
                self._client,
                self.templates_url,
                headers=self._headers,
                fields=TEMPLATE_FIELDS,
                params=params,
                provider="WhatsApp",
                transient_codes=TRANSIENT_CODES,
                account_codes=ACCOUNT_CODES,
            )
            data = page.get("data")
            if not isinstance(data, list):
                raise PermanentChannelError("WhatsApp listed the templates without their data")
            reviews.extend(_reviews(data))
            paging = _object(page.get("paging"))
            after = _object(paging.get("cursors")).get("after")
            if not paging.get("next") or not isinstance(after, str) or not after:
                return reviews
        raise PermanentChannelError(
            f"WhatsApp listed more than {MAX_TEMPLATE_PAGES} pages of templates"
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The JSON body for ``/messages``: a template when one is set, free text otherwise."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        # Cloud API wants the wa_id: E.164 digits without the leading "+".
        "to": message.to.strip().removeprefix("+"),
        # Handed back on every status receipt for this message.
        "biz_opaque_callback_data": message.idempotency_key,
    }
    if message.template is not None:
        payload["type"] = "template"
        payload["template"] = _template(message.template)
    else:
        payload["type"] = "text"
        payload["text"] = {"body": message.text, "preview_url": True}
    return payload


def _template(template: TemplateRef) -> dict[str, Any]:
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.body_parameters:
        body["components"] = [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": p} for p in template.body_parameters],
            }
        ]
    return body


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reviews(data: list[Any]) -> list[TemplateReview]:
    """Graph's template items; one without its name, language, status or category (Meta
    always sends them) is left out."""
    reviews = []
    for item in data:
        if not isinstance(item, dict):
            continue
        values = [item.get(key) for key in ("name", "language", "status", "category")]
        if not all(isinstance(value, str) and value for value in values):
            continue
        name, language, status, category = (str(value) for value in values)
        reason = item.get("rejected_reason")
        reviews.append(
            TemplateReview(
                name=name,
                language=language,
                status=status.upper(),
                category=category.upper(),
                meta_id=str(item["id"]) if item.get("id") is not None else None,
                reason=reason if isinstance(reason, str) and reason not in ("", "NONE") else None,
            )
        )
    return reviews


def _message_id(body: dict[str, Any], response: httpx2.Response) -> str:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        message_id = messages[0].get("id")
        if isinstance(message_id, str) and message_id:
            return message_id
    # Meta may have accepted the message; retrying could deliver it twice.
    raise PermanentChannelError(f"WhatsApp answered {response.status_code} without a message id")


def _reason(status_code: int, provider_code: str | None, error: dict[str, Any]) -> str:
    verb = "rejected the message" if status_code < 500 else "could not take the message"
    reason = f"WhatsApp {verb} ({status_detail(status_code, provider_code)})"
    if error.get("message"):
        reason += f": {error['message']}"
    error_data = error.get("error_data")
    if isinstance(error_data, dict) and error_data.get("details"):
        reason += f" - {error_data['details']}"
    return reason
