"""What a message is for, and the default channel-matching table from DESIGN.md.

A journey's send step names a :class:`MessageType`, never a channel: the policy picks the
channel from :data:`DEFAULT_CHANNEL_PREFERENCES`, the customer's reachable identities and
consent, then falls back in order.
"""

from __future__ import annotations

from enum import StrEnum

from parley.channels.base import ChannelKind


class MessageType(StrEnum):
    """Stored values: never renumber or reuse."""

    ORDER_CONFIRMATION = "order_confirmation"
    DISPATCH = "dispatch"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    SATISFACTION_CHECK = "satisfaction_check"
    CART_RECOVERY = "cart_recovery"
    REPURCHASE_PROMPT = "repurchase_prompt"
    WIN_BACK = "win_back"
    LOYALTY = "loyalty"
    RECOMMENDATION = "recommendation"
    PROMOTION = "promotion"
    REPLY = "reply"
    KEYWORD_REPLY = "keyword_reply"
    """parley's answer to STOP, START or HELP."""
    INBOUND = "inbound"
    """A message the customer wrote."""
    COMMENT_REPLY = "comment_reply"
    """The store's automatic private reply to an Instagram comment."""


class Purpose(StrEnum):
    """Consent is given per purpose; transactional mail needs no marketing consent."""

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class WaitingFor(StrEnum):
    """What a send put back without going waits for (``jobs.waiting_for``), shown to the
    store beside how many wait. Stored values: never rename."""

    MARKETING_PAUSED = "marketing_paused"
    """The store pressed its kill switch (:mod:`parley.messaging.marketing_pause`)."""
    QUIET_HOURS = "quiet_hours"
    """The customer's quiet hours (:mod:`parley.messaging.quiet_hours`)."""
    MARKETING_RATE = "marketing_rate"
    """The store's own marketing rate (:mod:`parley.messaging.marketing_rate`)."""
    SENDER_PACE = "sender_pace"
    """What the provider takes from the sender (:mod:`parley.messaging.pace`)."""


EMAIL, SMS, WHATSAPP = ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WHATSAPP

DEFAULT_CHANNEL_PREFERENCES: dict[MessageType, tuple[ChannelKind, ...]] = {
    MessageType.ORDER_CONFIRMATION: (EMAIL,),
    MessageType.DISPATCH: (WHATSAPP, SMS, EMAIL),
    MessageType.OUT_FOR_DELIVERY: (WHATSAPP, SMS, EMAIL),
    MessageType.DELIVERED: (WHATSAPP, SMS, EMAIL),
    MessageType.SATISFACTION_CHECK: (EMAIL, WHATSAPP),
    MessageType.CART_RECOVERY: (WHATSAPP, EMAIL),
    MessageType.REPURCHASE_PROMPT: (EMAIL, WHATSAPP),
    MessageType.WIN_BACK: (EMAIL, SMS),
    MessageType.LOYALTY: (WHATSAPP, EMAIL),
    MessageType.RECOMMENDATION: (EMAIL,),
    MessageType.PROMOTION: (EMAIL, SMS),
}

DEFAULT_PURPOSES: dict[MessageType, Purpose] = {
    MessageType.ORDER_CONFIRMATION: Purpose.TRANSACTIONAL,
    MessageType.DISPATCH: Purpose.TRANSACTIONAL,
    MessageType.OUT_FOR_DELIVERY: Purpose.TRANSACTIONAL,
    MessageType.DELIVERED: Purpose.TRANSACTIONAL,
    MessageType.SATISFACTION_CHECK: Purpose.TRANSACTIONAL,
    MessageType.CART_RECOVERY: Purpose.MARKETING,
    MessageType.REPURCHASE_PROMPT: Purpose.MARKETING,
    MessageType.WIN_BACK: Purpose.MARKETING,
    MessageType.LOYALTY: Purpose.MARKETING,
    MessageType.RECOMMENDATION: Purpose.MARKETING,
    MessageType.PROMOTION: Purpose.MARKETING,
    MessageType.REPLY: Purpose.TRANSACTIONAL,
    MessageType.KEYWORD_REPLY: Purpose.TRANSACTIONAL,
    MessageType.INBOUND: Purpose.TRANSACTIONAL,
    MessageType.COMMENT_REPLY: Purpose.TRANSACTIONAL,
}

DEFAULT_EXPIRY_HOURS: dict[MessageType, float] = {
    MessageType.ORDER_CONFIRMATION: 24,
    MessageType.DISPATCH: 48,
    MessageType.OUT_FOR_DELIVERY: 12,
    MessageType.DELIVERED: 48,
    MessageType.SATISFACTION_CHECK: 72,
    MessageType.CART_RECOVERY: 24,
    MessageType.REPURCHASE_PROMPT: 72,
    MessageType.WIN_BACK: 72,
    MessageType.LOYALTY: 72,
    MessageType.RECOMMENDATION: 72,
    MessageType.PROMOTION: 24,
}
"""How long after it was due a journey message is still worth sending. A worker back from
a long outage, or a dead letter sent again days later, would otherwise deliver yesterday's
news ("out for delivery" a day late, a cart reminder after the sale); past it the message
is skipped with the reason. A send step's ``expires_after_hours`` overrides it."""
