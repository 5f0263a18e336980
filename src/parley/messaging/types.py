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
