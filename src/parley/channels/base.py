"""The contract every channel adapter implements, and the types that cross it.

An adapter knows one provider's wire format and nothing of parley's domain: it never
touches the database. ``messaging/`` hands it an :class:`OutboundMessage` and stores the
:class:`SendResult`; a failure is classified as :class:`TransientChannelError` (retry with
backoff: network errors, timeouts, 429, 5xx) or :class:`PermanentChannelError` (fail at
once: other 4xx, a recipient the provider refuses). Adding a channel means one folder here
and one line in ``registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
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
    """Worth retrying later: network trouble, timeouts, 429, 5xx."""

    def __init__(
        self, reason: str, *, provider_code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, provider_code=provider_code)
        self.retry_after = retry_after


class PermanentChannelError(ChannelError):
    """Retrying cannot help: a rejected recipient, bad credentials, a malformed request."""


class ChannelAdapter(Protocol):
    """One provider's way to send; constructed from settings, used by ``messaging``."""

    kind: ClassVar[ChannelKind]
    provider: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @classmethod
    def from_settings(cls, settings: Any) -> Self: ...

    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def aclose(self) -> None: ...
