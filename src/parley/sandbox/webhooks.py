"""What the providers post *to* parley, built and signed the way each provider does it.

The stand-ins in this package receive parley's sends; this module goes the other way. It
builds the real webhook payloads (WhatsApp Cloud JSON, Twilio form parameters, Instagram
messaging JSON, Mailgun route fields), signs them with the demo workspace's secrets from
the settings (or, for a status of a message sent from another registered account or
number, with that one's secret), and posts them to parley's own webhook routes
(``{public_url}/webhooks/{provider}/{sandbox_workspace}``), so inbound messages and
delivery statuses travel through exactly the code a real provider would exercise.

- :class:`ProviderWebhooks` builds one signed request per event;
- :class:`WebhookPoster` sends them with httpx2, now or in the background;
- :class:`StatusReporter` is what the WhatsApp and Twilio stand-ins call after accepting
  a message: ``sent``, then ``delivered``, a moment apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from functools import partial
from typing import Any, Final
from urllib.parse import urlencode

import httpx2

from parley.channels import meta
from parley.channels.email_inbound import mailgun
from parley.channels.http import tls_context
from parley.channels.twilio_sms import webhook as twilio_webhook
from parley.channels.twilio_sms.segments import count_segments
from parley.clock import utc_now
from parley.sandbox.store import StoredMedia
from parley.sandbox.twilio import API_VERSION as TWILIO_API_VERSION
from parley.settings import SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID, Settings

log = logging.getLogger(__name__)

# The number customers see; parley does not read it (it keys on phone_number_id), but
# real payloads always carry it.
SANDBOX_DISPLAY_PHONE_NUMBER: Final = "15550100001"
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_STATUS_DELAY_SECONDS: Final = 0.5


@dataclass(frozen=True)
class SignedWebhook:
    """One provider → parley request, signed and ready to post."""

    url: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(payload: dict[str, Any]) -> bytes:
    # Compact, like Meta's own bodies; the signature covers these exact bytes.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class ProviderWebhooks:
    """Builds each provider's webhook for the sandbox's demo workspace."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._base_url = settings.resolved_public_url()

    def url(self, provider: str) -> str:
        """parley's webhook route for ``provider`` in the sandbox's workspace."""
        return twilio_webhook.public_url(
            self._base_url, f"/webhooks/{provider}/{self._settings.sandbox_workspace}", ""
        )

    def _meta(
        self, provider: str, payload: dict[str, Any], app_secret: str | None = None
    ) -> SignedWebhook:
        body = _json(payload)
        if app_secret is None:
            app_secret = self._settings.demo_meta_app_secret
        signature = meta.sign(body, app_secret)
        return SignedWebhook(
            url=self.url(provider),
            content=body,
            headers={"Content-Type": "application/json", meta.SIGNATURE_HEADER: signature},
        )

    def _whatsapp(
        self,
        value: dict[str, Any],
        *,
        phone_number_id: str | None = None,
        app_secret: str | None = None,
    ) -> SignedWebhook:
        if phone_number_id is None:
            phone_number_id = self._settings.whatsapp_phone_number_id
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": SANDBOX_DISPLAY_PHONE_NUMBER,
                "phone_number_id": phone_number_id,
            },
        } | value
        return self._business_account_change("messages", value, app_secret=app_secret)

    def _business_account_change(
        self, field_name: str, value: dict[str, Any], *, app_secret: str | None = None
    ) -> SignedWebhook:
        entry = {
            "id": self._settings.whatsapp_business_account_id
            or SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID,
            "time": int(utc_now().timestamp()),
            "changes": [{"value": value, "field": field_name}],
        }
        return self._meta(
            "whatsapp", {"object": "whatsapp_business_account", "entry": [entry]}, app_secret
        )

    def whatsapp_template_review(
        self, *, template: dict[str, Any], category_changed_from: str | None
    ) -> SignedWebhook:
        """Meta's word on a template it reviewed (``message_template_status_update``) or
        re-classed (``template_category_update``), for a catalogue item of the stand-in."""
        named = {
            "message_template_id": int(template["id"]),
            "message_template_name": template["name"],
            "message_template_language": template["language"],
        }
        if category_changed_from is not None:
            return self._business_account_change(
                "template_category_update",
                named
                | {
                    "previous_category": category_changed_from,
                    "new_category": template["category"],
                },
            )
        return self._business_account_change(
            "message_template_status_update",
            named
            | {
                "event": template["status"],
                "reason": "NONE",
                "message_template_category": template["category"],
            },
        )

    def whatsapp_message(
        self, *, wa_id: str, text: str, message_id: str, name: str | None, reply_to: str | None
    ) -> SignedWebhook:
        """A customer's text message, as the Cloud API posts it."""
        return self._customer_message(
            {"type": "text", "text": {"body": text}},
            wa_id=wa_id,
            message_id=message_id,
            name=name,
            reply_to=reply_to,
        )

    def whatsapp_image(
        self,
        *,
        wa_id: str,
        media: StoredMedia,
        caption: str | None,
        message_id: str,
        name: str | None,
        reply_to: str | None,
    ) -> SignedWebhook:
        """A customer's photo, as the Cloud API posts it: named only by its media id, which
        parley looks up on Graph (the WhatsApp stand-in's media node) to fetch the file."""
        image = {"id": media.media_id, "mime_type": media.mime_type, "sha256": media.sha256}
        if caption:
            image["caption"] = caption
        return self._customer_message(
            {"type": "image", "image": image},
            wa_id=wa_id,
            message_id=message_id,
            name=name,
            reply_to=reply_to,
        )

    def _customer_message(
        self,
        content: dict[str, Any],
        *,
        wa_id: str,
        message_id: str,
        name: str | None,
        reply_to: str | None,
    ) -> SignedWebhook:
        message: dict[str, Any] = {
            "from": wa_id,
            "id": message_id,
            "timestamp": str(int(utc_now().timestamp())),
            **content,
        }
        if reply_to:
            message["context"] = {"from": SANDBOX_DISPLAY_PHONE_NUMBER, "id": reply_to}
        profile = {"name": name} if name else {}
        return self._whatsapp(
            {"contacts": [{"profile": profile, "wa_id": wa_id}], "messages": [message]}
        )

    def whatsapp_status(
        self,
        *,
        message_id: str,
        wa_id: str,
        status: str,
        reference: str | None = None,
        phone_number_id: str | None = None,
        app_secret: str | None = None,
    ) -> SignedWebhook:
        """A delivery status for a message parley sent, with the ``biz_opaque_callback_data``
        the send gave, as the Cloud API hands it back.

        ``phone_number_id`` is the number that sent it (``metadata.phone_number_id``, which
        parley routes on) and ``app_secret`` what signs it; ``None`` means the deployment's
        number and ``demo_meta_app_secret``."""
        item = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(utc_now().timestamp())),
            "recipient_id": wa_id,
        }
        if reference is not None:
            item["biz_opaque_callback_data"] = reference
        return self._whatsapp(
            {"statuses": [item]}, phone_number_id=phone_number_id, app_secret=app_secret
        )

    def _twilio(
        self, url: str, params: dict[str, str], auth_token: str | None = None
    ) -> SignedWebhook:
        if auth_token is None:
            auth_token = self._settings.demo_twilio_auth_token
        signature = twilio_webhook.compute_signature(url, params, auth_token)
        return SignedWebhook(
            url=url,
            content=urlencode(params).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                twilio_webhook.SIGNATURE_HEADER: signature,
            },
        )

    def twilio_message(self, *, sender: str, text: str, message_sid: str) -> SignedWebhook:
        """An inbound SMS, as Twilio posts it to the number's messaging webhook."""
        params = {
            "SmsMessageSid": message_sid,
            "NumMedia": "0",
            "SmsSid": message_sid,
            "SmsStatus": "received",
            "Body": text,
            "To": self._settings.twilio_from_number,
            "NumSegments": str(count_segments(text)),
            "MessageSid": message_sid,
            "AccountSid": self._settings.twilio_account_sid,
            "From": sender,
            "ApiVersion": TWILIO_API_VERSION,
        }
        return self._twilio(self.url("twilio"), params)

    def twilio_status(
        self,
        *,
        callback_url: str,
        message_sid: str,
        sender: str,
        to: str,
        status: str,
        account_sid: str | None = None,
        auth_token: str | None = None,
        messaging_service: str | None = None,
    ) -> SignedWebhook:
        """A status callback, posted to (and signed over) the ``StatusCallback`` URL.

        ``account_sid`` is the account that sent the message and ``auth_token`` what signs
        the callback; ``None`` means the deployment's account and ``demo_twilio_auth_token``.
        ``messaging_service`` is the Messaging Service it went through, if any (``sender``
        is then the number of its pool that sent it).
        """
        if account_sid is None:
            account_sid = self._settings.twilio_account_sid
        params = {
            "SmsSid": message_sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": to,
            "MessageSid": message_sid,
            "AccountSid": account_sid,
            "From": sender,
            "ApiVersion": TWILIO_API_VERSION,
        }
        if messaging_service is not None:
            params["MessagingServiceSid"] = messaging_service
        return self._twilio(callback_url, params, auth_token)

    def instagram_message(
        self, *, igsid: str, text: str, mid: str, reply_to: str | None
    ) -> SignedWebhook:
        """A direct message to the store's Instagram account."""
        account = self._settings.instagram_account_id
        millis = int(utc_now().timestamp() * 1000)
        message: dict[str, Any] = {"mid": mid, "text": text}
        if reply_to:
            message["reply_to"] = {"mid": reply_to}
        event = {
            "sender": {"id": igsid},
            "recipient": {"id": account},
            "timestamp": millis,
            "message": message,
        }
        entry = {"id": account, "time": millis, "messaging": [event]}
        return self._meta("instagram", {"object": "instagram", "entry": [entry]})

    def inbound_address(self) -> str:
        """The store's address customers write to: the address in ``email_from``."""
        return parseaddr(self._settings.email_from)[1]

    def mailgun_message(
        self,
        *,
        address: str,
        name: str | None,
        subject: str | None,
        text: str,
        message_id: str,
        reply_to: str | None,
    ) -> SignedWebhook:
        """An email to the store, as a Mailgun route's ``forward()`` posts it."""
        sender = formataddr((name, address)) if name else address
        headers = [["From", sender], ["To", self.inbound_address()], ["Message-Id", message_id]]
        fields = {
            "recipient": self.inbound_address(),
            "sender": address,
            "from": sender,
            "body-plain": text,
            "stripped-text": text,
            "Message-Id": message_id,
        }
        if subject:
            fields["subject"] = subject
            headers.append(["Subject", subject])
        if reply_to:
            fields["In-Reply-To"] = fields["References"] = reply_to
            headers += [["In-Reply-To", reply_to], ["References", reply_to]]
        timestamp = str(int(utc_now().timestamp()))
        token = secrets.token_hex(25)
        fields |= {
            "message-headers": json.dumps(headers),
            "timestamp": timestamp,
            "token": token,
            "signature": mailgun.sign(timestamp, token, self._settings.demo_mailgun_signing_key),
        }
        return SignedWebhook(
            url=self.url("email"),
            content=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


class WebhookPoster:
    """Posts signed webhooks to parley, now (:meth:`post`) or later (:meth:`post_later`).

    Each post uses a short-lived client: the sandbox is mounted inside parley's app, whose
    lifespan never reaches a mounted app, so a long-lived client would have no one to
    close it. ``transport`` lets tests answer without a server (``httpx2.MockTransport``
    or an ``httpx2.ASGITransport`` around a small app).
    """

    def __init__(
        self,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        delay_seconds: float = DEFAULT_STATUS_DELAY_SECONDS,
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._delay_seconds = delay_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    async def post(self, webhook: SignedWebhook) -> httpx2.Response:
        """POST one webhook; raises ``httpx2.HTTPError`` when parley cannot be reached."""
        async with httpx2.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            follow_redirects=False,
            verify=tls_context(),
        ) as client:
            return await client.post(webhook.url, content=webhook.content, headers=webhook.headers)

    def post_later(self, builds: Sequence[Callable[[], SignedWebhook]]) -> None:
        """Build and post each webhook in turn, ``delay_seconds`` apart, in the background.

        Each is built just before it is posted, so its timestamp is when it was "sent".
        A failure is logged and never reaches the request that scheduled it.
        """
        task = asyncio.get_running_loop().create_task(self._post_in_order(builds))
        # The loop keeps only a weak reference to tasks: hold one until it finishes.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait for every background post scheduled so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def _post_in_order(self, builds: Sequence[Callable[[], SignedWebhook]]) -> None:
        for build in builds:
            await asyncio.sleep(self._delay_seconds)
            webhook = build()
            try:
                response = await self.post(webhook)
            except httpx2.HTTPError as exc:
                log.warning("sandbox: could not post a webhook to %s: %r", webhook.url, exc)
                continue
            if not response.is_success:
                log.warning(
                    "sandbox: %s answered a webhook with HTTP %d: %.200s",
                    webhook.url,
                    response.status_code,
                    response.text,
                )


class StatusReporter:
    """Posts ``sent`` then ``delivered`` for each message a stand-in accepted.

    Each report is signed, and names the account or number, as the one that sent the
    message: the stand-in passes its sid (or phone number id) and signing secret, read
    from :class:`~parley.sandbox.accounts.SandboxAccounts`. Real Twilio signs callbacks
    with the account's auth token, the one the API calls use, and so does the sandbox for
    every account registered with ``add_twilio``. The deployment's own account is the
    exception: the demo keeps two settings (``twilio_auth_token`` for the API stand-in,
    ``demo_twilio_auth_token`` for the workspace's webhook check), and its callbacks are
    signed with the second, since that is what parley's route verifies against.
    """

    def __init__(self, settings: Settings, poster: WebhookPoster) -> None:
        self._webhooks = ProviderWebhooks(settings)
        self._poster = poster

    def whatsapp_accepted(
        self,
        *,
        message_id: str,
        wa_id: str,
        phone_number_id: str,
        app_secret: str | None,
        reference: str | None = None,
    ) -> None:
        """Report to parley's WhatsApp webhook, as the Cloud API does for every message.

        ``app_secret`` is the sending number's (``None``: ``demo_meta_app_secret``)."""
        self._poster.post_later(
            [
                partial(
                    self._webhooks.whatsapp_status,
                    message_id=message_id,
                    wa_id=wa_id,
                    status=status,
                    reference=reference,
                    phone_number_id=phone_number_id,
                    app_secret=app_secret,
                )
                for status in ("sent", "delivered")
            ]
        )

    def twilio_accepted(
        self,
        *,
        callback_url: str,
        message_sid: str,
        sender: str,
        to: str,
        account_sid: str,
        signing_token: str,
        messaging_service: str | None = None,
    ) -> None:
        """Report to the message's ``StatusCallback``, as Twilio does when one was given,
        signed with ``signing_token`` (the sending account's ``callback_token``), naming
        the ``messaging_service`` the message went through, if any."""
        self._poster.post_later(
            [
                partial(
                    self._webhooks.twilio_status,
                    callback_url=callback_url,
                    message_sid=message_sid,
                    sender=sender,
                    to=to,
                    status=status,
                    account_sid=account_sid,
                    auth_token=signing_token,
                    messaging_service=messaging_service,
                )
                for status in ("sent", "delivered")
            ]
        )
