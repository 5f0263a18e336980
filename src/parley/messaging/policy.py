"""Whether a message may go, and where: the decision every send passes through.

For each channel in the message type's preference order the policy asks: can we reach
the customer there, have they consented for this purpose, and does the channel's window
allow this content? The first channel that passes wins; every channel that did not is
written down with its reason, so a skipped send always says why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from parley.channels.base import ChannelKind
from parley.customers.identity import whatsapp_phone
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, IdentityKind
from parley.messaging.senders import StoreSenders
from parley.messaging.templates import TemplateContent
from parley.messaging.types import DEFAULT_CHANNEL_PREFERENCES, MessageType, Purpose
from parley.messaging.whatsapp_templates import NOT_READ, Registry
from parley.messaging.windows import ANY_LINE, WINDOWED, SendingLine, Written, last_written

SESSION_WINDOW = timedelta(hours=24)
"""WhatsApp's and Instagram's window for a business's free text after the customer wrote."""
CHANNEL_ONLY_IDENTITIES = {
    ChannelKind.INSTAGRAM: IdentityKind.INSTAGRAM,
    ChannelKind.WEBCHAT: IdentityKind.WEBCHAT,
}


@dataclass(frozen=True)
class Reach:
    """What the policy knows about one customer, loaded once per decision."""

    customer: Customer
    identities: list[CustomerIdentity]
    consent: Mapping[tuple[str, str], ConsentRecord]
    """Their latest statement per (channel, purpose), with the refusals of a phone or email
    another profile holds put over it (:func:`parley.customers.service.with_refusals`)."""
    written: tuple[Written, ...] = ()
    """What they wrote lately on WhatsApp and Instagram, and to which of the store's
    numbers (:mod:`parley.messaging.windows`)."""

    def address(self, channel: ChannelKind) -> str | None:
        if channel is ChannelKind.EMAIL:
            return self.customer.email
        if channel is ChannelKind.WHATSAPP:
            return self._whatsapp_id()
        if channel is ChannelKind.SMS:
            return self.customer.phone
        kind = CHANNEL_ONLY_IDENTITIES.get(channel)
        held = [i for i in self.identities if i.kind == kind]
        return _last_written_from(held).value if held else None

    def _whatsapp_id(self) -> str | None:
        """Their phone, as the WhatsApp id they last wrote from where that is not quite
        the number (an older Mexican or Brazilian id): WhatsApp delivers to the id, and
        the window their message opened is the id's."""
        phone = self.customer.phone
        ids = [
            i
            for i in self.identities
            if i.kind == IdentityKind.WHATSAPP and phone and whatsapp_phone(i.value) == phone
        ]
        return _last_written_from(ids).value if ids else phone

    def window_opened(
        self, channel: ChannelKind, recipient: str, line: SendingLine
    ) -> datetime | None:
        """When they last wrote from ``recipient`` to the number ``line`` goes from."""
        return last_written(self.written, channel=channel, recipient=recipient, line=line)


def _last_written_from(identities: list[CustomerIdentity]) -> CustomerIdentity:
    """The identity they last wrote from, of several of one kind."""
    return max(identities, key=lambda i: (i.last_inbound_at is not None, i.last_inbound_at, i.id))


@dataclass(frozen=True)
class Decision:
    """The chosen channel (None: skip) and the trail of channels passed over."""

    channel: ChannelKind | None
    recipient: str | None = None
    use_template: bool = False
    trail: list[str] = field(default_factory=list)
    opted_out: list[tuple[ChannelKind, str]] = field(default_factory=list)
    """Channels passed over because the customer revoked consent there, with the address:
    each is recorded as a skipped send of its own, so the opt-out is visible where the
    message would have gone."""

    @property
    def skip_reason(self) -> str:
        return "no channel allowed: " + "; ".join(self.trail) if self.trail else "no channel"


def consent_allows(
    consent: Mapping[tuple[str, str], ConsentRecord], channel: ChannelKind, purpose: Purpose
) -> tuple[bool, str]:
    """Apply the consent rules for one channel and purpose.

    - A revocation on the channel (any purpose, e.g. STOP) forbids everything on it:
      a STOP refuses order updates, and only START undoes it, so a marketing grant
      recorded after it (the store's checkout box) does not reopen the channel.
    - Marketing needs a marketing grant.
    - Transactional email needs nothing more than the order; transactional SMS and
      WhatsApp need a grant for either purpose (WhatsApp requires prior opt-in for any
      business-initiated message).
    """
    transactional = consent.get((channel, Purpose.TRANSACTIONAL))
    marketing = consent.get((channel, Purpose.MARKETING))
    if transactional is not None and not transactional.is_granted:
        return False, "opted out"
    if purpose is Purpose.MARKETING:
        if marketing is not None and marketing.is_granted:
            return True, ""
        return False, "opted out" if marketing is not None else "no marketing consent"
    if channel is ChannelKind.EMAIL:
        return True, ""
    if (transactional and transactional.is_granted) or (marketing and marketing.is_granted):
        return True, ""
    return False, "no consent"


def template_refusal(
    registry: Registry,
    consent: Mapping[tuple[str, str], ConsentRecord],
    name: str,
    language: str,
    purpose: Purpose,
) -> str | None:
    """Why WhatsApp template ``name`` may not go to this customer now, or None."""
    refused = registry.refusal(name, language)
    if refused is not None:
        return refused
    if purpose is not Purpose.MARKETING and registry.is_marketing(name, language):
        allowed, why = consent_allows(consent, ChannelKind.WHATSAPP, Purpose.MARKETING)
        if not allowed:
            return f"template {name} ({language}) is marketing at Meta; {why}"
    return None


def decide(
    reach: Reach,
    *,
    message_type: MessageType,
    purpose: Purpose,
    now: datetime,
    templates: Mapping[ChannelKind, TemplateContent],
    exclude: Collection[str] = (),
    preferences: Mapping[MessageType, tuple[ChannelKind, ...]] = DEFAULT_CHANNEL_PREFERENCES,
    whatsapp_templates: Registry = NOT_READ,
    unavailable: Mapping[ChannelKind, str] | None = None,
    senders: StoreSenders | None = None,
) -> Decision:
    """Pick the first channel that may carry this message, or say why none may.

    ``whatsapp_templates`` is what Meta says of the store's templates: outside the
    24-hour window a template Meta would refuse is passed over, and one Meta classes as
    marketing needs marketing consent whatever the message's purpose. ``unavailable``
    names channels the store cannot use for this message now, with the reason.
    ``senders`` are the store's own accounts: the window that counts is the one with the
    number the message goes from (None: any of the store's numbers).
    """
    trail: list[str] = []
    opted_out: list[tuple[ChannelKind, str]] = []
    for channel in preferences.get(message_type, (ChannelKind.EMAIL,)):
        if channel in exclude:
            trail.append(f"{channel}: failed earlier for this step")
            continue
        if unavailable and channel in unavailable:
            trail.append(f"{channel}: {unavailable[channel]}")
            continue
        content = templates.get(channel)
        if content is None:
            trail.append(f"{channel}: no template for {message_type}")
            continue
        recipient = reach.address(channel)
        if not recipient:
            trail.append(f"{channel}: no {'email address' if channel == 'email' else 'phone'}")
            continue
        allowed, why = consent_allows(reach.consent, channel, purpose)
        if not allowed:
            trail.append(f"{channel}: {why}")
            if why == "opted out":
                opted_out.append((channel, recipient))
            continue
        use_template = False
        if channel in WINDOWED:
            refused, use_template = _outside_window(
                reach, channel, recipient, senders, now, content, whatsapp_templates, purpose
            )
            if refused is not None:
                trail.append(f"{channel}: {refused}")
                continue
        return Decision(
            channel=channel,
            recipient=recipient,
            use_template=use_template,
            trail=trail,
            opted_out=opted_out,
        )
    return Decision(channel=None, trail=trail, opted_out=opted_out)


def _outside_window(
    reach: Reach,
    channel: ChannelKind,
    recipient: str,
    senders: StoreSenders | None,
    now: datetime,
    content: TemplateContent,
    whatsapp_templates: Registry,
    purpose: Purpose,
) -> tuple[str | None, bool]:
    """Whether the channel's window with the number the message goes from lets it go:
    why not, or whether it must go as a WhatsApp template (outside WhatsApp's window).
    Instagram has no template: outside its window a business may not write first."""
    line = SendingLine(senders.get(channel), senders) if senders is not None else ANY_LINE
    last = reach.window_opened(channel, recipient, line)
    if last is not None and now - last < SESSION_WINDOW:
        return None, False
    if channel is ChannelKind.INSTAGRAM:
        return "outside the 24-hour window", False
    if not content.whatsapp_template:
        return "outside the 24-hour window and no approved template", False
    refused = template_refusal(
        whatsapp_templates,
        reach.consent,
        content.whatsapp_template,
        content.whatsapp_language,
        purpose,
    )
    return (refused, False) if refused is not None else (None, True)
