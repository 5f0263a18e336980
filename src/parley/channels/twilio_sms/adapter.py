"""Send SMS with Twilio's Messages resource.

Wire format: ``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP Basic
auth (AccountSid, AuthToken) and a form-encoded body; Twilio answers 201 with the new
Message resource (``sid`` ``SM…``, ``status`` ``queued``/``accepted``) or an error body
``{"code", "message", "more_info", "status"}``. Checking the settings reads
``GET .../Accounts/{AccountSid}.json`` and ``.../IncomingPhoneNumbers.json?PhoneNumber=``.
"""

from __future__ import annotations

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
    error_for_status,
    json_or_empty,
    make_client,
    status_detail,
)
from parley.settings import Settings

PROVIDER_NAME = "Twilio"
REFERENCE_PARAMETER = "ref"
"""The ``StatusCallback`` URL's query parameter naming the message: Twilio posts receipts
to (and signs) that URL as given, so it comes back with every receipt."""

# Codes whose meaning a store owner needs spelled out; Twilio's own text is terse.
_EXPLANATIONS = {
    "21610": "the recipient has opted out of messages from this number (replied STOP)",
    "21211": "the 'To' number is not a valid phone number",
    "21614": "the 'To' number cannot receive SMS",
    "21408": "sending to this region is not enabled on the Twilio account",
    "20003": "Twilio rejected the account credentials",
    "20005": "the Twilio account is not active",
    "21212": "the 'From' number in the Twilio settings is not a valid number",
    "21606": "the 'From' number in the Twilio settings cannot send SMS to this destination",
    "21659": "the 'From' number in the Twilio settings is not a number on the Twilio account",
}

# The account or its settings at fault, not the message: fixed in Twilio or in parley's
# settings, the same SMS would go through (see ``AccountChannelError``).
_ACCOUNT_CODES = frozenset({"20003", "20005", "21212", "21408", "21606", "21659"})

# Opt-outs are never retried, whatever status code they arrive with: re-sending to
# someone who replied STOP is both futile and a compliance problem.
_ALWAYS_PERMANENT = frozenset({"21610"})


class TwilioSms:
    """Twilio SMS adapter; one instance holds one pooled HTTP client for all sends."""

    kind: ClassVar[ChannelKind] = ChannelKind.SMS
    provider: ClassVar[str] = "twilio"
    # Twilio splits long bodies into segments itself and refuses bodies over 1600 chars.
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_len=1600)

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = "https://api.twilio.com",
        timeout: float = 10.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        number_set_by: str = "PARLEY_TWILIO_FROM_NUMBER",
    ) -> None:
        """``number_set_by`` names where ``from_number`` was set, for a check that finds
        it is not the account's."""
        self.from_number = from_number
        self.number_set_by = number_set_by
        self.account_sid = account_sid
        self.account_url = str(
            httpx2.URL(f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}")
        )
        self.messages_url = f"{self.account_url}/Messages.json"
        self._auth = httpx2.BasicAuth(account_sid, auth_token)
        self._client = make_client(timeout, transport)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """Build from ``twilio_*`` settings; ``overrides`` (e.g. ``transport``) win."""
        options: dict[str, Any] = {
            "account_sid": settings.twilio_account_sid,
            "auth_token": settings.twilio_auth_token,
            "from_number": settings.twilio_from_number,
            "base_url": settings.twilio_base_url,
            "timeout": settings.provider_timeout_seconds,
        }
        return cls(**(options | overrides))

    async def send(self, message: OutboundMessage) -> SendResult:
        """Create one Message resource; raise Transient/PermanentChannelError on failure."""
        form = {"To": message.to, "From": self.from_number, "Body": message.text}
        if message.status_callback_url:
            form["StatusCallback"] = str(
                httpx2.URL(message.status_callback_url).copy_merge_params(
                    {REFERENCE_PARAMETER: message.idempotency_key}
                )
            )
        try:
            response = await self._client.post(self.messages_url, data=form, auth=self._auth)
        except httpx2.HTTPError as exc:
            raise error_for_exception(exc, provider=PROVIDER_NAME) from exc

        body = json_or_empty(response)
        if response.is_success:
            sid = body.get("sid")
            if not isinstance(sid, str) or not sid:
                # Twilio may well have queued the SMS; a retry could send it twice.
                raise PermanentChannelError(
                    f"Twilio answered {response.status_code} without a message sid"
                )
            return SendResult(
                provider_message_id=sid, status=str(body.get("status") or "queued"), raw=body
            )

        code = body.get("code")
        provider_code = str(code) if code is not None else None
        raise error_for_status(
            response,
            reason=_reason(response.status_code, provider_code, body.get("message")),
            provider_code=provider_code,
            transient=False if provider_code in _ALWAYS_PERMANENT else None,
            account_codes=_ACCOUNT_CODES,
        )

    async def check(self) -> str:
        """Fetch the Account resource (are the credentials good, is it active?) and, for a
        phone number sender, the account's IncomingPhoneNumber with that number."""
        account = await self._get(f"{self.account_url}.json")
        status = account.get("status")
        if status != "active":
            raise AccountChannelError(
                f"the Twilio account {self.account_sid} is {status or 'of unknown status'}",
                provider_code="20005",
            )
        said = f"the Twilio account {self.account_sid} is active"
        if not self.from_number.startswith("+"):
            return f"{said}; it sends as {self.from_number}"
        numbers = await self._get(
            f"{self.account_url}/IncomingPhoneNumbers.json",
            params={"PhoneNumber": self.from_number},
        )
        if not numbers.get("incoming_phone_numbers"):
            raise AccountChannelError(
                f"{self.from_number} ({self.number_set_by}) is not a number of the Twilio"
                f" account {self.account_sid}",
                provider_code="21659",
            )
        return f"{said} and {self.from_number} is one of its numbers"

    async def _get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = await self._client.get(url, params=params, auth=self._auth)
        except httpx2.HTTPError as exc:
            raise error_for_exception(exc, provider=PROVIDER_NAME) from exc
        body = json_or_empty(response)
        if response.is_success:
            return body
        code = body.get("code")
        provider_code = str(code) if code is not None else None
        verb = "refused the settings" if response.status_code < 500 else "could not answer"
        reason = f"Twilio {verb} ({status_detail(response.status_code, provider_code)})"
        if provider_code in _EXPLANATIONS:
            reason += f": {_EXPLANATIONS[provider_code]}"
        if body.get("message"):
            reason += f" - {body['message']}"
        raise error_for_status(
            response, reason=reason, provider_code=provider_code, account_codes=_ACCOUNT_CODES
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def _reason(status_code: int, provider_code: str | None, twilio_message: object) -> str:
    verb = "rejected the SMS" if status_code < 500 else "could not take the SMS"
    reason = f"Twilio {verb} ({status_detail(status_code, provider_code)})"
    if provider_code in _EXPLANATIONS:
        reason += f": {_EXPLANATIONS[provider_code]}"
    if twilio_message:
        reason += f" - {twilio_message}"
    return reason
