"""The contract every channel adapter implements, and the types that cross it.

An adapter knows one provider's wire format and nothing of parley's domain: it never
touches the database. ``messaging/`` hands it an :class:`OutboundMessage` and stores the
:class:`SendResult`; a failure is classified as :class:`TransientChannelError` (retry with
backoff: network errors, timeouts, 429, 5xx) or :class:`PermanentChannelError` (fail at
once: other 4xx, a recipient the provider refuses), of which :class:`AccountChannelError`
is the provider refusing the store's own account or settings. Adding a channel means one
folder here and one line in ``registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol, Self


class ChannelKind(StrEnum):
    """Stored values: never renumber or reuse."""

    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    INSTAGRAM = "instagram"
    WEBCHAT = "webchat"


@dataclass(frozen=True)
class Capabilities:
    """What a channel can carry; the renderer degrades content to fit."""

    max_text_len: int
    supports_media: bool = False
    supports_buttons: bool = False
    supports_html: bool = False
    session_window: timedelta | None = None
    requires_template_outside_window: bool = False


@dataclass(frozen=True)
class TemplateRef:
    """A pre-approved provider template (WhatsApp) and its filled-in body parameters."""

    name: str
    language: str
    body_parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendingAccount:
    """A store's own account on a provider, to send from instead of the deployment's.

    ``address`` is the provider's id for it (a WhatsApp ``phone_number_id``, a Twilio
    number, a From address) and ``credentials`` what its API takes (an access token; an
    account SID and auth token; none for a From address sent through the deployment's
    relay). ``version`` changes whenever the credentials do, so an adapter built for the
    old ones is not used with the new.
    """

    provider: str
    address: str
    credentials: tuple[tuple[str, str], ...]
    version: str

    @property
    def is_address_only(self) -> bool:
        """No credentials of its own: the store's address on the deployment's provider
        account (a store's own email From on the deployment's relay), sent through the
        deployment's adapter and paced as the deployment's."""
        return not self.credentials

    def credential(self, name: str) -> str:
        """One credential by name ("" when the account has none of that name)."""
        return dict(self.credentials).get(name, "")

    def __repr__(self) -> str:
        # Never the credentials: this object reaches logs inside failed jobs' reprs.
        return f"SendingAccount({self.provider!r}, {self.address!r})"


@dataclass(frozen=True)
class OutboundMessage:
    """One message ready for the wire.

    ``idempotency_key`` is stable across retries of the same message; adapters pass it to
    providers that deduplicate, and email uses it in the ``Message-ID``.
    """

    idempotency_key: str
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    template: TemplateRef | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status_callback_url: str | None = None
    sender_name: str | None = None
    """Display name for channels that show one (email: the store's name before the address)."""
    in_reply_to: str | None = None
    """The provider id of the customer's message this answers (email threading headers,
    an Instagram comment for a private reply)."""
    is_human_agent: bool = False
    """Send with Instagram's ``HUMAN_AGENT`` tag: a person's reply 24 h-7 d after the
    customer's last message. Messaging decides it at send time, where the window is known."""
    account: SendingAccount | None = None
    """The store's own account it goes from; None: the deployment's."""
    reply_address: str | None = None
    """Where the customer's answer should go, when not to the address it came from
    (email: the store's own inbound address, as ``Reply-To``)."""


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted the message."""

    provider_message_id: str
    status: str = "sent"
    raw: dict[str, Any] = field(default_factory=dict)


class ChannelError(Exception):
    """A send failed; ``reason`` is readable by a store owner."""

    def __init__(self, reason: str, *, provider_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider_code = provider_code


class TransientChannelError(ChannelError):
    """Worth retrying later: network trouble, timeouts, 429, 5xx; or a refusal of the
    store's account waited out where no other channel is left (``refuses_account``)."""

    def __init__(
        self,
        reason: str,
        *,
        provider_code: str | None = None,
        retry_after: float | None = None,
        refuses_account: bool = False,
    ) -> None:
        super().__init__(reason, provider_code=provider_code)
        self.retry_after = retry_after
        self.refuses_account = refuses_account


class PermanentChannelError(ChannelError):
    """Retrying cannot help: a rejected recipient, a malformed request."""


class AccountChannelError(PermanentChannelError):
    """The provider refused the store's account, not this message: credentials wrong or
    expired, an account suspended, a sender number not on the account.

    Every message on the channel fails the same way until someone fixes the settings, and
    then this one would go through. So it is final for this channel *now* (a journey falls
    back to the next channel at once), but where no other channel is left the message is
    kept and retried like an outage (:meth:`as_outage`), ending in the dead letter, from
    which it can be sent again once the settings are fixed.
    """

    def as_outage(self) -> TransientChannelError:
        """The same refusal, to be retried with backoff until the settings are fixed."""
        return TransientChannelError(
            self.reason, provider_code=self.provider_code, refuses_account=True
        )


class SignatureError(Exception):
    """A webhook's signature is missing or does not match: refuse it (401), write nothing."""


class MalformedWebhook(ValueError):
    """A correctly signed webhook whose body is not the shape the provider documents.

    The message says what was wrong and where (``entry[0].changes[1].value.messages[0].id``
    is missing), so an operator can compare it with the provider's reference.
    """


@dataclass(frozen=True)
class Attachment:
    """A media reference in an inbound message; parley stores the reference, not the bytes."""

    kind: str
    """image, audio, video, document, sticker, file, location, ..."""
    provider_media_id: str | None = None
    url: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    caption: str | None = None


DELETED = "deleted"
"""An inbound message's kind when its sender took it back (under its own id)."""
EDITED = "edited"
"""An inbound message's kind when its sender changed its words (under its own id)."""


@dataclass(frozen=True)
class InboundMessage:
    """A message a customer wrote to the store, as one provider delivered it.

    ``sender`` is the channel identity: an E.164 phone for SMS and WhatsApp (a WhatsApp
    ``wa_id`` gains its ``+``), a lower-cased address for email, an Instagram-scoped id,
    a web-chat visitor id. ``account`` is the store's own address the message was sent to
    (WhatsApp ``phone_number_id``, Twilio ``To``, Instagram account id, inbound address):
    the receiving side checks it belongs to the workspace the route names.
    """

    channel: ChannelKind
    provider_message_id: str
    sender: str
    text: str
    account: str | None = None
    messaging_service: str | None = None
    """The provider's pool of senders ``account`` belongs to, when the message came
    through one (Twilio's ``MessagingServiceSid``): a store whose address is the pool owns
    the message as surely as one whose address is ``account``."""
    sent_at: datetime | None = None
    sender_name: str | None = None
    kind: str = "text"
    """text, interactive, button, image, ..., comment (an Instagram comment on a post);
    :data:`DELETED` or :data:`EDITED` for a change to an earlier message of the same id."""
    attachments: tuple[Attachment, ...] = ()
    reply_to: str | None = None
    """Provider id of the message this one answers (WhatsApp ``context.id``, email
    ``In-Reply-To``)."""
    references: tuple[str, ...] = ()
    """Email ``References``: every earlier Message-ID in the thread."""
    subject: str | None = None
    comment_id: str | None = None
    post_id: str | None = None
    is_echo: bool = False
    """The provider echoing a message the store itself sent (Instagram ``is_echo``): never
    treated as the customer's words."""
    is_automated: bool = False
    """Sent by a machine, not a person: an out-of-office, a help desk's receipt, a bounce
    (email's ``Auto-Submitted``, RFC 3834). Kept in the inbox, never answered by the
    assistant: two automatic responders would answer each other without end."""


@dataclass(frozen=True)
class StatusUpdate:
    """What became of a message parley sent: ``sent``, ``delivered``, ``read`` or ``failed``."""

    channel: ChannelKind
    provider_message_id: str
    status: str
    account: str | None = None
    messaging_service: str | None = None
    """The provider's pool of senders the message went out through, when it did (Twilio's
    ``MessagingServiceSid``; ``account`` is then the pool's number that sent it)."""
    recipient: str | None = None
    occurred_at: datetime | None = None
    error_code: str | None = None
    error_reason: str | None = None
    reference: str | None = None
    """What parley gave the provider with the message to hand back on its receipts (the
    message's ``idempotency_key``): a receipt for a message whose send was interrupted
    before the provider's id was recorded still finds it."""


@dataclass(frozen=True)
class TemplateReview:
    """Meta's word on one WhatsApp template of the business account: every field when it
    lists the account's templates, only what changed when a webhook tells of a review or
    a change of category."""

    name: str
    language: str
    status: str | None = None
    """Upper case as Meta writes it: ``APPROVED``, ``PAUSED``, ``REJECTED``..."""
    category: str | None = None
    """``MARKETING``, ``UTILITY`` or ``AUTHENTICATION``."""
    meta_id: str | None = None
    reason: str | None = None
    channel: ChannelKind = ChannelKind.WHATSAPP
    account: str | None = None
    """Template webhooks name the business account, not a phone number: always None."""


@dataclass(frozen=True)
class MarketingPreference:
    """A customer's choice, made in the messaging app itself, to stop or resume a
    business's marketing messages (WhatsApp's ``user_preferences``)."""

    channel: ChannelKind
    sender: str
    wants_marketing: bool
    detail: str
    account: str | None = None
    occurred_at: datetime | None = None


InboundEvent = InboundMessage | StatusUpdate | TemplateReview | MarketingPreference


class ChannelAdapter(Protocol):
    """One provider's way to send; constructed from settings, used by ``messaging``."""

    kind: ClassVar[ChannelKind]
    provider: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @classmethod
    def from_settings(cls, settings: Any) -> Self: ...

    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def check(self) -> str:
        """Ask the provider whether it takes these settings, sending nothing; what it
        said, in words. Raises :class:`ChannelError` as a send would
        (:class:`AccountChannelError` for refused credentials)."""
        ...

    async def aclose(self) -> None: ...
